"""``privvid qa sheet`` / ``privvid qa serve``: the HTML review page and its small local server.

The page (``QA/index.html``, self-contained apart from the media in ``QA/media``) shows each
sampled clip's original and anonymised preview videos side by side, looped and kept in step, with
one scrubber for both, the mask overlay when the sample has one, the written-frame check's flagged
frames and the audit's flag on the timeline, the frame strips, verdict buttons and a note field.
It is made for reviewing hundreds of clips by keyboard: a legend lists the keys, the current clip
is highlighted, and clip cards get their media only when they come near the viewport (and drop
them again far from it), so a 750-clip page opens at once. Verdicts are kept in the browser
(localStorage) and

- saved to ``QA/verdicts.json`` on every change when the page is opened through
  ``privvid qa serve QA`` (POST /api/verdicts), or to ``QA/verdicts-NAME.json`` with
  ``--reviewer NAME`` (one file per reviewer, the name fixed on the page and in the file), or
- downloaded as ``verdicts.json`` with the page's download button when it is opened as a file.

The server shows raw original frames, so it answers only what the page needs: the page itself
(``/`` and ``/index.html``, rendered per request with this server's write token), regular files
under ``media/`` (no symlinks, no directory listings; single byte ranges, which video seeking needs)
and ``/api/verdicts``. Every request must
carry a ``Host`` header naming the server (a loopback name, or the address it was bound to), which
defeats DNS rebinding; a write must also carry the token in ``X-Privvid-Token``, be
``application/json`` and come from no or the server's own ``Origin``, which defeats cross-site
form and ``fetch`` posts.
"""

from __future__ import annotations

import errno
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

from privvid.errors import ConfigError
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
REVIEWER_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")
ITEM_KEYS = ("id", "class", "rel", "mode", "original_frames", "anonymised_frames", "problems")
ITEM_EXTRAS = {"preview": None, "marks": [], "audit": None, "clip_frames": None}  # absent from older samples
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def check_reviewer(name: str) -> str:
    """A reviewer name usable in a file name (``[A-Za-z0-9_-]{1,40}``); else ConfigError."""
    if not isinstance(name, str) or not REVIEWER_NAME.fullmatch(name):
        raise ConfigError(f"--reviewer must be 1-40 letters, digits, '_' or '-' (it names the verdict file), "
                          f"got {name!r}")
    return name


def reviewer_file(name: str) -> str:
    """The verdict file of one reviewer: ``verdicts-NAME.json``."""
    return f"verdicts-{check_reviewer(name)}.json"


def render_sheet(sample: dict[str, Any], token: str = "", reviewer: str = "", verdicts_file: str = "") -> str:
    """The review page for a sample; ``token`` is the serving server's write token ("" in the file),
    ``reviewer`` the name a ``--reviewer`` server saves under (the page then shows it, fixed)."""
    data = {
        "sample": {k: sample[k] for k in ("dataset", "seed", "per_class", "order") if k in sample},
        "items": [{**{k: item[k] for k in ITEM_KEYS}, **{k: item.get(k, v) for k, v in ITEM_EXTRAS.items()}}
                  for item in sample["items"]],
        "verdicts": list(VERDICTS),
        "labels": VERDICT_LABELS,
        "reviewer": reviewer,
        "verdicts_file": verdicts_file,
    }
    values = {
        "TITLE": f"privvid QA: {len(sample['items'])} clips of {html.escape(Path(sample.get('dataset', '')).name)}",
        # no "<" in the inline JSON at all: "<!--" or "<script" in a clip's name would change how the HTML
        # parser reads the script block (the page's own script swallowed), not only "</"
        "DATA": json.dumps(data).replace("<", "\\u003c"),
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
                          "mode": items[item_id].get("mode", ""),
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
    """The review server; ``token`` is this server's write token (it is in the served page)."""

    token: str
    allowed_hosts: frozenset[str]


class _Handler(BaseHTTPRequestHandler):
    folder: Path
    verdicts_path: Path
    sample: dict[str, Any]
    token: str
    hosts: frozenset[str]
    reviewer: str = ""
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

    def _send(self, status: int, body: bytes = b"", content_type: str = "", head_only: bool = False,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
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
            page = render_sheet(self.sample, self.token, self.reviewer, self.verdicts_path.name).encode()
            self._send(HTTPStatus.OK, page, "text/html; charset=utf-8", head_only)
        elif route == "/api/verdicts":
            with self.lock:
                try:
                    doc = read_verdicts(self.verdicts_path, self.sample)
                except QAError as exc:   # damaged since the server started: the page says so and does not save
                    self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": str(exc)}, head_only)
                    return
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
            body = handle.read()  # frame thumbnails (a few kB) and preview videos (a few hundred kB)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        status, headers = HTTPStatus.OK, {"Accept-Ranges": "bytes"}
        wanted = self._byte_range(len(body))
        if wanted == "unsatisfiable":
            self._send(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, b"", "", head_only,
                       {"Content-Range": f"bytes */{len(body)}"})
            return
        if isinstance(wanted, tuple):  # a video element seeking
            start, end = wanted
            status, headers["Content-Range"] = HTTPStatus.PARTIAL_CONTENT, f"bytes {start}-{end}/{len(body)}"
            body = body[start:end + 1]
        self._send(status, body, content_type, head_only, headers)

    def _byte_range(self, size: int) -> tuple[int, int] | str | None:
        """The one byte range asked for (first, last), ``"unsatisfiable"``, or None for the whole file
        (no Range header, or one this server does not parse, such as several ranges)."""
        found = _RANGE.fullmatch((self.headers.get("Range") or "").strip())
        if found is None or not (found.group(1) or found.group(2)):
            return None
        first, last = found.group(1), found.group(2)
        if first:
            start, end = int(first), min(int(last), size - 1) if last else size - 1
            if last and int(last) < start:
                return None  # malformed: ignored, as RFC 9110 allows
        else:  # a suffix: the last N bytes
            start, end = max(0, size - int(last)), size - 1
            if int(last) == 0:
                return "unsatisfiable"
        if start >= size:
            return "unsatisfiable"
        return start, end

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
            doc = validate_verdicts(_json_body(self.rfile.read(length)), self.sample)
        except (QAError, ValueError) as exc:  # ValueError covers a bad Content-Length
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        if self.reviewer:  # a --reviewer server: the file is that reviewer's, whatever the page sends
            doc["reviewer"] = self.reviewer
        with self.lock:
            try:   # damaged since the server started (a page loaded before that still saves): not replaced
                read_verdicts(self.verdicts_path, self.sample)
            except QAError as exc:
                self._json(HTTPStatus.CONFLICT, {"error": f"not saved: {exc}"})
                return
            tmp = self.verdicts_path.with_name(f".{self.verdicts_path.name}.partial")
            try:
                tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
                os.replace(tmp, self.verdicts_path)
            except OSError as exc:   # the disk filled, the folder went away: the page must say it was not saved
                tmp.unlink(missing_ok=True)
                self._json(HTTPStatus.INTERNAL_SERVER_ERROR,
                           {"error": f"not saved: {exc.strerror or exc} ({self.verdicts_path})"})
                return
        self._json(HTTPStatus.OK, {"saved": len(doc["verdicts"]), "path": str(self.verdicts_path)})


def _json_body(body: bytes) -> Any:
    """A request's JSON (UTF-8), or QAError saying why not: bad text, bad JSON, or nesting too deep for the
    parser (a RecursionError, which would otherwise drop the connection)."""
    try:
        return json.loads(body.decode("utf-8") or "null")
    except UnicodeDecodeError:
        raise QAError("the request body is not UTF-8 text") from None
    except RecursionError:
        raise QAError("the request body is nested too deeply") from None
    except ValueError as exc:
        raise QAError(f"the request body is not JSON: {exc}") from None


def read_verdicts(path: Path, sample: dict[str, Any]) -> dict[str, Any]:
    """The verdicts saved at ``path`` (none yet: an empty set), checked against the sample; QAError naming the
    file when it cannot be read, is not JSON, or holds verdicts this sample cannot take."""
    if not path.is_file():
        return {"verdicts": {}}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        validate_verdicts(doc, sample)
    except (OSError, ValueError, RecursionError, QAError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise QAError(f"the verdicts file {path} cannot be used ({why}); mend or move it, then start again "
                      "(it is never overwritten while it cannot be read)") from None
    return dict(doc)


def _check_writable(path: Path) -> None:
    """The verdicts file can be written where it is asked for (else every save would fail while the
    reviewer works on): its folder takes a file (made where missing, as ``--json`` and ``--out`` make theirs),
    and it is not itself a folder."""
    from privvid.io.atomic import check_out_file

    if path.is_dir():
        raise ConfigError(f"--verdicts {path} is a folder; name a file such as {path / VERDICTS_FILE}")
    check_out_file(path, "--verdicts")
    probe = path.with_name(f".{path.name}.probe")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe.write_text("", encoding="utf-8")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"verdicts cannot be saved to {path}: {exc.strerror or exc} (--verdicts FILE saves them "
                          "elsewhere)") from None


def make_server(folder: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 8765,
                verdicts: str | os.PathLike[str] | None = None, reviewer: str | None = None) -> QAServer:
    """A server for the QA folder (port 0 = any free port), with a fresh write token. Writes the
    sheet file if it is missing (the server itself renders the page per request). ``reviewer``:
    save to ``FOLDER/verdicts-NAME.json`` (unless ``verdicts`` names a file) with that name in its
    ``reviewer`` field; ConfigError for a name that is not a safe file-name token."""
    if reviewer is not None:
        check_reviewer(reviewer)
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be 0..65535 (0 = any free port), got {port}")
    folder = Path(folder).resolve()
    sample = load_sample(folder)
    if not (folder / SHEET_FILE).is_file():
        write_sheet(folder)
    token = secrets.token_urlsafe(32)

    class QAHandler(_Handler):
        pass

    QAHandler.folder, QAHandler.sample, QAHandler.token, QAHandler.hosts = folder, sample, token, frozenset()
    default = folder / (reviewer_file(reviewer) if reviewer else VERDICTS_FILE)
    QAHandler.verdicts_path = Path(verdicts).resolve() if verdicts else default
    QAHandler.reviewer = reviewer or ""
    _check_writable(QAHandler.verdicts_path)
    try:   # a damaged file is refused now: the page would load no verdicts and its first save replace them all
        read_verdicts(QAHandler.verdicts_path, sample)
    except QAError as exc:
        raise ConfigError(str(exc)) from None
    try:
        server = QAServer((host, port), QAHandler)
    except OSError as exc:   # the port is taken, the host is no address of this machine
        raise ConfigError(f"cannot serve on {host}:{port}: {exc.strerror or exc}"
                          + (" (choose another --port, or 0 for any free one)" if exc.errno == errno.EADDRINUSE else "")
                          ) from None
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
header input[readonly]{background:#ddd;font-weight:bold}
#status{font-size:13px;color:#bfb}
#legend{flex-basis:100%;font-size:12px;color:#ccc}
#legend kbd{background:#444;border:1px solid #666;border-radius:3px;padding:0 4px;font-family:inherit;color:#fff}
.clip{background:#fff;margin:12px;padding:10px 14px;border-radius:6px;box-shadow:0 1px 3px #0002;scroll-margin-top:90px}
.clip.done{border-left:6px solid #3a3}
.clip.current{outline:3px solid #e90;outline-offset:1px}
.clip h2{font-size:15px;margin:0 0 6px}
.meta{font-size:12px;color:#666}
.pair{display:flex;gap:12px;flex-wrap:wrap}
.side{flex:1;min-width:240px}
.side b{display:block;font-size:12px;margin-bottom:3px}
.loop{max-width:100%;display:block;background:#000}
.screen{position:relative;display:inline-block;line-height:0;background:#000;max-width:100%}
.screen video{display:block;max-width:100%;height:auto}
.screen video.overlay{position:absolute;left:0;top:0;width:100%;height:100%;mix-blend-mode:screen;opacity:.8;pointer-events:none}
.strip{display:flex;gap:2px;margin-top:4px;overflow-x:auto}
.strip img{height:48px}
.missing{padding:30px;background:#eee;color:#a33;font-size:13px}
.problems{color:#a33;font-size:12px}
.flags{font-size:12px;margin:3px 0}
.flags .checkmarks{color:#a50}
.flags .audit.flagged{color:#b00;font-weight:bold}
.flags .audit.passed{color:#363}
.controls{display:flex;gap:8px;align-items:center;margin-top:6px;flex-wrap:wrap;font-size:12px}
.controls button{padding:3px 10px;border:1px solid #888;background:#fafafa;border-radius:4px;cursor:pointer}
.controls button.on{background:#b22;color:#fff;border-color:#b22}
.timeline{position:relative;flex:1;min-width:220px}
.timeline input{width:100%;margin:0;display:block}
.marks{position:relative;height:10px;margin:0 8px}
.mark{position:absolute;top:0;width:3px;height:10px;margin-left:-1px;background:#e80;cursor:pointer}
.mark.solid{background:#c00}
.auditband{height:4px;margin:1px 8px 0;background:#393}
.auditband.flagged{background:#c00}
.frameno{min-width:110px;font-variant-numeric:tabular-nums}
.verdicts{margin-top:8px;display:flex;gap:6px;flex-wrap:wrap;align-items:center}
.verdicts button{padding:5px 12px;border:1px solid #888;background:#fafafa;border-radius:4px;cursor:pointer}
.verdicts button.on{background:#246;color:#fff;border-color:#246}
.verdicts button[data-verdict=pass].on{background:#2a6a2a;border-color:#2a6a2a}
.verdicts kbd{font-size:10px;color:#888;margin-left:4px}
.verdicts button.on kbd{color:#ddd}
textarea{width:100%;min-height:34px;margin-top:6px;font:inherit;font-size:13px;box-sizing:border-box}
</style></head>
<body>
<header><strong>__TITLE__</strong>
<label>reviewer <input id="reviewer" size="12"></label>
<span id="progress"></span>
<label title="after a verdict key, go to the next clip without a verdict"><input type="checkbox" id="advance"> next after verdict</label>
<button id="download">download verdicts.json</button>
<span id="status"></span>
<div id="legend">keys: <kbd>1</kbd>/<kbd>p</kbd> pass &middot; <kbd>2</kbd>/<kbd>v</kbd> person visible &middot;
<kbd>3</kbd>/<kbd>a</kbd> artefact &middot; <kbd>4</kbd>/<kbd>o</kbd> occlusion &middot;
<kbd>n</kbd>/<kbd>j</kbd> next clip without a verdict &middot; <kbd>k</kbd> previous clip &middot;
<kbd>u</kbd> undo the last verdict change &middot; <kbd>m</kbd> mask overlay &middot; <kbd>space</kbd> play / pause &middot;
<kbd>,</kbd> <kbd>.</kbd> frame back / forward &middot; <kbd>Esc</kbd> leave the note field (keys do nothing while typing a note)</div>
</header>
<main id="clips"></main>
<script id="qa-data" type="application/json">__DATA__</script>
<script>
"use strict";
const DATA = JSON.parse(document.getElementById("qa-data").textContent);
const ITEMS = DATA.items;
const INDEX = new Map(ITEMS.map((item, i) => [item.id, i]));
// the name a `privvid qa serve --reviewer NAME` saves under: fixed on the page, and its own browser store
const FIXED = DATA.reviewer || "";
const KEY = "privvid-qa:" + (DATA.sample.dataset || "") + ":" + DATA.sample.seed + (FIXED ? ":" + FIXED : "");
const served = location.protocol === "http:" || location.protocol === "https:";
// write token of the serving privvid qa serve (empty in the file on disk); every save sends it
const TOKEN = document.querySelector('meta[name="privvid-token"]').content;
const NEAR = 300;   // px around the viewport within which a card gets its media
const FAR = 1500;   // px beyond which a card drops them again (videos paused and unloaded)
const KEYS = {"1": "pass", "p": "pass", "2": "person_visible", "v": "person_visible",
              "3": "artefact", "a": "artefact", "4": "occlusion", "o": "occlusion"};
const SHORT = {pass: "1", person_visible: "2", artefact: "3", occlusion: "4"};
let state = {reviewer: "", verdicts: {}};
try { Object.assign(state, JSON.parse(localStorage.getItem(KEY) || "{}")); } catch (e) {}
if (FIXED) state.reviewer = FIXED;

const cards = [];              // one section per clip, in the sample's order
const loaded = new Map();      // card index -> {player}: the cards whose media are in the page
const players = new Set();     // the video players of those cards
const overlays = new Set();    // clip ids whose mask overlay is on
const undoStack = [];          // {id, before}: verdict changes, newest last
let current = -1;

function el(tag, attrs, ...kids) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const kid of kids) node.append(kid);
  return node;
}

function strip(frames) {
  const row = el("div", {class: "strip"});
  for (const f of frames) row.append(el("img", {src: f, alt: ""}));
  return row;
}

// without preview videos (older samples, --preview-seconds 0): the frames, looped
function side(title, frames) {
  const box = el("div", {class: "side"}, el("b", {}, title));
  if (!frames.length) { box.append(el("div", {class: "missing"}, "not available")); return box; }
  const loop = el("img", {class: "loop", src: frames[0], alt: title});
  loop.dataset.frames = JSON.stringify(frames);
  box.append(loop, strip(frames));
  return box;
}

function videoSide(title, screen, frames) {
  const box = el("div", {class: "side"}, el("b", {}, title));
  box.append(screen || el("div", {class: "missing"}, "not available"));
  if (frames.length) box.append(strip(frames));
  return box;
}

// original, anonymised and mask video of one clip, kept on the anonymised one's time
class Player {
  constructor(item) {
    const p = item.preview;
    this.item = item;
    this.fps = p.fps || 25;
    this.n = Math.max(1, p.frames || 1);
    const video = (src, cls) => {
      const v = el("video", {class: cls, width: String(p.width), height: String(p.height), preload: "auto",
                             playsinline: "", muted: ""});
      v.muted = true; v.loop = true; v.src = src;
      return v;
    };
    this.anon = video(p.anonymised, "v-anon");
    this.orig = p.original ? video(p.original, "v-orig") : null;
    this.mask = p.mask ? video(p.mask, "v-mask overlay") : null;
    this.videos = [this.anon, this.orig, this.mask].filter(Boolean);
    this.anonScreen = el("div", {class: "screen"}, this.anon);
    if (this.mask) this.anonScreen.append(this.mask);
    this.origScreen = this.orig ? el("div", {class: "screen"}, this.orig) : null;
    this.button = el("button", {type: "button", class: "play"}, "pause");
    this.button.addEventListener("click", () => this.toggle());
    this.scrub = el("input", {type: "range", class: "scrub", min: "0", max: String(this.n - 1), step: "1",
                              value: "0", "aria-label": "frame of both videos"});
    this.scrub.addEventListener("input", () => this.seek(Number(this.scrub.value)));
    const marks = el("div", {class: "marks"});
    for (const m of item.marks || []) {
      if (m.frame >= this.n) continue;  // past the preview: listed in the text above only
      const tick = el("span", {class: "mark " + (m.action === "solid" ? "solid" : "mended"),
                               title: "frame " + m.frame + ": written-frame check " + (m.action || "flagged")
                                      + (m.found && m.found.length ? " (" + m.found.join(", ") + ")" : "")});
      tick.dataset.frame = String(m.frame);
      tick.style.left = (this.n > 1 ? 100 * m.frame / (this.n - 1) : 0) + "%";
      tick.addEventListener("click", () => this.seek(m.frame));
      marks.append(tick);
    }
    const timeline = el("div", {class: "timeline"}, this.scrub, marks);
    const a = item.audit;
    if (a) {
      const band = el("div", {class: "auditband" + (a.flagged ? " flagged" : ""),
                              title: "audit: " + (a.flagged ? "flagged" : "passed") + ", suspicion "
                                     + Number(a.suspicion).toFixed(2)});
      band.style.opacity = String(Math.max(0.25, Math.min(1, Number(a.suspicion) || 0)));
      timeline.append(band);
    }
    this.label = el("span", {class: "frameno"}, "frame 0 / " + this.n);
    this.controls = el("div", {class: "controls"}, this.button, timeline, this.label);
    if (this.mask) {
      this.toggleButton = el("button", {type: "button", class: "mask-toggle", "aria-pressed": "false"},
                             "mask overlay (m)");
      this.toggleButton.addEventListener("click", () => this.setOverlay(!overlays.has(item.id)));
      this.controls.append(this.toggleButton);
      this.setOverlay(overlays.has(item.id));
    }
    this.playing = false;
  }
  play() {
    this.playing = true;
    for (const v of this.videos) { const r = v.play(); if (r) r.catch(() => {}); }
    this.button.textContent = "pause";
  }
  pause() {
    this.playing = false;
    for (const v of this.videos) v.pause();
    this.button.textContent = "play";
  }
  toggle() { if (this.playing) this.pause(); else this.play(); }
  frame() { return Math.min(this.n - 1, Math.max(0, Math.floor(this.anon.currentTime * this.fps + 1e-3))); }
  seek(frame) {
    frame = Math.min(this.n - 1, Math.max(0, Math.round(frame)));
    this.pause();
    const t = (frame + 0.5) / this.fps;  // the middle of the frame's display time
    for (const v of this.videos) v.currentTime = t;
    this.show(frame);
  }
  step(delta) { this.seek(this.frame() + delta); }
  show(frame) {
    this.scrub.value = String(frame);
    this.label.textContent = "frame " + frame + " / " + this.n;
  }
  setOverlay(on) {
    if (!this.mask) return false;
    if (on) overlays.add(this.item.id); else overlays.delete(this.item.id);
    this.mask.style.visibility = on ? "visible" : "hidden";  // it keeps playing, so it stays in step
    this.toggleButton.classList.toggle("on", on);
    this.toggleButton.setAttribute("aria-pressed", String(on));
    return true;
  }
  sync() {  // called every animation frame
    if (this.anon.seeking) return;
    const t = this.anon.currentTime;
    for (const v of [this.orig, this.mask]) {
      if (!v || v.seeking || v.readyState < 1) continue;
      if (Math.abs(v.currentTime - t) > 0.1) v.currentTime = t;
      if (this.playing && v.paused && !this.anon.paused) { const r = v.play(); if (r) r.catch(() => {}); }
    }
    if (this.playing) this.show(this.frame());
  }
  unload() {
    for (const v of this.videos) { v.pause(); v.removeAttribute("src"); v.load(); }
  }
}

function frameLoop() {
  for (const p of players) p.sync();
  requestAnimationFrame(frameLoop);
}

function flags(item) {
  const box = el("div", {class: "flags"});
  const marks = item.marks || [];
  if (marks.length) {
    const shown = marks.slice(0, 15).map(m => m.frame + (m.action ? " (" + m.action + ")" : ""));
    box.append(el("div", {class: "checkmarks"}, "written-frame check flagged " + marks.length + " frame(s): "
                  + shown.join(", ") + (marks.length > 15 ? ", ..." : "")));
  }
  const a = item.audit;
  if (a) {
    box.append(el("div", {class: "audit " + (a.flagged ? "flagged" : "passed")},
                  "audit: " + (a.flagged ? "flagged" : "passed") + ", suspicion " + Number(a.suspicion).toFixed(2)
                  + (a.rank ? ", rank " + a.rank : "") + (a.reason ? ": " + a.reason : "")));
  }
  return box.childNodes.length ? box : null;
}

// a card gets its media only near the viewport
function load(i) {
  if (loaded.has(i)) return;
  const item = ITEMS[i];
  const slot = cards[i].querySelector(".slot");
  const entry = {player: null};
  if (item.preview && item.preview.anonymised) {
    const player = new Player(item);
    slot.replaceChildren(el("div", {class: "pair"},
                            videoSide("original", player.origScreen, item.original_frames),
                            videoSide("anonymised", player.anonScreen, item.anonymised_frames)),
                         player.controls);
    entry.player = player;
    players.add(player);
    player.play();
  } else {
    slot.replaceChildren(el("div", {class: "pair"}, side("original", item.original_frames),
                            side("anonymised", item.anonymised_frames)));
  }
  loaded.set(i, entry);
  cards[i].classList.add("loaded");
}

function unload(i) {
  const entry = loaded.get(i);
  if (!entry) return;
  const slot = cards[i].querySelector(".slot");
  slot.style.minHeight = slot.offsetHeight + "px";  // the page keeps its length
  if (entry.player) { entry.player.unload(); players.delete(entry.player); }
  for (const img of slot.querySelectorAll("img")) img.removeAttribute("src");
  slot.replaceChildren();
  loaded.delete(i);
  cards[i].classList.remove("loaded");
}

function estimate(item) {
  const p = item.preview;
  return (p ? p.height + 40 : 180) + 20 + (item.original_frames.length || item.anonymised_frames.length ? 52 : 0);
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

let loadFailed = "";
async function save() {
  if (loadFailed) { setStatus(loadFailed + " (not saved)"); return; }
  setStatus("saving ...");
  try {
    const res = await fetch("api/verdicts", {method: "POST",
                                             headers: {"Content-Type": "application/json", "X-Privvid-Token": TOKEN},
                                             body: JSON.stringify(doc())});
    const body = await res.json();
    setStatus(res.ok ? "saved " + body.saved + " verdict(s)" + (DATA.verdicts_file ? " to " + DATA.verdicts_file : "")
                     : "error: " + body.error);
    document.body.dataset.saved = res.ok ? String(body.saved) : "error";
  } catch (e) { setStatus("save failed: " + e); }
}

function setStatus(text) { document.getElementById("status").textContent = text; }

function refreshCard(i) {
  const v = state.verdicts[ITEMS[i].id];
  cards[i].classList.toggle("done", !!v);
  for (const b of cards[i].querySelectorAll("button[data-verdict]"))
    b.classList.toggle("on", !!v && v.verdict === b.dataset.verdict);
}

function refresh() {
  const n = Object.keys(state.verdicts).length;
  document.getElementById("progress").textContent = n + " / " + ITEMS.length + " reviewed";
  for (let i = 0; i < cards.length; i++) refreshCard(i);
}

function setVerdict(i, verdict) {
  const item = ITEMS[i];
  const before = state.verdicts[item.id] || null;
  if (before && before.verdict === verdict) return;
  undoStack.push({id: item.id, before: before && Object.assign({}, before)});
  state.verdicts[item.id] = {"class": item["class"], rel: item.rel, mode: item.mode || "", verdict: verdict,
                             note: before ? before.note || "" : "", time: new Date().toISOString()};
  changed();
}

function undo() {
  const last = undoStack.pop();
  if (!last) { setStatus("nothing to undo"); return; }
  if (last.before) state.verdicts[last.id] = last.before; else delete state.verdicts[last.id];
  const i = INDEX.get(last.id);
  cards[i].querySelector("textarea").value = (state.verdicts[last.id] || {}).note || "";
  setCurrent(i, true);
  changed();
}

function setCurrent(i, scroll) {
  if (i < 0 || i >= cards.length) return;
  if (current >= 0 && current !== i) cards[current].classList.remove("current");
  current = i;
  cards[i].classList.add("current");
  document.body.dataset.current = ITEMS[i].id;
  load(i);
  if (scroll) cards[i].scrollIntoView({block: "center"});
}

function nextUnreviewed() {
  const n = ITEMS.length;
  for (let step = 1; step <= n; step++) {
    const i = (current + step + n) % n;
    if (!state.verdicts[ITEMS[i].id]) { setCurrent(i, true); return; }
  }
  setStatus("all " + n + " clips have a verdict");
}

function currentPlayer() {
  if (current < 0) return null;
  load(current);
  return loaded.get(current).player;
}

function typing(target) {
  if (!target || !target.tagName) return false;
  if (target.isContentEditable || target.tagName === "TEXTAREA" || target.tagName === "SELECT") return true;
  return target.tagName === "INPUT" && !["range", "checkbox", "radio", "button"].includes(target.type);
}

document.addEventListener("keydown", e => {
  if (e.ctrlKey || e.metaKey || e.altKey || e.isComposing) return;
  if (typing(e.target)) {  // a note (or the reviewer name) being typed: keys are text
    if (e.key === "Escape") e.target.blur();
    return;
  }
  const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  if (KEYS[key]) {
    if (current < 0) setCurrent(0, true);
    setVerdict(current, KEYS[key]);
    if (document.getElementById("advance").checked) nextUnreviewed();
  } else if (key === "n" || key === "j") {
    nextUnreviewed();
  } else if (key === "k") {
    setCurrent(Math.max(0, current - 1), true);
  } else if (key === "u") {
    undo();
  } else if (key === "m") {
    const p = currentPlayer();
    if (!p || !p.setOverlay(!overlays.has(ITEMS[current].id)))
      setStatus("no mask overlay for this clip (made without anonymize --save-masks, or no preview)");
  } else if (key === " " || key === "," || key === ".") {
    const p = currentPlayer();
    if (p) { if (key === " ") p.toggle(); else p.step(key === "," ? -1 : 1); }
  } else {
    return;
  }
  e.preventDefault();
});

function card(item, i) {
  const node = el("section", {class: "clip", id: "clip-" + item.id});
  node.dataset.id = item.id;
  node.dataset.index = String(i);
  node.append(el("h2", {}, item["class"] + " / " + item.rel.split("/").pop()),
              el("div", {class: "meta"}, "#" + item.id + "  " + item.rel + "  mode " + item.mode));
  if (item.problems.length) node.append(el("div", {class: "problems"}, item.problems.join("; ")));
  const info = flags(item);
  if (info) node.append(info);
  const slot = el("div", {class: "slot"});
  slot.style.minHeight = estimate(item) + "px";
  node.append(slot);
  const row = el("div", {class: "verdicts"});
  for (const v of DATA.verdicts) {
    const b = el("button", {type: "button"}, DATA.labels[v], el("kbd", {}, SHORT[v] || ""));
    b.dataset.verdict = v;
    b.addEventListener("click", () => setVerdict(i, v));
    row.append(b);
  }
  const note = el("textarea", {placeholder: "note (optional; Esc leaves the field)"});
  note.value = (state.verdicts[item.id] || {}).note || "";
  note.addEventListener("input", () => {
    const entry = state.verdicts[item.id];
    if (!entry) { setStatus("pick a verdict for #" + item.id + " first; the note is kept with it"); return; }
    entry.note = note.value;
    changed();
  });
  node.append(row, note);
  node.addEventListener("click", e => {
    setCurrent(i, false);
    const button = e.target.closest && e.target.closest("button");
    if (button) button.blur();  // so space and the other keys stay shortcuts
  });
  return node;
}

function render() {
  const all = document.createDocumentFragment();
  ITEMS.forEach((item, i) => { const node = card(item, i); cards.push(node); all.append(node); });
  document.getElementById("clips").append(all);
}

function watch() {
  if (!("IntersectionObserver" in window)) { cards.forEach((c, i) => load(i)); return; }
  const near = new IntersectionObserver(entries => {
    for (const e of entries) if (e.isIntersecting) load(Number(e.target.dataset.index));
  }, {rootMargin: NEAR + "px 0px"});
  const far = new IntersectionObserver(entries => {
    for (const e of entries) if (!e.isIntersecting) unload(Number(e.target.dataset.index));
  }, {rootMargin: FAR + "px 0px"});
  for (const c of cards) { near.observe(c); far.observe(c); }
}

function loadVisible() {  // at once, without waiting for the observers' first report
  const bottom = innerHeight + NEAR;
  for (let i = 0; i < cards.length; i++) {
    const r = cards[i].getBoundingClientRect();
    if (r.top > bottom) break;
    if (r.bottom >= -NEAR) load(i);
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
document.getElementById("advance").addEventListener("change", e => e.target.blur());

async function start() {
  if (served) {
    try {
      const res = await fetch("api/verdicts", {cache: "no-store"});
      const saved = await res.json();
      if (res.ok) {
        if (saved.verdicts && Object.keys(saved.verdicts).length) {
          state.verdicts = saved.verdicts;
          state.reviewer = FIXED || saved.reviewer || state.reviewer;
        }
      } else {
        loadFailed = "error: " + saved.error;
      }
    } catch (e) { setStatus("server not reachable: " + e); }
  }
  render();
  reviewer.value = state.reviewer || "";
  if (FIXED) {
    reviewer.readOnly = true;
    reviewer.title = "set by privvid qa serve --reviewer; verdicts go to " + DATA.verdicts_file;
    document.body.dataset.reviewer = FIXED;
  }
  refresh();
  if (loadFailed) { setStatus(loadFailed + " (saving is off)"); document.body.dataset.saved = "error"; }
  const first = ITEMS.findIndex(item => !state.verdicts[item.id]);
  if (ITEMS.length) setCurrent(Math.max(0, first), first > 0);
  loadVisible();
  watch();
  requestAnimationFrame(frameLoop);
  // interactive: cards rendered, the visible ones with their media requested, keys attached
  window.__readyAt = performance.now();
  window.__ready = true;
  document.body.dataset.interactive = "1";
  // ready once the visible frame strips have loaded (or failed): a reviewer, and a test, sees real frames
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
