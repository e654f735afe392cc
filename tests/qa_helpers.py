"""Helpers shared by the QA server and review-page tests (imported as a top-level module, like fakes)."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path
from typing import Any, Callable


def request(server: Any, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request to a QA server on loopback: (status, lower-cased headers, body)."""
    port = server.server_address[1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Host": f"127.0.0.1:{port}", **(headers or {})})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def wait_for(path: Path, predicate: Callable[[dict], bool], timeout: float = 10.0) -> dict:
    """The JSON document at ``path`` once ``predicate`` holds for it (a page saves asynchronously)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file():
            doc = json.loads(path.read_text())
            if predicate(doc):
                return doc
        time.sleep(0.05)
    raise AssertionError(f"{path} never reached the expected content: "
                         f"{path.read_text() if path.is_file() else 'missing'}")
