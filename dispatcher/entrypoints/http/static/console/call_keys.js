// A call page's keys (the hint in its actions, _call_keys.html): t takes the call, n goes
// to the note (Ctrl+Enter in it saves it), r goes to the resolve form's outcome. Each
// only does what its form's button does: the forms work without this script, and
// resolving still needs an outcome chosen (r only brings the focus there). Never while
// typing in a field, nor while an input method composes (pinyin is typed with letters).
"use strict";
(function () {
  const takeForm = document.getElementById("take-form");
  const note = document.getElementById("note-text");
  const outcome = document.getElementById("outcome");
  let sent = false; // one take per page: a key held down posts once

  function typing(target) {
    return Boolean(target && target.closest && target.closest("input, textarea, select, [contenteditable]"));
  }

  function goTo(el) {
    el.scrollIntoView({ block: "center" });
    el.focus();
  }

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.isComposing || event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(event.target)) return;
    const key = event.key.toLowerCase();
    if (key === "t" && takeForm) {
      event.preventDefault();
      if (!sent) { sent = true; takeForm.requestSubmit(); }
    } else if (key === "n" && note) {
      event.preventDefault(); // the letter is not typed into the note
      goTo(note);
    } else if (key === "r" && outcome) {
      event.preventDefault();
      goTo(outcome);
    }
  });

  if (note) {
    note.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !event.isComposing) {
        event.preventDefault();
        note.form.requestSubmit(); // the browser checks it first: an empty note is not sent
      }
    });
  }
})();
