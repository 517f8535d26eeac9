"""A replay server for the client benchmarks: pre-rendered customer pages, no server-side work.

Run as a script in its own process (so its CPU is not the client's):

    python bench/replay.py TEMPLATE.json CUSTOMERS LATENCY_MS

``TEMPLATE.json`` holds pages of real sandbox customers (``record_template``); the server
renders ``CUSTOMERS / 100`` pages from them up front — the template's customers again with
their ids shifted by the template's size per repetition, so every id is distinct — and then
answers ``GET /v1/customers?page[number]=N`` with page N's bytes after ``LATENCY_MS``
(``time.sleep`` in the request's own thread, so concurrent requests wait in parallel, as a
real API's would). It prints its base URL, and serves until its stdin closes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

PAGE_SIZE = 100


def record_template(path: Path, customers: int = 10_000) -> None:
    """Pages of ``customers`` sandbox customers (ascending ``created_at``, as kql reads them)."""
    import httpx

    from kql.sandbox import running

    with running(customers=customers) as sb, httpx.Client(headers={"Authorization": f"Bearer {sb.token}"}) as http:
        pages = []
        for number in range(1, customers // PAGE_SIZE + 1):
            doc = http.get(f"{sb.base_url}/v1/customers", params={
                "sort": "created_at", "page[number]": number, "page[size]": PAGE_SIZE}).raise_for_status().json()
            pages.append(doc["data"])
    path.write_text(json.dumps(pages))


def render(template: list[list[dict[str, Any]]], customers: int, base: str) -> dict[int, bytes]:
    """Page number -> the response body, as the sandbox would have rendered it."""
    per_copy = sum(len(page) for page in template)
    count = customers // PAGE_SIZE
    pages: dict[int, bytes] = {}
    for number in range(1, count + 1):
        copy, index = divmod(number - 1, len(template))
        data = []
        for item in template[index]:
            cid = str(int(item["id"]) + copy * per_copy)
            resource = dict(item, id=cid)
            if "relationships" in item:
                text = json.dumps(item["relationships"]).replace(f"/customers/{item['id']}/", f"/customers/{cid}/")
                resource["relationships"] = json.loads(text)
            data.append(resource)

        def link(n: int) -> str:
            return f"{base}/v1/customers?page[size]={PAGE_SIZE}&page[number]={n}&sort=created_at"

        links = {"self": link(number), "first": link(1), "last": link(count)}
        if number > 1:
            links["prev"] = link(number - 1)
        if number < count:
            links["next"] = link(number + 1)
        doc = {"data": data, "links": links,
               "meta": {"total_pages": count, "total_count": customers, "current_page": number}}
        pages[number] = json.dumps(doc, separators=(",", ":")).encode()
    return pages


def serve(template_path: str, customers: int, latency_ms: float) -> None:
    template = json.loads(Path(template_path).read_text())
    pages: dict[int, bytes] = {}
    latency = latency_ms / 1000
    empty = b'{"data":[],"links":{},"meta":{"total_pages":0,"total_count":0,"current_page":0}}'

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            query = dict(parse_qsl(urlsplit(self.path).query))
            number = query.get("page[number]", "1")
            body = pages.get(int(number), empty) if number.isdigit() else empty
            if latency:
                time.sleep(latency)
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.api+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    base = f"http://127.0.0.1:{server.server_address[1]}"
    pages.update(render(template, customers, base))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(base, flush=True)
    sys.stdin.read()
    server.shutdown()


@contextmanager
def replaying(template: Path, customers: int, latency_ms: float = 0) -> Iterator[str]:
    """The replay server in a child process, for the block's duration: its base URL."""
    process = subprocess.Popen(
        [sys.executable, __file__, str(template), str(customers), str(latency_ms)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        yield process.stdout.readline().strip()
    finally:
        process.stdin.close()
        process.wait(timeout=30)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
