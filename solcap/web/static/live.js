// A live console: xterm.js fed over a WebSocket by the web server, which relays solcap serve.
// The server sends a JSON "attached" notice, then the current screen, then the stream (binary
// messages); other JSON messages are notices. Typing is sent only while this page holds the
// write side; the server checks that again (and the token's scope) before anything reaches
// the console. Parameters come from <body data-ws data-write> (no inline script: CSP).
"use strict";
(function () {
  const body = document.body;
  const term = new Terminal({ scrollback: 10000, convertEol: false, cursorBlink: true });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(document.getElementById("term"));
  term.resize(80, 24);
  const status = document.getElementById("status");
  const notice = document.getElementById("notice");
  let ws = null;
  let mode = "spy";
  let role = "spy";
  let closing = false;
  let received = 0;

  function show(text) { notice.hidden = !text; notice.textContent = text || ""; }

  function setRole(value) {
    role = value;
    body.dataset.role = value;
    status.textContent = role === "writer" ? "typing goes to the console" : "watching (read-only)";
  }

  function connect(wanted) {
    mode = wanted;
    if (ws !== null) { closing = true; ws.close(); }
    const url = new URL(body.dataset.ws, location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("mode", mode);
    const socket = new WebSocket(url);
    socket.binaryType = "arraybuffer";
    ws = socket;
    closing = false;
    body.dataset.state = "connecting";
    socket.onmessage = (event) => {
      if (typeof event.data === "string") {
        const message = JSON.parse(event.data);
        if (message.event === "attached") {
          term.reset();
          setRole(message.role);
          show(message.notice);
          body.dataset.state = "attached";
        } else if (message.event === "forced") {
          setRole("spy");
          show("the write side was taken by " + message.by);
        } else if (message.event === "notice") {
          show(message.text);
        } else if (message.event === "state") {
          body.dataset.console = message.state;
          if (message.state !== "up") show("console " + message.state);
        } else if (message.event === "dropped") {
          show("this page fell behind; reconnecting for the current screen");
        }
        return;
      }
      const bytes = new Uint8Array(event.data);
      received += bytes.length;
      term.write(bytes, () => { body.dataset.received = String(received); });
    };
    socket.onclose = (event) => {
      if (socket !== ws || closing) return;
      body.dataset.state = "closed";
      // 4000: this page fell behind; 1012: solcap serve went away (restarting); 1001: the web
      // server is shutting down; 1006: the connection dropped (or the upgrade was refused while
      // the server is not back yet). Each one retries, with jitter so many tabs do not move in step.
      if (event.code === 4000 || event.code === 1012 || event.code === 1006 || event.code === 1001) {
        show(event.code === 4000 ? "this page fell behind; reconnecting" : "connection lost; reconnecting");
        setTimeout(() => connect(mode === "force" ? "write" : mode), 500 + Math.random() * 1000);
      } else if (event.code !== 1000) {
        show("the server refused (" + event.code + "): " + (event.reason || "see the server's log"));
      }
    };
  }

  term.onData((data) => {
    if (ws !== null && ws.readyState === WebSocket.OPEN && role === "writer") ws.send(data);
  });
  for (const [id, wanted] of [["write", "write"], ["force", "force"], ["spy", "spy"]]) {
    const button = document.getElementById(id);
    if (button) button.addEventListener("click", () => { connect(wanted); term.focus(); });
  }
  function text() {
    const buffer = term.buffer.active, lines = [];
    for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i).translateToString(true));
    while (lines.length && lines[lines.length - 1] === "") lines.pop();
    return lines.join("\n");
  }
  window.solcapLive = { connect, text };
  connect("spy");
})();
