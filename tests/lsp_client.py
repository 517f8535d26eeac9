"""A small, synchronous LSP client for the tests: ``kql lsp`` as a real subprocess over
stdio, JSON-RPC with Content-Length framing, read by a thread into queues.

Waits are bounded generously (no timing is asserted): a busy CI machine is only slower.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

WAIT = 60.0  # seconds: a bound against hanging, never an expectation


class LSPClient:
    def __init__(self, cwd: Path, *args: str, env: dict[str, str] | None = None) -> None:
        environment = {k: v for k, v in os.environ.items() if k != "KQL_SEGMENTS"} | (env or {})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kql", "lsp", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=environment,
        )
        self.next_id = 0
        self.responses: dict[int, queue.Queue[dict[str, Any]]] = {}
        self.notifications: queue.Queue[dict[str, Any]] = queue.Queue()
        self.lock = threading.Lock()
        self.stderr = b""
        threading.Thread(target=self._read, daemon=True).start()
        self.stderr_reader = threading.Thread(target=self._drain_stderr, daemon=True)
        self.stderr_reader.start()

    # ---- framing -----------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while True:
            length = None
            while True:
                line = stream.readline()
                if not line:
                    return  # the server closed stdout
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            assert length is not None, "a message without Content-Length"
            message = json.loads(stream.read(length).decode("utf-8"))
            if "id" in message and "method" not in message:
                self._box(message["id"]).put(message)
            elif "id" in message:  # a request from the server (e.g. window/showMessageRequest)
                self.send({"id": message["id"], "result": None})
            else:
                self.notifications.put(message)

    def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr += line

    def _box(self, number: int) -> queue.Queue[dict[str, Any]]:
        with self.lock:
            return self.responses.setdefault(number, queue.Queue())

    # ---- messages ----------------------------------------------------------------------

    def request(self, method: str, params: Any = None) -> Any:
        """Send a request and return its result (an error response fails the test)."""
        self.next_id += 1
        number = self.next_id
        self.send({"id": number, "method": method, "params": params})
        response = self._box(number).get(timeout=WAIT)
        assert "error" not in response, response
        return response["result"]

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"method": method, "params": params})

    def wait_for(self, method: str, **match: Any) -> dict[str, Any]:
        """The next notification ``method`` whose params contain ``match`` (others are skipped)."""
        while True:
            message = self.notifications.get(timeout=WAIT)
            params = message.get("params") or {}
            if message["method"] == method and all(params.get(k) == v for k, v in match.items()):
                return params  # type: ignore[no-any-return]

    def initialize(self, root: Path) -> dict[str, Any]:
        result = self.request(
            "initialize",
            {"processId": os.getpid(), "rootUri": root.as_uri(), "capabilities": {}, "workspaceFolders": None},
        )
        self.notify("initialized", {})
        return result  # type: ignore[no-any-return]

    def open(self, path: Path, text: str, language: str = "kql", version: int = 1) -> list[dict[str, Any]]:
        """Open a document and return the diagnostics the server publishes for it."""
        uri = path.as_uri()
        self.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": language, "version": version, "text": text}},
        )
        return self.wait_for("textDocument/publishDiagnostics", uri=uri)["diagnostics"]  # type: ignore[no-any-return]

    def change(self, path: Path, text: str, version: int) -> list[dict[str, Any]]:
        uri = path.as_uri()
        self.notify(
            "textDocument/didChange",
            {"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]},
        )
        return self.wait_for("textDocument/publishDiagnostics", uri=uri)["diagnostics"]  # type: ignore[no-any-return]

    def at(self, method: str, path: Path, line: int, character: int, **extra: Any) -> Any:
        position = {"line": line, "character": character}
        return self.request(method, {"textDocument": {"uri": path.as_uri()}, "position": position, **extra})

    def close(self) -> int:
        """shutdown, then exit; the server's exit code."""
        if self.process.poll() is None:
            self.request("shutdown")
            self.notify("exit")
        try:
            code = self.process.wait(timeout=WAIT)
            self.stderr_reader.join(timeout=WAIT)  # all of stderr, for the caller to inspect
            return code
        finally:
            for stream in (self.process.stdin, self.process.stdout):
                if stream is not None:
                    stream.close()
