"""One DVC process for the whole pipeline, its output split per stage (no Prefect here).

`DvcProcess(root, args, env, stages, label).start()` runs `python -m dvc <args>` (e.g.
`repro dvc.yaml`, or `exp run --temp ...` in flows/experiment.py) in the background; a reader
thread splits its merged stdout/stderr at DVC's stage markers (flows.stages.STAGE_EVENT) into
one queue per stage, so each stage's Prefect task can `follow(stage, on_line)` its own part
live and end when DVC moves on. Every event carries the time it was read, so a stage's seconds
are DVC's, whenever its follower reads them. `wait()` returns 0 or raises StageError;
`restart()` launches the same command again after a failure (a retry: DVC skips the stages
already done); `close()` stops DVC if the flow gives up. A DVC lock held by another run
before any stage started (with `resume_on_lock`, at any point) is waited for
(flows.stages.wait_for_lock), up to `lock_timeout`, and the command run again.
"""

from __future__ import annotations

import contextvars
import queue
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from flows.stages import (
    STAGE_EVENT,
    LineSink,
    StageError,
    StageResult,
    dvc_command,
    error_line,
    is_lock_error,
    wait_for_lock,
)

FINISHED = ("Ran experiment(s)",)
RANK = {"skipped": 1, "restored": 2, "ran": 3}  # a line after the last stage (exp run); repro just exits


class DvcProcess:
    """`python -m dvc <args>` in `root`, followed stage by stage.

        proc = DvcProcess(root, ["repro", "dvc.yaml"], env, stage_names(root), "repro").start()
        for stage in stages: proc.follow(stage, on_line)   # blocks until that stage is done
        proc.wait()                                        # exit code 0 or StageError

    Lines before the first stage (and after the last, for `exp run`) go to `on_other`.
    """

    def __init__(self, root: Path | str, args: Sequence[str], env: Mapping[str, str],
                 stages: Sequence[str], label: str, on_other: LineSink = print,
                 lock_timeout: float = 3600.0, poll: float = 2.0,
                 resume_on_lock: bool = False) -> None:
        self.root, self.args, self.env, self.label = Path(root), list(args), dict(env), label
        self.resume_on_lock = resume_on_lock
        self.stages = list(stages)
        self.on_other, self.lock_timeout, self.poll = on_other, lock_timeout, poll
        self.queues: dict[str, queue.Queue] = {}
        self.returncode: int | None = None
        self.output: list[str] = []
        self.launches = 0
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        # The reader thread calls the sinks: give it the caller's context (contextvars), so a
        # logger bound to the caller's run and settings behaves the same there.
        self._context = contextvars.copy_context()

    # --- life cycle -----------------------------------------------------------------------
    def start(self) -> DvcProcess:
        self.queues = {s: queue.Queue() for s in self.stages}
        self.returncode, self.output = None, []
        self._thread = threading.Thread(target=self._context.copy().run, args=(self._read,),
                                        name=f"dvc-{self.label}", daemon=True)
        self._thread.start()
        return self

    @property
    def failed(self) -> bool:
        """DVC has exited with an error (a retry must `restart()` it)."""
        return self.returncode not in (None, 0)

    def restart(self) -> DvcProcess:
        """Run the same DVC command again (after `failed`); stages DVC completed are skipped."""
        if self._thread is not None:
            self._thread.join()
        return self.start()

    def wait(self) -> int:
        """Wait for DVC to finish; raise StageError unless it succeeded."""
        if self._thread is not None:
            self._thread.join()
        if self.returncode != 0:
            raise StageError(f"{self.label} failed (dvc exit {self.returncode}): "
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
        if self._thread is not None:
            self._thread.join(timeout=30)

    # --- the reader thread -----------------------------------------------------------------
    def _put(self, stage: str, event: str, value: object) -> None:
        self.queues.setdefault(stage, queue.Queue()).put((event, value, time.monotonic()))

    def _read(self) -> None:
        try:
            rc = self._run_until_unlocked()
        except Exception as exc:  # e.g. the interpreter vanished: never leave a follower hanging
            self.output.append(f"ERROR: {exc}")
            rc = -1
        self.returncode = rc
        for stage in list(self.queues):
            self._put(stage, "exit", rc)

    def _run_until_unlocked(self) -> int:
        deadline = time.monotonic() + self.lock_timeout
        while True:
            self.launches += 1
            self._proc = subprocess.Popen(dvc_command(*self.args), cwd=self.root, env=self.env,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True, errors="replace", bufsize=1)
            current, lines = None, []
            assert self._proc.stdout is not None
            for raw in self._proc.stdout:
                line = raw.rstrip("\n")
                lines.append(line)
                event = STAGE_EVENT.match(line)
                if event:
                    kind, stage = next((k, s) for k, s in event.groupdict().items() if s)
                    if current is not None:
                        self._put(current, "end", None)
                    current = stage
                    self._put(stage, "start", kind)
                elif line.startswith(FINISHED) and current is not None:
                    self._put(current, "end", None)
                    current = None
                if current is not None:
                    self._put(current, "line", line)
                else:
                    self.on_other(line)
            rc = self._proc.wait()
            self.output.extend(lines)
            started = any(STAGE_EVENT.match(line) for line in lines)
            # Another DVC process holds a lock: wait for it, then run the same command again.
            # `dvc repro` releases the repo lock while a stage command runs, so a second run
            # can get past the first stages (skipped) and find the next one's outputs locked
            # ("... is busy"): with `resume_on_lock` it waits then too, and DVC skips what is
            # done; the stage being followed simply gets a new start marker.
            if (rc != 0 and (not started or self.resume_on_lock) and is_lock_error(lines)
                    and wait_for_lock(deadline, self.poll, self.on_other, self.label, lines)):
                continue
            return rc

    # --- the followers ----------------------------------------------------------------------
    def follow(self, stage: str, on_line: LineSink = print) -> StageResult:
        """Pass `stage`'s output lines to `on_line` as they come; return when it is done."""
        q = self.queues.setdefault(stage, queue.Queue())
        kind, started = None, None
        while True:
            event, value, at = q.get()
            if event == "start":  # again after a lock wait: a stage that ran stays "ran"
                kind = value if RANK.get(value, 0) >= RANK.get(kind, 0) else kind
                started = at if started is None else started
            elif event == "line":
                on_line(value)
            elif kind is None and value not in (None, 0):
                raise StageError(f"{self.label} failed before stage {stage!r} "
                                 f"(dvc exit {value}): {error_line(self.output)}")
            elif event == "end" or value == 0:
                status = {"ran": "ran", "restored": "restored"}.get(kind or "", "skipped")
                detail = "" if kind else f"not reproduced by {self.label}"
                seconds = round(at - started, 3) if started is not None else 0.0
                return StageResult(stage, status, seconds, detail)
            else:
                raise StageError(f"stage {stage!r} failed in {self.label} "
                                 f"(dvc exit {value}): {error_line(self.output)}")
