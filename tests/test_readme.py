"""The README's commands work as written: every shell command of its ```bash blocks runs.

The commands run in README order, each in its own `bash -c` (```python blocks with the venv's
python) from the root of a temporary copy of the project (tests/project_copy.py: tiny params, fixture zips served on
127.0.0.1; `../shared/mirror/nltk` beside the copy holds the same fixture zips, so
`DATA_MIRROR=../shared/mirror/nltk make run` works literally). The copy shares the checkout's
`.venv` (as after `make setup`) and PATH does not contain it: nothing needs an activated venv.
A command that fails (non-zero exit) fails the test, naming the command.

Not run, each with its reason (NOT_RUN); a README command missing from both the run list and
NOT_RUN cannot happen: every command is either run or listed here. Lines of unlabelled blocks
that start with `$ ` are shown sessions: they run too, and their shown output must appear.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.project_copy import REPO, TINY_PARAMS, fixture_project

pytestmark = pytest.mark.slow

VENV = Path(sys.executable).parent.parent
PLAIN_PATH = "/usr/local/bin:/usr/bin:/bin"

# Command prefix -> why the test does not run it.
NOT_RUN = {
    "git clone <this repo>": "placeholder URL; the test's temporary project copy is that clone",
    "make test": "the test suite itself (it would run this test again)",
    "HYPOTHESIS_PROFILE=nightly make test": "the test suite with a larger Hypothesis profile "
                                            "(tests/test_reliability.py is part of make test)",
    ".venv/bin/python -m flows.sweep": "four DVC experiments under a temporary Prefect server "
                                       "(long-running server); tests/test_sweep.py runs it",
    ".venv/bin/mlflow ui": "long-running server (tests/test_ui_browser.py drives it)",
    ".venv/bin/mlflow server": "long-running server",
    "export MLFLOW_TRACKING_URI=": "only meaningful with the server above",
    "PREFECT_SERVER_ANALYTICS_ENABLED=false .venv/bin/prefect server start":
        "long-running server (tests/test_deployment.py runs one)",
    "export PREFECT_API_URL=": "needs the Prefect server above",
    ".venv/bin/prefect work-pool create": "needs the Prefect server above",
    ".venv/bin/prefect deploy": "needs the Prefect server above (tests/test_deployment.py)",
    ".venv/bin/prefect worker start": "long-running worker",
    ".venv/bin/prefect deployment run": "needs the Prefect server and worker above",
    ".venv/bin/tensorboard": "long-running server (tests/test_projector.py reads its files)",
    "docker ": "needs Docker and a cluster (docs/distributed.md)",
}


def readme_commands(text: str) -> list[tuple[str, str]]:
    """(kind, command) in README order: kind `bash` for ```bash lines, `python` for a whole
    ```python block, `session` for `$ ...` lines of unlabelled blocks (followed by their shown
    output, kept after a newline)."""
    found: list[tuple[str, str]] = []
    for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.M | re.S):
        lines = body.replace("\\\n", " ").splitlines()
        if lang == "bash":
            found += [("bash", line.strip()) for line in lines
                      if line.strip() and not line.lstrip().startswith("#")]
        elif lang == "python":
            found.append(("python", body))
        elif not lang:
            for i, line in enumerate(lines):
                if line.startswith("$ "):
                    shown = lines[i + 1] if i + 1 < len(lines) else ""
                    found.append(("session", f"{line[2:].strip()}\n{shown}"))
    return found


def not_run_reason(command: str) -> str | None:
    return next((why for prefix, why in NOT_RUN.items() if command.startswith(prefix)), None)


def test_readme_commands_are_all_run_or_listed_with_a_reason():
    commands = readme_commands((REPO / "README.md").read_text(encoding="utf-8"))
    assert len(commands) > 15
    run = [c for kind, c in commands if kind == "bash" and not not_run_reason(c)]
    assert any(c.startswith("DATA_MIRROR=") for c in run)
    assert any(kind == "python" and "load_model" in c for kind, c in commands)
    # every NOT_RUN entry still matches a README command (no stale excuses)
    listed = [c for _, c in commands]
    assert all(any(c.startswith(prefix) for c in listed) for prefix in NOT_RUN
               if prefix != "docker "), NOT_RUN


# The README queries `analogy man king woman`: the fixture corpora have no such words, so the
# copy's corpus also takes a small own dataset (data.custom, no code change) that has them,
# often enough to survive the README's `dvc exp run -S vocab.min_count=3` (it changes the
# workspace).
ROYALS = {"a": "the king is a man and the queen is a woman\n" * 4,
          "b": "a man and a woman saw the king and the queen\n" * 4}


@pytest.mark.timeout(3600)   # the whole README in order, on a busy machine
def test_readme_commands_run_in_a_project_copy(tmp_path):
    commands = readme_commands((REPO / "README.md").read_text(encoding="utf-8"))
    corpus = TINY_PARAMS["data.corpus"]
    royals = {"format": "class_files",
              "files": {k: f"data/custom/royals_{k}.txt" for k in ROYALS}}
    with fixture_project(tmp_path, {"data.corpus": [*corpus, "royals"],
                                    "data.custom.royals": royals}) as project:
        root = project.root
        for key, text in ROYALS.items():
            (root / "data" / "custom" / f"royals_{key}.txt").write_text(text, encoding="utf-8")
        for name in ("Makefile", "uv.lock", "README.md"):
            shutil.copy2(REPO / name, root / name)
        # The checkout's venv stands for `make setup` in the copy; it must match the lock (run
        # `make setup` first), and the copy's lock must not look newer, or `make` would re-sync
        # the shared venv from the copy.
        stamp = (VENV / ".synced").stat().st_mtime
        assert stamp >= (REPO / "uv.lock").stat().st_mtime, "run `make setup` first"
        for name in ("uv.lock", "pyproject.toml"):
            os.utime(root / name, (stamp - 1, stamp - 1))
        (root / ".venv").symlink_to(VENV)
        if (REPO / ".tools").exists():            # the Makefile's private uv, when it has one
            (root / ".tools").symlink_to(REPO / ".tools")
        mirror = tmp_path / "shared" / "mirror" / "nltk"
        shutil.copytree(tmp_path / "mirror", mirror)
        env = {**project.env, "PATH": PLAIN_PATH}
        for name in ("VIRTUAL_ENV", "PYTHONPATH"):
            env.pop(name, None)
        # Tests never touch the internet: the README's first `make run` takes the fixture zips
        # from the folder mirror too (the loopback server stops after a few minutes, and this
        # test runs far longer).
        env["DATA_MIRROR"] = str(mirror)

        for kind, command in commands:
            shown = ""
            if kind == "session":
                command, shown = command.split("\n", 1)
            if not_run_reason(command):
                continue
            argv = [str(root / ".venv" / "bin" / "python"), "-c", command] \
                if kind == "python" else ["bash", "-c", command]
            done = subprocess.run(argv, cwd=root, env=env, text=True,
                                  capture_output=True, timeout=1200)
            output = done.stdout + done.stderr
            if kind == "session":
                assert shown.strip() in output, f"{command}: expected {shown!r}, got {output!r}"
                continue
            assert done.returncode == 0, (f"README command failed ({done.returncode}): "
                                          f"{command}\n{output[-4000:]}")
            assert "\x1b[" not in output, f"{command}: escape codes in non-terminal output"
