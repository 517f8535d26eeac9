"""docs/embedding.md's worked example runs and prints what the page says."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT


def test_worked_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = (ROOT / "docs" / "embedding.md").read_text(encoding="utf-8")
    code = page.split("## A worked example")[1].split("```python\n")[1].split("```")[0]
    (tmp_path / "kql.toml").write_text('[segments.vip]\nquery = "net_revenue > 500"\n')
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "embedding.md", "exec"), {})
    printed = out.getvalue().splitlines()
    assert printed[0].startswith("{'ok': False, 'problems': [{'code': 'E102'")
    assert "'span': [13, 18]" in printed[0]
    assert printed[1].startswith("[{'label': 'healthy', 'kind': 'value', 'insert': 'healthy'")
    assert printed[2] == "not has_tag(5) and subscribed"
    # The comments in the page show the same output.
    comments = [line[2:] for line in code.splitlines() if line.startswith("# ")]
    assert comments[-1] == printed[2]
    assert re.search(r"'start': 26, 'end': 27", printed[1])
