"""HTTP on 127.0.0.1: reads requests, applies faults, writes `Response`s."""

from __future__ import annotations

import contextlib
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kql.sandbox.api import App, Response, document
from kql.sandbox.errors import ApiError
from kql.sandbox.faults import Faults, Stats

MAX_BODY = 1 << 20


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    app: App

    def __init__(self, port: int, faults: Faults, stats: Stats, *, read_timeout: float) -> None:
        # Binding comes first: a port in use fails before any data is built.
        super().__init__(("127.0.0.1", port), Handler)
        self.faults, self.stats, self.read_timeout = faults, stats, read_timeout

    def attach(self, app: App) -> None:
        """The application to serve (built after the port is bound); learns the base URL."""
        self.app = app
        app.base = f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-response (a stopped stream, Ctrl-C) is normal: no traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            return
        print(f"kql sandbox: error while serving {client_address[0]}: {error!r}", file=sys.stderr)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients can pool connections
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stalls
    server: SandboxServer
    server_version = "kql-sandbox"
    sys_version = ""

    def setup(self) -> None:
        # A read timeout on the socket: a client that stops halfway through its request line,
        # headers or body (or idles on a kept-alive connection) is dropped after read_timeout
        # seconds instead of holding a thread forever.
        super().setup()
        self.connection.settimeout(self.server.read_timeout)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests and benchmarks run thousands of requests

    def _serve(self) -> None:
        server = self.server
        server.stats.bump("requests")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True  # the rest of the stream cannot be trusted
            self._write(document(400, ApiError(400, "bad Content-Length").document()), drop=False)
            return
        body = self.rfile.read(length) if length else b""
        decision = server.faults.decide()
        if decision.delay:
            time.sleep(decision.delay)
        if decision.status == 429:
            server.stats.bump("rate_limited")
            error = ApiError(429, "rate limit exceeded", title="Too Many Requests")
            response = document(429, error.document(), **{"Retry-After": str(decision.retry_after)})
        elif decision.status == 503:
            server.stats.bump("unavailable")
            error = ApiError(503, "the sandbox is injecting errors (--error-rate)")
            response = document(503, error.document(), **{"Retry-After": str(decision.retry_after)})
        else:
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                response = server.app.handle(self.command, self.path, headers, body)
            except Exception as exc:  # a bug must still answer JSON:API, never a traceback
                response = document(500, ApiError(500, f"sandbox error: {type(exc).__name__}").document())
            if response.status == 200 and self.path.split("?")[0].rstrip("/") == "/v1/oauth/token":
                server.stats.bump("tokens_issued")
        self._write(response, drop=decision.drop)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed requests (bad request line, unsupported method) get JSON:API errors too."""
        self.close_connection = True
        self._write(document(code, ApiError(code, message or explain or "bad request").document()), drop=False)

    def _write(self, response: Response, *, drop: bool) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for key, value in response.headers.items():
            self.send_header(key, value)
        if response.status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="kql-sandbox"')
        self.end_headers()
        if drop and len(response.body) > 1:
            # Half the promised body, then a hard close: the client sees a truncated response.
            self.server.stats.bump("dropped")
            self.wfile.write(response.body[: len(response.body) // 2])
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(response.body)


