"""A small, scriptable Kajabi-like API on 127.0.0.1 for the executor's fault tests.

It serves ``/v1/customers`` (page[number], page[size], sort by created_at either
way) and ``/v1/oauth/token`` from memory, records every request, and lets a test
replace any answer through ``hook``: a status and body, a delay, a connection
dropped mid-body, a body trickled a byte at a time, a redirect. ``scenario`` installs
the hostile servers of issue 11 by name (short page, overlap, absurd total_pages, huge
body, trickle); ``python -m tests.executor.fakeapi SCENARIO`` serves one until stopped,
for subprocess tests and ``bench/soak.py``. The real sandbox is used where no fault is needed.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs

TOKEN = "tok-SECRET-0123456789"


@attrs.define
class Seen:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: str

    @property
    def page(self) -> int:
        return int(self.params.get("page[number]", "1"))

    @property
    def token(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None


@attrs.define
class Reply:
    status: int = 200
    body: bytes | dict[str, Any] | None = None
    headers: dict[str, str] = attrs.Factory(dict)
    delay: float = 0.0
    drop_after: int | None = None  # send this many body bytes of a longer promised body, then close
    trickle: float | None = None  # send the body one byte every this many seconds
    chunks: int | None = None  # stream this many 1 MiB chunks of filler (chunked, no Content-Length)
    trickle_head: float | None = None  # send the status line and headers one byte every this many seconds


Hook = Callable[[Seen], Reply | None]


class FakeAPI:
    def __init__(
        self,
        customers: int = 250,
        *,
        links_base: str | None = None,
        token: str | None = TOKEN,
        client_id: str | None = None,
        client_secret: str | None = None,
        expires_in: int | None = 3600,
    ) -> None:
        self.customers = [self._customer(i) for i in range(1, customers + 1)]
        self.links_base = links_base
        self.requests: list[Seen] = []
        self.hook: Hook | None = None
        self.lock = threading.Lock()
        self.valid_tokens: set[str] = {token} if token else set()
        self.client_id, self.client_secret, self.expires_in = client_id, client_secret, expires_in
        self.grants: list[dict[str, str]] = []
        self.issue_refresh_tokens = False
        self.refresh_tokens: set[str] = set()
        self._server = _QuietServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @staticmethod
    def _customer(i: int) -> dict[str, Any]:
        return {"id": str(i), "name": f"Customer {i}", "email": f"c{i}@example.com", "created_at": f"t{i:08d}"}

    def insert(self, n: int) -> None:
        with self.lock:
            start = len(self.customers) + 1
            self.customers.extend(self._customer(i) for i in range(start, start + n))

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeAPI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def scenario(self, name: str, times: int | None = None) -> None:
        """Install one hostile behaviour by name; ``times`` limits how often it strikes (per page)."""
        struck: dict[int, int] = {}

        def strike(page: int) -> bool:
            with self.lock:
                struck[page] = struck.get(page, 0) + 1
                return times is None or struck[page] <= times

        def hook(seen: Seen) -> Reply | None:
            if seen.path != "/v1/customers":
                return None
            doc = self.page_document(seen.params)
            size = int(seen.params.get("page[size]", "25"))
            if name == "short" and seen.page == 2 and strike(2):
                doc["data"] = doc["data"][:10]  # page 2 of several holds 10 instead of a full page
            elif name == "overlap" and seen.page == 2 and strike(2):
                before = self.page_document({**seen.params, "page[number]": "1"})["data"][-5:]
                doc["data"] = (before + doc["data"])[:size]  # repeats page 1's last 5, loses 5
            elif name == "absurd-pages":
                doc["meta"]["total_pages"] = 10**12
            elif name == "huge":
                return Reply(200, chunks=64)
            elif name == "trickle":
                return Reply(200, json.dumps(doc).encode(), trickle=1.0)
            elif name == "trickle-head":
                return Reply(200, doc, trickle_head=0.5)
            elif name != "none" and name not in ("short", "overlap"):
                raise ValueError(f"unknown scenario {name!r}")
            return Reply(200, doc)

        self.hook = hook

    def pages_requested(self) -> list[int]:
        return [s.page for s in self.requests if s.path == "/v1/customers"]

    # -- default behaviour ----------------------------------------------------

    def answer(self, seen: Seen) -> Reply:
        if seen.path == "/v1/oauth/token":
            return self._token(seen)
        if seen.token not in self.valid_tokens:
            return Reply(401, {"errors": [{"status": "401", "title": "Unauthorized", "detail": "bad token"}]})
        if seen.path == "/v1/customers":
            return Reply(200, self.page_document(seen.params))
        return Reply(404, {"errors": [{"status": "404", "title": "Not Found"}]})

    def page_document(self, params: dict[str, str]) -> dict[str, Any]:
        number = int(params.get("page[number]", "1"))
        size = int(params.get("page[size]", "25"))
        with self.lock:
            rows = list(self.customers)
        if params.get("sort", "-created_at") == "-created_at":
            rows.reverse()
        total = len(rows)
        pages = max(1, math.ceil(total / size))
        chunk = rows[(number - 1) * size : number * size]
        base = self.links_base or f"http://127.0.0.1:{self.port}"

        def link(n: int) -> str:
            return f"{base}/v1/customers?page[number]={n}&page[size]={size}"

        fields = params["fields[customers]"].split(",") if "fields[customers]" in params else None
        return {
            "data": [
                {
                    "id": c["id"],
                    "type": "customers",
                    "attributes": {k: v for k, v in c.items() if k != "id" and (fields is None or k in fields)},
                }
                for c in chunk
            ],
            "links": {"self": link(number), "next": link(number + 1) if number < pages else None},
            "meta": {"total_pages": pages, "total_count": total, "current_page": number},
        }

    def _token(self, seen: Seen) -> Reply:
        form = dict(parse_qsl(seen.body))
        ok = (
            form.get("grant_type") == "client_credentials"
            and form.get("client_id") == self.client_id
            and form.get("client_secret") == self.client_secret
            and self.client_id is not None
        )
        refreshed = form.get("grant_type") == "refresh_token" and form.get("refresh_token") in self.refresh_tokens
        if not (ok or refreshed):
            return Reply(400 if form.get("grant_type") == "refresh_token" else 401, {"error": "invalid_grant"})
        with self.lock:
            self.grants.append(form)
            token = f"granted-{len(self.grants)}-XYZW"
            self.valid_tokens.add(token)
        body: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
        if self.issue_refresh_tokens:
            body["refresh_token"] = f"refresh-{len(self.grants)}-XYZW"
            self.refresh_tokens.add(body["refresh_token"])
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return Reply(200, body)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out or hang up on purpose are the point of these tests


def _handler(api: FakeAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls between headers and body

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            try:
                self._answer(method)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up on us (a timeout test): fine

        def _answer(self, method: str) -> None:
            parts = urlsplit(self.path)
            parts = parts._replace(path=self.path.split("?", 1)[0])  # the raw target: "//v1/…" must not pass
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            seen = Seen(
                method,
                parts.path,
                dict(parse_qsl(parts.query, keep_blank_values=True)),
                {k.lower(): v for k, v in self.headers.items()},
                body,
            )
            with api.lock:
                api.requests.append(seen)
            reply = (api.hook(seen) if api.hook else None) or api.answer(seen)
            if reply.delay:
                time.sleep(reply.delay)
            payload = (
                reply.body
                if isinstance(reply.body, bytes)
                else json.dumps(reply.body).encode()
                if reply.body is not None
                else b""
            )
            if reply.trickle_head is not None:
                self._trickle_head(reply.status, payload, reply.trickle_head)
                return
            self.send_response(reply.status)
            headers = {"Content-Type": "application/vnd.api+json"} | reply.headers
            for name, value in headers.items():
                self.send_header(name, value)
            if reply.chunks is not None:
                self._chunked(reply.chunks)
                return
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if reply.trickle is not None:
                for i in range(len(payload)):
                    self.wfile.write(payload[i : i + 1])
                    self.wfile.flush()
                    time.sleep(reply.trickle)
                return
            if reply.drop_after is not None:
                self.wfile.write(payload[: reply.drop_after])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.wfile.write(payload)

        def _trickle_head(self, status: int, payload: bytes, interval: float) -> None:
            """Headers a byte at a time, each within any read timeout: only a whole-attempt bound ends it."""
            head = (
                f"HTTP/1.1 {status} OK\r\nContent-Type: application/vnd.api+json\r\n"
                f"X-Padding: {'p' * 200}\r\nContent-Length: {len(payload)}\r\n\r\n"
            ).encode()
            for i in range(len(head)):
                self.wfile.write(head[i : i + 1])
                self.wfile.flush()
                time.sleep(interval)
            self.wfile.write(payload)
            self.close_connection = True

        def _chunked(self, chunks: int) -> None:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            filler = b'{"data": ["' + b"x" * (1 << 20)
            for _ in range(chunks):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(filler), filler))
                filler = b"x" * (1 << 20)
            self.wfile.write(b"0\r\n\r\n")
            self.close_connection = True

    return Handler


@contextmanager
def serving(customers: int = 250, **options: Any) -> Iterator[FakeAPI]:
    api = FakeAPI(customers, **options).start()
    try:
        yield api
    finally:
        api.stop()


def main(argv: list[str] | None = None) -> None:
    """Serve one scenario on 127.0.0.1 until stopped; prints the base URL and token."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenario", nargs="?", default="none")
    parser.add_argument("--customers", type=int, default=250)
    parser.add_argument("--times", type=int, default=None)
    args = parser.parse_args(argv)
    api = FakeAPI(args.customers)
    api.scenario(args.scenario, args.times)
    api.start()
    print(api.base_url, TOKEN, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        api.stop()


if __name__ == "__main__":
    main()
