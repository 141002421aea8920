"""A params-overrides run of the whole pipeline as one DVC experiment, split per stage.

`Experiment(root, name, overrides, env, stages).start()` runs
`dvc exp run --temp --name <name> -S k=v ... dvc.yaml` (the root dvc.yaml's pipeline only)
in the background; a reader thread splits DVC's output at its stage
markers (flows.stages.STAGE_EVENT) into one queue per stage, so each stage's Prefect task
can `follow(stage, on_line)` its own part live and end when DVC moves on. `wait()` returns 0
or raises StageError; `close()` stops DVC if the flow gives up. Dependencies outside the repo
(`../shared/eval/...`) are linked so they resolve in DVC's copy too. No Prefect here.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import queue
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flows.overrides import set_param_args
from flows.stages import (
    STAGE_EVENT,
    LineSink,
    StageError,
    StageResult,
    dvc_command,
    error_line,
    is_lock_error,
    outside_deps,
    wait_for_lock,
)


def link_outside_deps(root: Path, deps: Sequence[str]) -> list[Path]:
    """Make repo-relative paths that leave the repo (`../shared/...`) resolve in DVC's copy.

    DVC runs a --temp experiment in `<root>/.dvc/tmp/exps/standalone/<tmp>/`, where
    `../shared` would be `.dvc/tmp/exps/standalone/shared`: a symlink there to the real
    `<root>/../shared` makes such dependencies (e.g. word2vec.analogy_file) the same files,
    with the same hashes, so DVC skips what did not change instead of failing.
    """
    links = []
    base = root / ".dvc" / "tmp" / "exps" / "standalone" / "tmp"
    for dep in deps:
        parts = Path(dep).parts
        ups = len(parts) - len(tuple(p for p in parts if p != ".."))
        if not 1 <= ups <= 3 or parts[:ups] != ("..",) * ups or len(parts) == ups:
            continue  # deeper would land inside the repo itself
        link = Path(os.path.normpath(base.joinpath(*parts[:ups + 1])))
        target = Path(os.path.normpath(root.joinpath(*parts[:ups + 1])))
        if not target.exists() or link.resolve() == target.resolve():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another experiment made it meanwhile
            if link.is_symlink():
                link.unlink()
            link.symlink_to(target, target_is_directory=target.is_dir())
        links.append(link)
    return links


class Experiment:
    """A `dvc exp run --temp` of the whole pipeline with params overrides, split per stage.

        exp = Experiment(root, "exp-1", {"cnn.epochs": 2}, env, stage_names(root)).start()
        for stage in stages: exp.follow(stage, on_line)   # blocks until that stage is done
        exp.wait()                                        # exit code 0 or StageError

    DVC runs the stages in a copy under `.dvc/tmp/exps/`, so the workspace (params.yaml,
    outputs, dvc.lock) is untouched; the result is committed as the experiment `name`.
    Lines before the first stage and after the last go to `on_other`.
    """

    def __init__(self, root: Path | str, name: str, overrides: Mapping[str, Any],
                 env: Mapping[str, str], stages: Sequence[str], on_other: LineSink = print,
                 lock_timeout: float = 3600.0, poll: float = 2.0) -> None:
        self.root, self.name, self.env = Path(root), name, dict(env)
        self.args = ["exp", "run", "--temp", "--name", name,
                     *set_param_args(self.root / "params.yaml", overrides), "dvc.yaml"]
        self.on_other, self.lock_timeout, self.poll = on_other, lock_timeout, poll
        self.queues: dict[str, queue.Queue] = {s: queue.Queue() for s in stages}
        self.returncode: int | None = None
        self.output: list[str] = []
        self._proc: subprocess.Popen | None = None
        # The reader thread calls the sinks: give it the caller's context (contextvars), so a
        # logger bound to the caller's run and settings behaves the same there.
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._read,),
                                        name=f"dvc-exp-{name}", daemon=True)

    def start(self) -> Experiment:
        link_outside_deps(self.root, outside_deps(self.root))
        self._thread.start()
        return self

    def _launch(self) -> subprocess.Popen:
        self._proc = subprocess.Popen(dvc_command(*self.args), cwd=self.root, env=self.env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, errors="replace", bufsize=1)
        return self._proc

    def _read(self) -> None:
        try:
            rc = self._run_until_unlocked()
        except Exception as exc:  # e.g. the interpreter vanished: never leave a follower hanging
            self.output.append(f"ERROR: {exc}")
            rc = -1
        self.returncode = rc
        for q in self.queues.values():
            q.put(("exit", rc))

    def _run_until_unlocked(self) -> int:
        deadline = time.monotonic() + self.lock_timeout
        while True:
            proc, current, lines = self._launch(), None, []
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.rstrip("\n")
                lines.append(line)
                event = STAGE_EVENT.match(line)
                if event:
                    kind, stage = next((k, s) for k, s in event.groupdict().items() if s)
                    if current in self.queues:
                        self.queues[current].put(("end", None))
                    current = stage
                    self.queues.setdefault(stage, queue.Queue()).put(("start", kind))
                elif line.startswith("Ran experiment(s)") and current:
                    self.queues[current].put(("end", None))
                    current = None
                if current in self.queues:
                    self.queues[current].put(("line", line))
                else:
                    self.on_other(line)
            rc = proc.wait()
            self.output.extend(lines)
            started = any(STAGE_EVENT.match(line) for line in lines)
            if (rc != 0 and not started and is_lock_error(lines)
                    and wait_for_lock(deadline, self.poll, self.on_other, self.name, lines)):
                continue
            return rc

    def follow(self, stage: str, on_line: LineSink = print) -> StageResult:
        """Pass `stage`'s output lines to `on_line` as they come; return when it is done."""
        q = self.queues.setdefault(stage, queue.Queue())
        kind, started = None, time.monotonic()
        while True:
            event, value = q.get()
            if event == "start":
                kind, started = value, time.monotonic()
            elif event == "line":
                on_line(value)
            elif kind is None and value not in (None, 0):
                raise StageError(f"experiment {self.name!r} failed before stage {stage!r} "
                                 f"(dvc exit {value}): {error_line(self.output)}")
            elif event == "end" or value == 0:
                status = {"ran": "ran", "restored": "restored"}.get(kind or "", "skipped")
                detail = "" if kind else "not reproduced by the experiment"
                return StageResult(stage, status, round(time.monotonic() - started, 3), detail)
            else:
                raise StageError(f"stage {stage!r} failed in experiment {self.name!r} "
                                 f"(dvc exit {value}): {error_line(self.output)}")

    def wait(self) -> int:
        """Wait for DVC to finish; raise StageError unless it succeeded."""
        self._thread.join()
        if self.returncode != 0:
            raise StageError(f"experiment {self.name!r} failed (dvc exit {self.returncode}): "
                             f"{error_line(self.output)}")
        return 0

    def close(self) -> None:
        """Stop DVC if it is still running (the flow failed or was cancelled)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._thread.join(timeout=30)
