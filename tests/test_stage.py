"""tasks/core/stage.py: every failure of a stage or CLI ends in one `error:` line first.

Foreseen failures (PipelineError, OSError) exit 2 under the stage's name; params problems
under `params` (the key names the section); anything unforeseen exits 1 with one line, the
traceback only with --verbose or PIPELINE_LOG_LEVEL=DEBUG (issue #12).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.core.errors import PipelineError
from tasks.core.stage import guarded, stage_main

REPO = Path(__file__).resolve().parents[1]


def boom() -> None:
    return [][0]   # an IndexError, as the word2vec re-run crash was


@pytest.mark.parametrize(("body", "code", "line"), [
    (boom, 1, "error: demo: unexpected IndexError: list index out of range"),
    (lambda: (_ for _ in ()).throw(PipelineError("bad input\nsecond line")), 2,
     "error: demo: bad input"),
    (lambda: Path("/nonexistent/x").read_text(), 2,
     "error: demo: [Errno 2] No such file or directory: '/nonexistent/x'"),
    (lambda: 0, 0, None),
])
def test_guarded_prints_exactly_one_line(capsys, monkeypatch, body, code, line):
    monkeypatch.delenv("PIPELINE_LOG_LEVEL", raising=False)
    assert guarded("demo", body) == code
    captured = capsys.readouterr()
    assert captured.err.splitlines() == ([line] if line else [])


def test_verbose_or_debug_adds_the_traceback_after_the_line(capsys, monkeypatch):
    monkeypatch.delenv("PIPELINE_LOG_LEVEL", raising=False)
    assert guarded("demo", boom, verbose=True) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "error: demo: unexpected IndexError: list index out of range"
    assert "Traceback (most recent call last):" in err[1:] and err[-1].startswith("IndexError")
    monkeypatch.setenv("PIPELINE_LOG_LEVEL", "debug")
    assert guarded("demo", boom) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: demo: unexpected IndexError") and len(err) > 3


def test_stage_main_unexpected_error_writes_no_metrics(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PIPELINE_LOG_LEVEL", raising=False)
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())

    def run(cfg):
        raise ZeroDivisionError("division by zero")

    assert stage_main("demo", run, ["--params", str(params)]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: demo: unexpected ZeroDivisionError: division by zero")
    assert not (tmp_path / "metrics" / "demo.json").exists()


def test_params_error_is_reported_under_params_in_a_real_process():
    # cnn.dropout is read by the cnn section, whatever stage happens to run first.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "tasks.vocab", "--set", "cnn.dropout=1.5"],
                          cwd=REPO, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == ["error: params: cnn.dropout: must be < 1, got 1.5"]
