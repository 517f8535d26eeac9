"""`kql sandbox` as a process: prints its URL, serves, stops cleanly on Ctrl-C / SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import httpx
import pytest

from kql.sandbox.cli import main


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as for a shell's background job


@pytest.mark.parametrize(("sig", "background"), [(signal.SIGINT, False), (signal.SIGTERM, False),
                                                 (signal.SIGINT, True)])
def test_serves_until_interrupted(sig: signal.Signals, background: bool) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "kql.sandbox.cli", "--port", "0", "--customers", "100", "--seed", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_ignore_sigint if background else None,
    )
    try:
        assert process.stdout is not None
        base = process.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:")
        body = httpx.get(f"{base}/v1/customers", headers={"Authorization": "Bearer sandbox"}).json()
        assert body["meta"]["total_count"] == 100
        process.send_signal(sig)
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert "Traceback" not in err


def test_bad_settings_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--port", "0", "--customers", "5", "--error-rate", "3"]) == 2
    assert "error_rate" in capsys.readouterr().err
    assert main(["--port", "0", "--customers", "5", "--db", "/nonexistent/dir/x.db"]) == 2
    assert "kql sandbox:" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["--customers", "many"])
    assert exit_.value.code == 2


def test_a_busy_port_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["--port", str(busy.getsockname()[1]), "--customers", "5"]) == 2
    assert "kql sandbox:" in capsys.readouterr().err
