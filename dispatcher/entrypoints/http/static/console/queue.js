// The live queue: rows from the server's snapshots (server-sent events), waiting times
// moved on each second against the targets the server sent, the alarm sound, taking a
// call. What is late or an alarm is decided by the server; this only shows it and
// counts the seconds since the snapshot. Text goes in with textContent, never as HTML.
"use strict";
(function () {
  const config = JSON.parse(document.getElementById("console-config").textContent);
  const T = config.texts;
  const rowsEl = document.getElementById("rows");
  const emptyEl = document.getElementById("empty");
  const notLiveEl = document.getElementById("not-live");
  const liveEl = document.getElementById("live");
  const waitingEl = document.getElementById("waiting");
  const soundBlockedEl = document.getElementById("sound-blocked");
  const MUTE_MS = 60 * 1000; // a muted call rings again after a minute if still untaken
  // The wall screen: the same queue, shown only (no buttons, no keys, no sound).
  const READONLY = Boolean(config.readonly);

  const state = {
    snapshot: null,
    offsetMs: 0, // server time minus this browser's time
    live: false,
    lastMessageAt: 0,
    muted: new Map(), // call id -> muted until (ms)
    selected: 0,
    source: null,
    beeps: 0,
  };
  // For the browser tests (and a curious supervisor's console): what the page knows.
  window.eldercallConsole = state;

  function serverNow() { return Date.now() + state.offsetMs; }

  function fmtWait(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const m = Math.floor(s / 60);
    return m > 0 ? `${m}:${String(s % 60).padStart(2, "0")}` : `${s}s`;
  }

  function cell(text, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text;
    return td;
  }

  function accept(snapshot) {
    state.snapshot = snapshot;
    state.offsetMs = Date.parse(snapshot.at) - Date.now();
    render();
  }

  // The element of a row that has the keyboard's focus (its call and its class), so that
  // a new snapshot, which rebuilds the rows, gives the focus back instead of dropping it
  // to the page's start.
  function focusedInRows() {
    const el = document.activeElement;
    if (!el || !rowsEl.contains(el)) return null;
    const tr = el.closest("tr");
    return tr ? { callId: tr.dataset.callId, cls: el.tagName === "A" ? "a" : `.${el.classList[0]}` } : null;
  }

  function render() {
    const snap = state.snapshot;
    if (!snap) return;
    const focused = focusedInRows();
    rowsEl.replaceChildren();
    snap.rows.forEach((row, index) => {
      const tr = document.createElement("tr");
      tr.dataset.callId = row.call_id;
      tr.dataset.kind = row.kind;
      tr.className = [row.alarm ? "alarm" : "", row.untaken ? "untaken" : "taken",
        row.attention ? "attention" : "",
        index === state.selected ? "selected" : ""].filter(Boolean).join(" ");
      if (index === state.selected) tr.setAttribute("aria-current", "true");
      tr.appendChild(cell(T["kind_" + row.kind] || row.kind));
      const who = cell("");
      const link = document.createElement("a");
      link.href = `/console/calls/${encodeURIComponent(row.call_id)}`;
      link.textContent = row.resident || `${T.unknown_device}`;
      who.appendChild(link);
      tr.appendChild(who);
      tr.appendChild(cell(row.community || "-"));
      const waited = cell("", "waited");
      waited.dataset.opened = row.opened_at;
      tr.appendChild(waited);
      tr.appendChild(cell(String(row.escalation_step)));
      const owner = cell(row.untaken ? (T["state_" + row.state] || row.state)
        : `${T.taken}: ${row.taken_by_name || row.taken_by}`, "owner");
      if (row.responder) {  // a responder sent: on the way, overdue (raised again), arrived
        const sent = document.createElement("span");
        sent.className = `responder responder-${row.responder}`;
        sent.textContent = ` · ${T["responder_" + row.responder] || row.responder}`;
        owner.appendChild(sent);
      }
      if (row.untaken && row.watchdog_paged_at) {
        const paged = document.createElement("span");
        paged.className = "paged";
        paged.textContent = T.supervisor_paged;
        owner.appendChild(paged);
      }
      tr.appendChild(owner);
      const actions = cell("");
      if (row.untaken && !READONLY) {
        const take = document.createElement("button");
        take.type = "button";
        take.className = "take primary";
        take.textContent = T.take;
        take.setAttribute("aria-label", `${T.take} ${row.resident || row.call_id}`);
        if (index === state.selected) take.setAttribute("aria-keyshortcuts", "t");
        take.addEventListener("click", () => takeCall(row.call_id, take));
        actions.appendChild(take);
        if (row.alarm) {
          const mute = document.createElement("button");
          mute.type = "button";
          mute.className = "mute";
          mute.textContent = isMuted(row.call_id) ? T.muted : T.mute;
          mute.addEventListener("click", () => {
            state.muted.set(row.call_id, Date.now() + MUTE_MS);
            mute.textContent = T.muted;
          });
          actions.appendChild(mute);
        }
      }
      if (!READONLY) tr.appendChild(actions);
      rowsEl.appendChild(tr);
    });
    emptyEl.hidden = snap.rows.length > 0;
    if (focused) {
      const tr = [...rowsEl.children].find((r) => r.dataset.callId === focused.callId);
      const again = tr && tr.querySelector(focused.cls);
      if (again) again.focus();
    }
    tick();
  }

  function isMuted(callId) {
    const until = state.muted.get(callId);
    return until !== undefined && until > Date.now();
  }

  // Each second: waiting times, amber and red, the unattended flag, the title, the sound.
  function tick() {
    const snap = state.snapshot;
    if (!snap) return;
    const now = serverNow();
    let alarms = 0;
    let ringing = false;
    for (const tr of rowsEl.children) {
      const row = snap.rows.find((r) => r.call_id === tr.dataset.callId);
      if (!row) continue;
      const td = tr.querySelector(".waited");
      const waited = (now - Date.parse(row.opened_at)) / 1000;
      td.replaceChildren(document.createTextNode(fmtWait(waited)));
      const amber = row.untaken && waited > snap.amber_after_s && waited <= snap.red_after_s;
      const red = row.untaken && waited > snap.red_after_s;
      td.classList.toggle("amber", amber);
      td.classList.toggle("red", red);
      if (amber || red) {  // the colour's word beside it: colour is never the only sign
        const level = document.createElement("span");
        level.className = "wait-level";
        level.textContent = red ? T.wait_red : T.wait_amber;
        td.appendChild(level);
      }
      if (row.untaken && waited >= snap.untaken_flag_s) {
        const flag = document.createElement("span");
        flag.className = "flag";
        flag.textContent = T.unattended;
        td.appendChild(flag);
      }
      if (row.alarm) {
        alarms += 1;
        if (!isMuted(row.call_id)) ringing = true;
      }
    }
    const waiting = snap.rows.filter((r) => r.untaken).length;
    waitingEl.textContent = T.waiting.replace("{n}", waiting);
    document.title = (alarms ? T.alarm_title.replace("{n}", alarms) + " " : "") + T.queue_title;
    if (ringing && !READONLY) ring();
  }

  // The alarm: two tones from the Web Audio API (nothing to download), every second
  // while an untaken alarm is not muted.
  let audio = null;
  function ring() {
    try {
      audio = audio || new AudioContext();
    } catch (e) {
      return;
    }
    if (audio.state === "suspended") {
      audio.resume().catch(() => {});
      soundBlockedEl.hidden = false;
      return;
    }
    soundBlockedEl.hidden = true;
    const t0 = audio.currentTime;
    [880, 660].forEach((freq, i) => {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = freq;
      gain.gain.value = 0.2;
      osc.connect(gain).connect(audio.destination);
      osc.start(t0 + i * 0.25);
      osc.stop(t0 + i * 0.25 + 0.2);
    });
    state.beeps += 1;
  }
  if (soundBlockedEl) soundBlockedEl.addEventListener("click", () => {
    if (audio) audio.resume().then(() => { soundBlockedEl.hidden = true; });
  });

  async function takeCall(callId, button) {
    if (button) button.disabled = true;
    const body = new URLSearchParams({ csrf: config.csrf });
    try {
      const answer = await fetch(`/console/calls/${encodeURIComponent(callId)}/take`, {
        method: "POST", body, headers: { "X-CSRF-Token": config.csrf }, credentials: "same-origin",
      });
      if (answer.status === 401) { window.location.assign(config.login); return; }
      if (!answer.ok) {
        const problem = await answer.json().catch(() => ({}));
        window.alert(problem.error || answer.statusText);
      }
    } finally {
      if (button) button.disabled = false;
    }
    catchUp();
  }

  function setLive(live) {
    state.live = live;
    notLiveEl.hidden = live;
    liveEl.textContent = live ? T.live : "";
    liveEl.classList.toggle("down", !live);
  }

  // The stream: a snapshot at once and at every change, a repeat every few seconds.
  function connect() {
    if (state.source) state.source.close();
    const source = new EventSource(config.events);
    state.source = source;
    source.addEventListener("queue", (event) => {
      state.lastMessageAt = Date.now();
      setLive(true);
      accept(JSON.parse(event.data));
    });
    source.addEventListener("signed_out", () => window.location.assign(config.login));
    source.onerror = () => {
      setLive(false);
      if (source.readyState === EventSource.CLOSED) {
        // Refused (signed out, or the server said no): ask why, then try again.
        setTimeout(catchUp, 1000);
        setTimeout(connect, 2000);
      }
    };
  }

  // A fresh snapshot over plain HTTP: after a take, or while the stream is down.
  async function catchUp() {
    try {
      const answer = await fetch(config.queue, { credentials: "same-origin", cache: "no-store" });
      if (answer.status === 401) { window.location.assign(config.login); return; }
      if (answer.ok) accept(await answer.json());
    } catch (e) { /* the server is away: the banner says so */ }
  }

  // Silence longer than three heartbeats is a dead connection, even if the browser
  // has not noticed: say so and reconnect.
  setInterval(() => {
    if (state.live && Date.now() - state.lastMessageAt > 3 * config.heartbeat_s * 1000) {
      setLive(false);
      connect();
    }
  }, 1000);
  setInterval(tick, 1000);

  // Keyboard: j/k move, t takes the selected call, Enter opens it (the hint under the
  // heading says so). Never while typing, nor while an input method composes.
  document.addEventListener("keydown", (event) => {
    if (READONLY || event.isComposing || event.target.closest("input, textarea, select, [contenteditable]") ||
        event.ctrlKey || event.metaKey || event.altKey) return;
    const rows = state.snapshot ? state.snapshot.rows : [];
    if (!rows.length) return;
    if (event.key === "j") state.selected = Math.min(rows.length - 1, state.selected + 1);
    else if (event.key === "k") state.selected = Math.max(0, state.selected - 1);
    else if (event.key === "t") { const row = rows[state.selected]; if (row && row.untaken) takeCall(row.call_id, null); return; }
    else if (event.key === "Enter" && event.target === document.body) {
      window.location.assign(`/console/calls/${encodeURIComponent(rows[state.selected].call_id)}`); return;
    } else return;
    render();
  });

  setLive(false);
  accept(config.snapshot);
  connect();
})();
