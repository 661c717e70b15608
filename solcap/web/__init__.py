"""The web view: live consoles (through ``solcap serve``) and recordings, in a browser.

``auth``      tokens with read and write scopes, Origin checks, the TLS rule (docs/web.md).
``catalog``   the recordings under a root, opened without leaving it.
``recviews``  recording lists, one recording (replay, events, downloads), key dumps.
``search``    a regular expression over the exact bytes of every recording.
``live``      the start page's console table and the live console WebSocket relay.
``pages``     HTML building blocks, escaped in one place.
``app``       the aiohttp application and :class:`~solcap.web.app.WebServer`.
``static/``   xterm.js and its fit addon (npm ``@xterm/xterm``, ``@xterm/addon-fit``, MIT,
              licences beside them) and the pages' own scripts: no CDN, works offline.

aiohttp is imported only by this package, and this package only by the commands that serve
a web view, so the rest of solcap starts as fast as before.
"""
