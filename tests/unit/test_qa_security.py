"""``privvid qa serve`` answers only its own page: write token, Origin and Content-Type on writes,
Host on every request (DNS rebinding), no symlinks, no directory listings."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qa_helpers import request
from privvid.cli.main import app
from privvid.qa import make_server
from privvid.qa.sheet import allowed_hosts, is_loopback, write_sheet

FRAME = b"\xff\xd8\xff\xe0ORIGINAL-FRAME-BYTES\xff\xd9"  # stands in for a raw original frame
SAVED = {"reviewer": "ann", "verdicts": {"0000": {"class": "jump", "rel": "jump/clip0", "verdict": "pass",
                                                  "note": "", "time": ""}}}


def _qa_folder(folder: Path) -> Path:
    """A QA folder as `privvid qa sample` writes it (sample.json, media/*.jpg) plus saved verdicts."""
    (folder / "media").mkdir(parents=True)
    items = []
    for i, label in enumerate(("jump", "run")):
        item_id = f"{i:04d}"
        frames = {kind: [f"media/{item_id}_{kind}_00.jpg"] for kind in ("orig", "anon")}
        for name in frames["orig"] + frames["anon"]:
            (folder / name).write_bytes(FRAME)
        items.append({"id": item_id, "class": label, "rel": f"{label}/clip0", "mode": "remove",
                      "original_frames": frames["orig"], "anonymised_frames": frames["anon"], "problems": []})
    (folder / "sample.json").write_text(json.dumps({"dataset": "/data/out", "seed": 0, "per_class": 1,
                                                    "items": items}))
    (folder / "verdicts.json").write_text(json.dumps(SAVED))
    return folder


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, object]]:
    folder = _qa_folder(tmp_path / "qa")
    server = make_server(folder, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, server
    finally:
        server.shutdown()
        server.server_close()


def _page_token(server) -> str:
    """The write token, read the way the page's script reads it: from the served page."""
    status, _, page = request(server, "GET", "/index.html")
    assert status == 200
    found = re.search(rb'<meta name="privvid-token" content="([^"]+)">', page)
    assert found, "the served page carries no write token"
    return found.group(1).decode()


def _post(server, doc: dict, **headers: str) -> tuple[int, dict[str, str], bytes]:
    return request(server, "POST", "/api/verdicts", json.dumps(doc).encode(), headers)


NEW = {"reviewer": "mallory", "verdicts": {}}


def test_cross_origin_text_plain_post_without_token_is_refused(served) -> None:
    folder, server = served
    before = (folder / "verdicts.json").read_text()
    # what a form or a no-preflight fetch from any web page can send
    status, _, _ = _post(server, NEW, **{"Content-Type": "text/plain", "Origin": "http://evil.example"})
    assert status == 403
    status, _, _ = _post(server, NEW, **{"Content-Type": "text/plain"})
    assert status == 403
    assert (folder / "verdicts.json").read_text() == before


def test_writes_need_the_token_own_origin_and_json(served) -> None:
    folder, server = served
    before = (folder / "verdicts.json").read_text()
    token = _page_token(server)
    assert token == server.token and len(token) >= 32
    port = server.server_address[1]
    json_type = {"Content-Type": "application/json"}
    assert _post(server, NEW, **json_type)[0] == 403                                       # no token
    assert _post(server, NEW, **json_type, **{"X-Privvid-Token": token[:-1] + "x"})[0] == 403  # wrong token
    for origin in ("http://evil.example", f"http://evil.example:{port}", "null", f"http://127.0.0.1:{port + 1}"):
        status, _, body = _post(server, NEW, **json_type, **{"X-Privvid-Token": token, "Origin": origin})
        assert status == 403, origin
        assert "cross-origin" in json.loads(body)["error"]
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        status, _, _ = _post(server, NEW, **{"Content-Type": content_type, "X-Privvid-Token": token})
        assert status == 415, content_type
    assert (folder / "verdicts.json").read_text() == before
    # the page's own save: same origin, token, JSON (a charset parameter is fine); no Origin is fine too
    status, _, body = _post(server, NEW, **{"Content-Type": "application/json; charset=utf-8",
                                            "X-Privvid-Token": token, "Origin": f"http://127.0.0.1:{port}"})
    assert status == 200 and json.loads(body)["saved"] == 0
    assert json.loads((folder / "verdicts.json").read_text())["reviewer"] == "mallory"
    status, _, _ = _post(server, SAVED, **json_type, **{"X-Privvid-Token": token, "Host": f"localhost:{port}",
                                                        "Origin": f"http://localhost:{port}"})
    assert status == 200
    assert json.loads((folder / "verdicts.json").read_text())["verdicts"]["0000"]["verdict"] == "pass"


def test_each_server_has_its_own_token_and_the_file_on_disk_none(tmp_path: Path) -> None:
    folder = _qa_folder(tmp_path / "qa")
    first, second = make_server(folder, port=0), make_server(folder, port=0)
    try:
        assert first.token != second.token
    finally:
        first.server_close()
        second.server_close()
    page = write_sheet(folder).read_text()
    assert '<meta name="privvid-token" content="">' in page
    assert first.token not in page


def test_a_forged_host_gets_nothing(served) -> None:
    """DNS rebinding: evil.example resolves to 127.0.0.1, the browser sends Host: evil.example."""
    folder, server = served
    port = server.server_address[1]
    forged = (f"evil.example:{port}", "evil.example", f"127.0.0.1:{port + 1}", f"127.0.0.1.evil.example:{port}")
    for host in forged:
        for path in ("/media/0000_orig_00.jpg", "/index.html", "/", "/api/verdicts"):
            status, _, body = request(server, "GET", path, headers={"Host": host})
            assert status in (403, 421) and body == b"", (host, path)
    token = _page_token(server)
    for host in forged:
        status, _, body = _post(server, NEW, **{"Host": host, "Content-Type": "application/json",
                                                "X-Privvid-Token": token})
        assert status in (403, 421) and body == b""
    assert json.loads((folder / "verdicts.json").read_text()) == SAVED
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
        status, headers, body = request(server, "GET", "/media/0000_orig_00.jpg", headers={"Host": host})
        assert status == 200 and body == FRAME, host
        assert headers["content-type"] == "image/jpeg"
        assert headers["x-content-type-options"] == "nosniff" and headers["cache-control"] == "no-store"


def test_symlinks_are_not_followed(served, tmp_path: Path) -> None:
    folder, server = served
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(b"\xff\xd8OUTSIDE-THE-QA-FOLDER")
    (folder / "media" / "escape.jpg").symlink_to(outside)
    (folder / "media" / "alias.jpg").symlink_to(folder / "media" / "0000_orig_00.jpg")  # even inside
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "x.jpg").write_bytes(b"\xff\xd8ELSEWHERE")
    (folder / "media" / "linked").symlink_to(other, target_is_directory=True)
    for path in ("/media/escape.jpg", "/media/alias.jpg", "/media/linked/x.jpg"):
        status, _, body = request(server, "GET", path)
        assert status == 404 and b"\xff\xd8" not in body, path


def test_no_directory_listing_and_nothing_outside_media(served, tmp_path: Path) -> None:
    folder, server = served
    (tmp_path / "outside.txt").write_text("outside")
    (folder / "media" / "sub").mkdir()
    for path in ("/media", "/media/", "/media/sub", "/media/sub/", "/media/../sample.json", "/media/%2e%2e/sample.json",
                 "/sample.json", "/verdicts.json", "/media/../../outside.txt", "/%2e%2e/outside.txt",
                 "/media/.hidden.jpg", "/media/missing.jpg"):
        status, _, body = request(server, "GET", path)
        assert status == 404, path
        assert b"0000_orig_00.jpg" not in body and b"outside" not in body, path
    status, headers, body = request(server, "GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html") and b"privvid QA" in body
    status, _, body = request(server, "HEAD", "/media/0000_anon_00.jpg")
    assert status == 200 and body == b""


def test_allowed_hosts_and_loopback() -> None:
    assert allowed_hosts("127.0.0.1", 8765) == {"127.0.0.1:8765", "localhost:8765", "[::1]:8765"}
    assert "192.168.1.5:8000" in allowed_hosts("192.168.1.5", 8000)
    assert not any(h.startswith("0.0.0.0") for h in allowed_hosts("0.0.0.0", 8000, "0.0.0.0"))
    assert "localhost" in allowed_hosts("127.0.0.1", 80)  # the default port is left out of Host
    assert all(map(is_loopback, ("127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]")))
    assert not any(map(is_loopback, ("0.0.0.0", "192.168.1.5", "example.org", "::")))


class _FakeServer:
    server_address = ("0.0.0.0", 8765)

    def serve_forever(self) -> None:
        raise KeyboardInterrupt

    def server_close(self) -> None:
        pass


def test_serve_warns_when_not_on_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import privvid.qa

    monkeypatch.setattr(privvid.qa, "make_server", lambda *args, **kwargs: _FakeServer())
    runner = CliRunner()
    result = runner.invoke(app, ["qa", "serve", str(tmp_path), "--host", "0.0.0.0"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "warning" in text and "reachable from the network" in text and "original frames" in text
    assert "http://127.0.0.1:8765/index.html" in text
    result = runner.invoke(app, ["qa", "serve", str(tmp_path)])
    assert result.exit_code == 0 and "warning" not in result.output


def test_serve_refuses_a_taken_port_and_a_verdicts_file_it_cannot_write(tmp_path: Path) -> None:
    import socket

    from privvid.errors import ConfigError

    folder = _qa_folder(tmp_path / "qa")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ConfigError, match="cannot serve on 127.0.0.1:.*choose another --port"):
            make_server(folder, port=taken.getsockname()[1])
    (tmp_path / "a file").write_text("x")
    with pytest.raises(ConfigError, match="a file, not a folder"):
        make_server(folder, port=0, verdicts=tmp_path / "a file" / "v.json")
    # a missing folder is made, as for qa report --json and qa sample --out
    make_server(folder, port=0, verdicts=tmp_path / "reviews" / "v.json").server_close()
    assert (tmp_path / "reviews").is_dir()
    with pytest.raises(ConfigError, match="is a folder"):
        make_server(folder, port=0, verdicts=folder)


def test_a_save_that_fails_is_an_error_the_page_shows(tmp_path: Path) -> None:
    folder = _qa_folder(tmp_path / "qa")
    away = tmp_path / "reviews"
    away.mkdir()
    server = make_server(folder, port=0, verdicts=away / "v.json")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        away.rmdir()   # the folder went away while the reviewer worked
        token = _page_token(server)
        status, _, body = _post(server, SAVED, **{"Content-Type": "application/json", "X-Privvid-Token": token})
        assert status == 500 and "not saved" in json.loads(body)["error"]
    finally:
        server.shutdown()
        server.server_close()


def test_bodies_too_deep_or_not_utf8_are_a_400_and_the_server_goes_on(served) -> None:
    # 200,000 nested lists made the JSON parser raise RecursionError: the connection dropped, a traceback printed
    folder, server = served
    before = (folder / "verdicts.json").read_text()
    headers = {"Content-Type": "application/json", "X-Privvid-Token": _page_token(server)}
    status, _, body = request(server, "POST", "/api/verdicts", b"[" * 200_000 + b"]" * 200_000, headers)
    assert status == 400 and "nested too deeply" in json.loads(body)["error"]
    status, _, body = request(server, "POST", "/api/verdicts", '{"verdicts": {}}'.encode("utf-16"), headers)
    assert status == 400 and "not UTF-8" in json.loads(body)["error"]
    status, _, body = request(server, "POST", "/api/verdicts", b'{"verdicts": ', headers)
    assert status == 400 and "not JSON" in json.loads(body)["error"]
    assert (folder / "verdicts.json").read_text() == before
    assert _post(server, SAVED, **headers)[0] == 200   # still serving


def test_a_damaged_verdicts_file_is_refused_at_start_and_never_overwritten(tmp_path: Path) -> None:
    from privvid.errors import ConfigError

    folder = _qa_folder(tmp_path / "qa")
    for damaged in ('{"verdicts": {"00', '{"verdicts": {"9999": {"verdict": "pass"}}}'):
        (folder / "verdicts.json").write_text(damaged)
        with pytest.raises(ConfigError, match="verdicts file .*verdicts.json cannot be used"):
            make_server(folder, port=0)
        assert (folder / "verdicts.json").read_text() == damaged
    # damaged while the server runs: the page's load gets an error (it then saves nothing), not a dropped connection
    (folder / "verdicts.json").write_text(json.dumps(SAVED))
    server = make_server(folder, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        token = _page_token(server)   # a page loaded before the damage
        (folder / "verdicts.json").write_text('{"verdicts": {"00')
        status, _, body = request(server, "GET", "/api/verdicts")
        assert status == 500 and "cannot be used" in json.loads(body)["error"]
        status, _, body = _post(server, SAVED, **{"Content-Type": "application/json", "X-Privvid-Token": token})
        assert status == 409 and "not saved" in json.loads(body)["error"]
        assert (folder / "verdicts.json").read_text() == '{"verdicts": {"00'   # never overwritten
        assert 'loadFailed = "error: " + saved.error' in request(server, "GET", "/index.html")[2].decode()
    finally:
        server.shutdown()
        server.server_close()
