"""A client hanging up mid-response is normal for a streaming reader: the sandbox says nothing."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from kql.sandbox import running


def test_reset_connections_print_no_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    with running(customers=2000) as sb:
        port = int(sb.base_url.rsplit(":", 1)[1])
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", port)) as conn:
                head = f"GET /v1/customers?page[size]=100 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {sb.token}"
                conn.sendall((head + "\r\n\r\n").encode())
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        time.sleep(0.3)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception occurred" not in err
