"""``privvid qa sheet`` / ``privvid qa serve``: the HTML review page and its small local server.

The page (``QA/index.html``, self-contained apart from the JPEG frames in ``QA/media``) shows each
sampled clip's original and anonymised frames side by side, as looping previews and as strips,
with verdict buttons and a note field. Verdicts are kept in the browser (localStorage) and

- saved to ``QA/verdicts.json`` on every change when the page is opened through
  ``privvid qa serve QA`` (POST /api/verdicts), or
- downloaded as ``verdicts.json`` with the page's download button when it is opened as a file.

The server shows raw original frames, so it answers only what the page needs: the page itself
(``/`` and ``/index.html``, rendered per request with this server's write token), regular files
under ``media/`` (no symlinks, no directory listings) and ``/api/verdicts``. Every request must
carry a ``Host`` header naming the server (a loopback name, or the address it was bound to), which
defeats DNS rebinding; a write must also carry the token in ``X-Privvid-Token``, be
``application/json`` and come from no or the server's own ``Origin``, which defeats cross-site
form and ``fetch`` posts.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import json
import mimetypes
import os
import re
import secrets
import stat
import threading
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from privvid.qa.dataset import QAError
from privvid.qa.sample import MEDIA_DIR, load_sample

VERDICTS = ("pass", "person_visible", "artefact", "occlusion")
VERDICT_LABELS = {"pass": "pass", "person_visible": "person visible", "artefact": "artefact",
                  "occlusion": "occlusion"}
VERDICTS_FILE = "verdicts.json"
SHEET_FILE = "index.html"
TOKEN_HEADER = "X-Privvid-Token"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
MAX_BODY = 5_000_000


def render_sheet(sample: dict[str, Any], token: str = "") -> str:
    """The review page for a sample; ``token`` is the serving server's write token ("" in the file)."""
    data = {
        "sample": {k: sample[k] for k in ("dataset", "seed", "per_class") if k in sample},
        "items": [{k: item[k] for k in ("id", "class", "rel", "mode", "original_frames", "anonymised_frames", "problems")}
                  for item in sample["items"]],
        "verdicts": list(VERDICTS),
        "labels": VERDICT_LABELS,
    }
    values = {
        "TITLE": f"privvid QA: {len(sample['items'])} clips of {html.escape(Path(sample.get('dataset', '')).name)}",
        "DATA": json.dumps(data).replace("</", "<\\/"),
        "TOKEN": html.escape(token),
    }
    # one pass, so a placeholder-like text in a clip name or title is never substituted again
    return re.sub(r"__(TITLE|DATA|TOKEN)__", lambda m: values[m.group(1)], _PAGE)


def write_sheet(folder: str | os.PathLike[str]) -> Path:
    folder = Path(folder)
    page = render_sheet(load_sample(folder))
    path = folder / SHEET_FILE
    tmp = folder / f".{SHEET_FILE}.partial"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return path


def validate_verdicts(doc: Any, sample: dict[str, Any]) -> dict[str, Any]:
    """Check a verdicts document against the sample; return it normalised. Raises QAError."""
    if not isinstance(doc, dict) or not isinstance(doc.get("verdicts"), dict):
        raise QAError("verdicts must be a JSON object with a 'verdicts' object")
    items = {item["id"]: item for item in sample["items"]}
    clean = {}
    for item_id, entry in doc["verdicts"].items():
        if item_id not in items:
            raise QAError(f"verdict for unknown clip id {item_id!r}")
        if not isinstance(entry, dict) or entry.get("verdict") not in VERDICTS:
            raise QAError(f"clip {item_id}: verdict must be one of {', '.join(VERDICTS)}")
        note = entry.get("note", "")
        if not isinstance(note, str):
            raise QAError(f"clip {item_id}: note must be text")
        clean[item_id] = {"class": items[item_id]["class"], "rel": items[item_id]["rel"],
                          "verdict": entry["verdict"], "note": note[:4000],
                          "time": str(entry.get("time", ""))}
    reviewer = doc.get("reviewer", "")
    return {
        "sample": {k: sample[k] for k in ("dataset", "seed", "per_class") if k in sample},
        "reviewer": reviewer if isinstance(reviewer, str) else "",
        "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "verdicts": dict(sorted(clean.items())),
    }


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    name = host.strip().lower().strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:  # a host name other than localhost: not known to be loopback
        return False


def allowed_hosts(host: str, port: int, bound: str = "") -> frozenset[str]:
    """The ``Host`` header values a server on ``host``:``port`` answers: the loopback names, plus
    ``host`` (and the address it was bound to, ``bound``) when it is not a wildcard address."""
    names = set(LOOPBACK_NAMES)
    for name in (host, bound):
        name = name.strip().lower().strip("[]")
        if name and name not in ("0.0.0.0", "::"):
            names.add(f"[{name}]" if ":" in name else name)
    values = {f"{name}:{port}" for name in names}
    if port == 80:  # clients leave the default port out
        values |= names
    return frozenset(values)


class QAServer(ThreadingHTTPServer):
    """The review server; ``token`` is this session's write token (it is in the served page)."""

    token: str
    allowed_hosts: frozenset[str]


class _Handler(BaseHTTPRequestHandler):
    folder: Path
    verdicts_path: Path
    sample: dict[str, Any]
    token: str
    hosts: frozenset[str]
    lock = threading.Lock()
    server_version = "privvid-qa"
    sys_version = ""

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet: the CLI prints what matters
        pass

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        super().end_headers()

    def _send(self, status: int, body: bytes = b"", content_type: str = "", head_only: bool = False) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and not head_only:
            self.wfile.write(body)

    def _json(self, status: int, doc: Any, head_only: bool = False) -> None:
        self._send(status, json.dumps(doc).encode(), "application/json", head_only)

    def _host_ok(self) -> bool:
        """The request names this server (DNS rebinding sends the attacker's name)."""
        values = self.headers.get_all("Host") or []
        return len(values) == 1 and values[0].strip().lower() in self.hosts

    def _route(self) -> str:
        return unquote(urlsplit(self.path).path)

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self._get(head_only=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._get(head_only=True)

    def _get(self, head_only: bool) -> None:
        self.close_connection = True
        if not self._host_ok():
            self._send(HTTPStatus.FORBIDDEN)
            return
        route = self._route()
        if route in ("/", f"/{SHEET_FILE}"):
            page = render_sheet(self.sample, self.token).encode()
            self._send(HTTPStatus.OK, page, "text/html; charset=utf-8", head_only)
        elif route == "/api/verdicts":
            with self.lock:
                if self.verdicts_path.is_file():
                    doc = json.loads(self.verdicts_path.read_text(encoding="utf-8"))
                else:
                    doc = {"verdicts": {}}
            self._json(HTTPStatus.OK, doc, head_only)
        else:
            self._media(route, head_only)

    def _media(self, route: str, head_only: bool) -> None:
        """A regular file under ``media/``, reached without a symlink; else 404 (also for folders)."""
        parts = route.split("/")[1:]
        if (len(parts) < 2 or parts[0] != MEDIA_DIR
                or any(p in ("", ".", "..") or p.startswith(".") or "\\" in p or "\0" in p for p in parts)):
            self._send(HTTPStatus.NOT_FOUND)
            return
        path = self.folder
        for part in parts:
            path = path / part
            if path.is_symlink():
                self._send(HTTPStatus.NOT_FOUND)
                return
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:  # missing, unreadable, or swapped for a symlink since the check
            self._send(HTTPStatus.NOT_FOUND)
            return
        if not stat.S_ISREG(os.fstat(fd).st_mode) or not path.resolve().is_relative_to(self.folder):
            os.close(fd)  # a folder (no listings) or a device, fifo, ...
            self._send(HTTPStatus.NOT_FOUND)
            return
        with os.fdopen(fd, "rb") as handle:
            body = handle.read()  # frame thumbnails: a few kB each
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        self._send(HTTPStatus.OK, body, content_type, head_only)

    def _write_refusal(self) -> tuple[int, str] | None:
        """Why this POST may not write (status, message), or None."""
        origins = self.headers.get_all("Origin") or []
        if origins and (len(origins) > 1 or origins[0].strip().lower() not in {f"http://{h}" for h in self.hosts}):
            return HTTPStatus.FORBIDDEN, "cross-origin write refused"
        if not hmac.compare_digest(self.headers.get(TOKEN_HEADER, "").encode(), self.token.encode()):
            return HTTPStatus.FORBIDDEN, "missing or wrong write token; reload the review page"
        if (self.headers.get("Content-Type") or "").split(";")[0].strip().lower() != "application/json":
            return HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "verdicts must be sent as application/json"
        return None

    def do_POST(self) -> None:  # noqa: N802
        self.close_connection = True
        if not self._host_ok():
            self._send(HTTPStatus.FORBIDDEN)
            return
        if self._route() != "/api/verdicts":
            self._json(HTTPStatus.NOT_FOUND, {"error": "unknown endpoint"})
            return
        refusal = self._write_refusal()
        if refusal is not None:
            self._json(refusal[0], {"error": refusal[1]})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
            if not 0 <= length <= MAX_BODY:
                raise QAError("request too large" if length > 0 else "bad Content-Length")
            doc = validate_verdicts(json.loads(self.rfile.read(length) or b"null"), self.sample)
        except (QAError, ValueError) as exc:  # ValueError covers bad JSON and a bad Content-Length
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        with self.lock:
            tmp = self.verdicts_path.with_name(f".{self.verdicts_path.name}.partial")
            tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, self.verdicts_path)
        self._json(HTTPStatus.OK, {"saved": len(doc["verdicts"]), "path": str(self.verdicts_path)})


def make_server(folder: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 8765,
                verdicts: str | os.PathLike[str] | None = None) -> QAServer:
    """A server for the QA folder (port 0 = any free port), with a fresh write token. Writes the
    sheet file if it is missing (the server itself renders the page per request)."""
    folder = Path(folder).resolve()
    sample = load_sample(folder)
    if not (folder / SHEET_FILE).is_file():
        write_sheet(folder)
    token = secrets.token_urlsafe(32)

    class QAHandler(_Handler):
        pass

    QAHandler.folder, QAHandler.sample, QAHandler.token, QAHandler.hosts = folder, sample, token, frozenset()
    QAHandler.verdicts_path = Path(verdicts).resolve() if verdicts else folder / VERDICTS_FILE
    server = QAServer((host, port), QAHandler)
    # known only once bound (port 0); no request is read before serve_forever
    QAHandler.hosts = allowed_hosts(host, server.server_address[1], str(server.server_address[0]))
    server.token, server.allowed_hosts = token, QAHandler.hosts
    return server


_PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="privvid-token" content="__TOKEN__">
<style>
body{font-family:system-ui,sans-serif;margin:0;background:#f4f4f4;color:#222}
header{position:sticky;top:0;background:#222;color:#eee;padding:8px 14px;display:flex;gap:14px;align-items:center;flex-wrap:wrap;z-index:2}
header input{padding:3px 6px}
#status{font-size:13px;color:#bfb}
.clip{background:#fff;margin:12px;padding:10px 14px;border-radius:6px;box-shadow:0 1px 3px #0002}
.clip.done{border-left:6px solid #3a3}
.clip h2{font-size:15px;margin:0 0 6px}
.meta{font-size:12px;color:#666}
.pair{display:flex;gap:12px;flex-wrap:wrap}
.side{flex:1;min-width:240px}
.side b{display:block;font-size:12px;margin-bottom:3px}
.loop{max-width:100%;display:block;background:#000}
.strip{display:flex;gap:2px;margin-top:4px;overflow-x:auto}
.strip img{height:48px}
.missing{padding:30px;background:#eee;color:#a33;font-size:13px}
.problems{color:#a33;font-size:12px}
.verdicts{margin-top:8px;display:flex;gap:6px;flex-wrap:wrap;align-items:center}
.verdicts button{padding:5px 12px;border:1px solid #888;background:#fafafa;border-radius:4px;cursor:pointer}
.verdicts button.on{background:#246;color:#fff;border-color:#246}
.verdicts button[data-verdict=pass].on{background:#2a6a2a;border-color:#2a6a2a}
textarea{width:100%;min-height:34px;margin-top:6px;font:inherit;font-size:13px}
</style></head>
<body>
<header><strong>__TITLE__</strong>
<label>reviewer <input id="reviewer" size="12"></label>
<span id="progress"></span>
<button id="download">download verdicts.json</button>
<span id="status"></span></header>
<main id="clips"></main>
<script id="qa-data" type="application/json">__DATA__</script>
<script>
"use strict";
const DATA = JSON.parse(document.getElementById("qa-data").textContent);
const KEY = "privvid-qa:" + (DATA.sample.dataset || "") + ":" + DATA.sample.seed;
const served = location.protocol === "http:" || location.protocol === "https:";
// write token of the serving privvid qa serve (empty in the file on disk); every save sends it
const TOKEN = document.querySelector('meta[name="privvid-token"]').content;
let state = {reviewer: "", verdicts: {}};
try { Object.assign(state, JSON.parse(localStorage.getItem(KEY) || "{}")); } catch (e) {}

function el(tag, attrs, ...kids) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const kid of kids) node.append(kid);
  return node;
}

function side(title, frames) {
  const box = el("div", {class: "side"}, el("b", {}, title));
  if (!frames.length) { box.append(el("div", {class: "missing"}, "not available")); return box; }
  const loop = el("img", {class: "loop", src: frames[0], alt: title});
  loop.dataset.frames = JSON.stringify(frames);
  box.append(loop);
  const strip = el("div", {class: "strip"});
  for (const f of frames) strip.append(el("img", {src: f, alt: ""}));
  box.append(strip);
  return box;
}

function doc() {
  return {reviewer: state.reviewer, sample: DATA.sample, verdicts: state.verdicts};
}

let saveTimer = null;
function changed() {
  localStorage.setItem(KEY, JSON.stringify(state));
  refresh();
  if (!served) { setStatus("kept in this browser; use download to save"); return; }
  clearTimeout(saveTimer);
  saveTimer = setTimeout(save, 250);
}

async function save() {
  setStatus("saving ...");
  try {
    const res = await fetch("api/verdicts", {method: "POST",
                                             headers: {"Content-Type": "application/json", "X-Privvid-Token": TOKEN},
                                             body: JSON.stringify(doc())});
    const body = await res.json();
    setStatus(res.ok ? "saved " + body.saved + " verdict(s)" : "error: " + body.error);
    document.body.dataset.saved = res.ok ? String(body.saved) : "error";
  } catch (e) { setStatus("save failed: " + e); }
}

function setStatus(text) { document.getElementById("status").textContent = text; }

function refresh() {
  const n = Object.keys(state.verdicts).length;
  document.getElementById("progress").textContent = n + " / " + DATA.items.length + " reviewed";
  for (const item of DATA.items) {
    const card = document.getElementById("clip-" + item.id);
    const v = state.verdicts[item.id];
    card.classList.toggle("done", !!v);
    for (const b of card.querySelectorAll("button[data-verdict]"))
      b.classList.toggle("on", !!v && v.verdict === b.dataset.verdict);
  }
}

function render() {
  const main = document.getElementById("clips");
  for (const item of DATA.items) {
    const card = el("section", {class: "clip", id: "clip-" + item.id});
    card.dataset.id = item.id;
    card.append(el("h2", {}, item["class"] + " / " + item.rel.split("/").pop()),
                el("div", {class: "meta"}, "#" + item.id + "  " + item.rel + "  mode " + item.mode));
    if (item.problems.length) card.append(el("div", {class: "problems"}, item.problems.join("; ")));
    card.append(el("div", {class: "pair"}, side("original", item.original_frames),
                   side("anonymised", item.anonymised_frames)));
    const row = el("div", {class: "verdicts"});
    for (const v of DATA.verdicts) {
      const b = el("button", {type: "button"}, DATA.labels[v]);
      b.dataset.verdict = v;
      b.addEventListener("click", () => {
        const prev = state.verdicts[item.id] || {note: ""};
        state.verdicts[item.id] = {"class": item["class"], rel: item.rel, verdict: v, note: prev.note,
                                   time: new Date().toISOString()};
        changed();
      });
      row.append(b);
    }
    const note = el("textarea", {placeholder: "note (optional)"});
    note.value = (state.verdicts[item.id] || {}).note || "";
    note.addEventListener("input", () => {
      const entry = state.verdicts[item.id];
      if (!entry) { setStatus("pick a verdict for #" + item.id + " first; the note is kept with it"); return; }
      entry.note = note.value;
      changed();
    });
    card.append(row, note);
    main.append(card);
  }
}

let tick = 0;
setInterval(() => {
  tick++;
  for (const img of document.querySelectorAll("img.loop")) {
    const frames = JSON.parse(img.dataset.frames);
    img.src = frames[tick % frames.length];
  }
}, 450);

document.getElementById("download").addEventListener("click", () => {
  const blob = new Blob([JSON.stringify(doc(), null, 2)], {type: "application/json"});
  const a = el("a", {href: URL.createObjectURL(blob), download: "verdicts.json"});
  document.body.append(a); a.click(); a.remove();
});

const reviewer = document.getElementById("reviewer");
reviewer.addEventListener("input", () => { state.reviewer = reviewer.value; changed(); });

async function start() {
  if (served) {
    try {
      const res = await fetch("api/verdicts", {cache: "no-store"});
      if (res.ok) {
        const saved = await res.json();
        if (saved.verdicts && Object.keys(saved.verdicts).length) {
          state.verdicts = saved.verdicts;
          state.reviewer = saved.reviewer || state.reviewer;
        }
      }
    } catch (e) { setStatus("server not reachable: " + e); }
  }
  render();
  reviewer.value = state.reviewer || "";
  refresh();
  // ready only once the frame strips have loaded (or failed): a reviewer, and a test, sees real frames
  await Promise.all([...document.querySelectorAll(".strip img")].map(img =>
    img.complete ? null : new Promise(done => {
      img.addEventListener("load", done, {once: true});
      img.addEventListener("error", done, {once: true});
    })));
  document.body.dataset.ready = "1";
}
start();
</script>
</body></html>
"""
