// Replay of one recording in xterm.js: console.raw with the rhythm of console.timing.
// Parameters come from <body data-raw data-steps>; no inline script (the page's CSP forbids it).
// The clock runs on the recording's own time, with idle gaps capped (like `solcap replay
// --max-delay`); "jump to" rebuilds the screen from the first byte up to that moment.
"use strict";
(function () {
  const body = document.body;
  const term = new Terminal({ scrollback: 10000, disableStdin: true, convertEol: false });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(document.getElementById("term"));
  term.resize(80, 24);
  const $ = (id) => document.getElementById(id);
  let raw = new Uint8Array(0);
  let ends = [];      // byte offset after each step
  let times = [];     // original seconds since start at each step
  let index = 0;      // next step to write
  let written = 0;    // bytes of raw given to the terminal
  let virtual = 0;    // playback clock: recording seconds with capped gaps
  let capped = [];    // playback clock at each step
  let timer = null;
  let last = 0;
  let began = 0;    // performance.now() when a play from the first byte began

  function state(text) { body.dataset.state = text; }

  function rebuildCaps() {
    const cap = parseFloat($("maxdelay").value);
    capped = [];
    let clock = 0, previous = 0;
    for (let i = 0; i < times.length; i++) {
      clock += Math.min(times[i] - previous, cap);
      previous = times[i];
      capped.push(clock);
    }
  }

  function writeTo(target) {
    if (target > written) {
      term.write(raw.subarray(written, target));
      written = target;
    }
    body.dataset.written = String(written);
  }

  function showClock() {
    const t = index > 0 ? times[index - 1] : 0;
    $("clock").textContent = t.toFixed(3) + " s";
  }

  function tick() {
    timer = null;
    const speed = parseFloat($("speed").value);
    const now = performance.now();
    if (speed === 0) {
      index = ends.length;
    } else {
      virtual += ((now - last) / 1000) * speed;
      while (index < ends.length && capped[index] <= virtual) index++;
    }
    last = now;
    writeTo(index > 0 ? ends[index - 1] : 0);
    showClock();
    if (index >= ends.length) {
      writeTo(raw.length); // bytes after the last timing entry (a killed capture)
      body.dataset.elapsed = String(Math.round(performance.now() - began));
      state("done");
      return;
    }
    const wait = speed === 0 ? 0 : ((capped[index] - virtual) / speed) * 1000;
    timer = setTimeout(tick, Math.max(4, Math.min(wait, 250)));
  }

  function play() {
    if (timer !== null) return;
    if (index >= ends.length) jumpToIndex(0);
    if (index === 0) began = performance.now();
    state("playing");
    last = performance.now();
    tick();
  }

  function pause() {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    state("paused");
  }

  function jumpToIndex(i) {
    term.reset();
    written = 0;
    index = i;
    virtual = i > 0 ? capped[i - 1] : 0;
    writeTo(i > 0 ? ends[i - 1] : 0);
    showClock();
  }

  function jumpToSeconds(seconds) {
    let i = 0;
    while (i < times.length && times[i] <= seconds) i++;
    jumpToIndex(i);
  }

  function jumpToOffset(offset) {
    let i = 0;
    while (i < ends.length && ends[i] <= offset) i++;
    jumpToIndex(Math.min(i + 1, ends.length));
  }

  async function load() {
    state("loading");
    const [rawResponse, stepsResponse] = await Promise.all([
      fetch(body.dataset.raw, { credentials: "same-origin" }),
      fetch(body.dataset.steps, { credentials: "same-origin" }),
    ]);
    raw = new Uint8Array(await rawResponse.arrayBuffer());
    const timing = await stepsResponse.json();
    let end = 0, clock = 0;
    for (const [delay, count] of timing.steps) {
      end += count;
      clock += delay;
      ends.push(Math.min(end, raw.length));
      times.push(clock);
    }
    rebuildCaps();
    $("total").textContent = clock.toFixed(3) + " s";
    state("ready");
    const params = new URLSearchParams(location.search);
    if (params.has("t")) {
      jumpToSeconds(parseFloat(params.get("t")));
      state("paused");
    } else if (params.get("autoplay") !== "0") {
      play();
    }
  }

  $("play").addEventListener("click", play);
  $("pause").addEventListener("click", pause);
  $("maxdelay").addEventListener("change", () => { rebuildCaps(); virtual = index > 0 ? capped[index - 1] : 0; });
  $("go").addEventListener("click", () => {
    pause();
    jumpToSeconds(parseFloat($("jump").value) || 0);
  });
  for (const a of document.querySelectorAll("a[data-offset]")) {
    a.addEventListener("click", (event) => {
      event.preventDefault();
      pause();
      jumpToOffset(parseInt(a.dataset.offset, 10));
      $("player").scrollIntoView();
    });
  }
  // The whole buffer (scrollback too) as text, for tests and for copying.
  function text() {
    const buffer = term.buffer.active, lines = [];
    for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i).translateToString(true));
    while (lines.length && lines[lines.length - 1] === "") lines.pop();
    return lines.join("\n");
  }
  window.solcapReplay = { jumpToSeconds, jumpToOffset, play, pause, text };
  load().catch((error) => { state("error"); term.write("\r\n[replay failed: " + error + "]\r\n"); });
})();
