// The hand-over sheet's print button (the page prints without it too: Ctrl-P).
document.getElementById("print-sheet").addEventListener("click", () => window.print());
