"""`make run`'s command (`python -m tasks.repro`) and the stage interpreter `scripts/python`.

End to end on a fixture project copy whose PATH does NOT contain the venv (a plain shell, no
activated venv): `.venv/bin/python -m tasks.repro` runs `dvc repro`, every stage command
(`scripts/python -m tasks.X`) must still reach the project's interpreter, and the summary must
be one compact line per stage (<= 100 columns), `ran` the first time and `skipped` the second.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.repro import HEADLINES, WIDTH, headline, summary
from tests.project_copy import REPO, fixture_project

VENV = Path(sys.executable).parent.parent
PLAIN_PATH = "/usr/local/bin:/usr/bin:/bin"   # a shell without the venv activated


def test_headline_formats_the_chosen_metrics_and_ignores_missing_keys():
    assert headline("word2vec", {"analogy_accuracy": 0.117432, "wordsim353_spearman": 0.360515,
                                 "words_per_sec": 170977.2}) == \
        "analogy 11.7%  WS353 0.361  words/s 170,977"
    assert headline("cnn", {"test_accuracy": 0.801126}) == "test acc 80.1%"
    assert headline("unknown", {"x": 1}) == ""
    assert headline("mnist", {"softmax": {"test_accuracy": 0.915}, "cnn": {"test_accuracy": 0.982}}) == \
        "softmax acc 91.5%  cnn acc 98.2%"
    assert set(HEADLINES) == {"download", "prepare", "vocab", "word2vec", "export", "cnn", "mnist"}


def test_summary_lines_are_cut_to_the_width():
    lines = summary([("cnn", "ran", "1.0", "x" * 300)], total_seconds=2.0)
    assert all(len(line) <= WIDTH for line in lines)
    assert lines[1].endswith("...")
    assert lines[-1].endswith(".venv/bin/dvc metrics show")


def test_stage_python_finds_the_venv_from_dvc_root_in_any_working_directory(tmp_path):
    """Inside `dvc exp run` temp copies the working directory has no .venv; DVC_ROOT does."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / ".venv").symlink_to(VENV)
    elsewhere = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "copy"
    elsewhere.mkdir(parents=True)
    env = {"PATH": PLAIN_PATH, "DVC_ROOT": str(root), "HOME": os.environ.get("HOME", "/")}
    out = subprocess.run([str(REPO / "scripts" / "python"), "-c", "import mlflow, sys; "
                          "print(sys.prefix)"], cwd=elsewhere, env=env, capture_output=True,
                         text=True, check=True)
    assert Path(out.stdout.strip()).resolve() == VENV.resolve()


@pytest.mark.slow
@pytest.mark.timeout(2400)   # two pipeline runs; the suite's 900 s is too short on a busy machine
def test_make_run_command_without_an_activated_venv(tmp_path):
    with fixture_project(tmp_path) as project:
        (project.root / ".venv").symlink_to(VENV)      # the checkout's own venv, as after make setup
        # the folder mirror: the loopback server stops after a few minutes
        env = {**project.env, "PATH": PLAIN_PATH, "DATA_MIRROR": str(tmp_path / "mirror")}
        env.pop("VIRTUAL_ENV", None)
        env.pop("PYTHONPATH", None)                     # the stages must not need it either
        command = [str(project.root / ".venv" / "bin" / "python"), "-m", "tasks.repro"]

        first = subprocess.run(command, cwd=project.root, env=env, capture_output=True,
                               text=True, timeout=900)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        table = first.stdout[first.stdout.index("stage      status"):].splitlines()
        assert all(len(line) <= WIDTH for line in table)
        rows = {line.split()[0]: line.split()[1] for line in table[1:-1]}
        assert rows == dict.fromkeys(HEADLINES, "ran")
        cnn_row = next(line for line in table if line.startswith("cnn "))
        assert "test acc" in cnn_row and "%" in cnn_row
        assert "\x1b[" not in first.stdout

        again = subprocess.run(command, cwd=project.root, env=env, capture_output=True,
                               text=True, timeout=300)
        assert again.returncode == 0, again.stderr[-3000:]
        table = again.stdout[again.stdout.index("stage      status"):].splitlines()
        assert {line.split()[1] for line in table[1:-1]} == {"skipped"}
