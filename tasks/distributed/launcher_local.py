"""Local backend: every task of a cluster as a child process on 127.0.0.1, supervised.

    job = LocalJob(shape, command, env=..., cwd=..., timeout=600, max_restarts=2)
    result = job.run()          # blocks; result.ok, result.tasks, result.restarts

Params section: `distributed` (max_restarts, timeout; the shape from strategy/workers/ps).

What it does, and why:
- Each task gets its own TF_CONFIG (free loopback ports) and runs `command` (normally
  `python -m tasks.distributed.worker ...`); stdout+stderr are streamed line by line to
  `on_line` with a `[role:index]` prefix (TensorFlow's start-up notices and XLA's tuning-hint
  lines, tasks/core/native_logs.py, go to this module's DEBUG log instead), and the last lines
  are kept for the error report.
- Children run in their own process group and receive SIGKILL if the launching thread dies
  (Linux PR_SET_PDEATHSIG), so no orphan keeps a port or a CPU.
- Every task is started with the loopback bind() shim preloaded (tasks/distributed/loopback.py,
  set up by tasks.distributed.launch): its servers listen on 127.0.0.1, as announced.
- Stopping means stopped: SIGTERM or SIGINT to the launching process (what Ctrl-C, a Prefect
  cancellation or a worker shutdown sends) stops every task (SIGTERM, SIGKILL after `grace`)
  before the signal takes its usual course (the previous handler runs: Prefect's marks the
  flow run Crashed/Cancelled; the default one ends the process). `request_stop()` does the
  same from another thread. A task killed mid-save leaves the previous checkpoint the latest
  (TensorFlow writes the `checkpoint` index last), so a re-run of the same job resumes.
- Failure handling follows what each strategy can survive:
  * sync (all-reduce): one lost worker blocks every collective, so the whole job is stopped
    and started again on fresh ports; the chief resumes from the last checkpoint.
  * async: a lost worker other than the chief is restarted alone (the others train on; it
    resumes at its last exchange with the servers' tables); a lost chief or parameter
    server restarts the whole job from the last checkpoint.
  * exit code 2 is an expected, deterministic failure (bad params or data): never retried.
  Restarts are bounded by `max_restarts` (job restarts + task restarts together).
- The job succeeds when the chief (worker 0) exits 0: it writes the outputs after every
  worker's last update. The other workers get a grace period to exit by themselves;
  parameter servers, which serve forever, are stopped.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.core.native_logs import is_startup_noise
from tasks.distributed.cluster import ClusterShape, local_cluster, tf_config

FATAL_EXIT = 2      # PipelineError / ParamsError in the task: retrying cannot help
GRACE_SECONDS = 5.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
LineSink = Callable[[str], None]
log = logging.getLogger(__name__)


class JobInterrupted(BaseException):
    """A stop signal arrived while the job ran (BaseException: no `except Exception` eats it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signal.Signals(signum).name}")
        self.signum = signum


def _die_with_parent() -> None:  # runs in the child between fork and exec
    os.setpgrp()
    # Not Linux/glibc: no parent-death signal, but stop_all() still reaps every child.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class TaskState:
    role: str
    index: int
    proc: subprocess.Popen | None = None
    starts: int = 0
    handled: bool = True   # the current process's exit has been dealt with (or none started)
    exit_codes: list[int] = field(default_factory=list)
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=30))
    pump: threading.Thread | None = None

    @property
    def name(self) -> str:
        return f"{self.role}:{self.index}"


@dataclass
class JobResult:
    ok: bool
    reason: str
    restarts: int
    tasks: dict[str, dict]  # name -> {"exit_codes": [...], "starts": n, "tail": [...]}


class LocalJob:
    """Run one cluster of `shape` locally; see the module docstring for the failure policy."""

    def __init__(self, shape: ClusterShape, command: Sequence[str], *, cwd: Path | str,
                 env: Mapping[str, str] | None = None, timeout: float = 3600.0,
                 max_restarts: int = 0, on_line: LineSink = print,
                 poll: float = 0.2, grace: float = GRACE_SECONDS) -> None:
        self.shape, self.command, self.cwd = shape, list(command), Path(cwd)
        self.env = dict(os.environ if env is None else env)
        self.timeout, self.max_restarts, self.on_line, self.poll, self.grace = (
            timeout, max_restarts, on_line, poll, grace)
        self.tasks = {f"{r}:{i}": TaskState(r, i) for r, i in shape.tasks()}
        self.cluster: dict[str, list[str]] = {}
        self.restarts = 0
        self._lock = threading.Lock()
        self._stop_requested = threading.Event()

    def request_stop(self) -> None:
        """Ask `run()` (in another thread) to stop every task and return a failed result."""
        self._stop_requested.set()

    # -- process management -------------------------------------------------------------
    def pid(self, role: str, index: int) -> int | None:
        """The live pid of a task (tests kill it to check recovery)."""
        proc = self.tasks[f"{role}:{index}"].proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def _spawn(self, task: TaskState) -> None:
        env = dict(self.env, TF_CONFIG=tf_config(self.cluster, task.role, task.index),
                   PYTHONUNBUFFERED="1")
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        task.proc = subprocess.Popen(self.command, cwd=self.cwd, env=env, text=True,
                                     errors="replace", bufsize=1, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=_die_with_parent)
        task.starts += 1
        task.handled = False
        task.pump = threading.Thread(target=self._pump, args=(task, task.proc), daemon=True,
                                     name=f"log-{task.name}")
        task.pump.start()
        self.on_line(f"[launcher] started {task.name} pid {task.proc.pid} "
                     f"at {self.cluster[task.role][task.index]}")

    def _pump(self, task: TaskState, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            task.tail.append(line)   # the error report keeps everything
            if is_startup_noise(line):   # TensorFlow's start-up notices, XLA's cache hints
                log.debug("[%s] %s", task.name, line)
                continue
            with self._lock:  # whole lines from concurrent tasks, never interleaved
                self.on_line(f"[{task.name}] {line}")

    def _stop(self, task: TaskState, sig: int = signal.SIGTERM) -> None:
        if task.proc is not None and task.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(task.proc.pid, sig)

    def stop_all(self) -> None:
        """SIGTERM every live task, SIGKILL what is left after the grace period; reap all."""
        live = [t for t in self.tasks.values() if t.proc is not None and t.proc.poll() is None]
        for task in live:
            self._stop(task)
        deadline = time.monotonic() + self.grace
        for task in live:
            try:
                task.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._stop(task, signal.SIGKILL)
                task.proc.wait()
        for task in self.tasks.values():
            if task.proc is not None and not task.handled:
                task.exit_codes.append(task.proc.wait())  # stopped by us: reported, not judged
                task.handled = True
        for task in self.tasks.values():
            if task.pump is not None:
                task.pump.join(timeout=5)

    def _start_job(self) -> None:
        self.cluster = local_cluster(self.shape)
        for task in self.tasks.values():  # shape.tasks() order: servers before the chief
            self._spawn(task)

    # -- supervision --------------------------------------------------------------------
    def _finished(self) -> bool:
        """The chief exited 0 (it writes the outputs last); the other trainers get a grace
        period to exit by themselves, then everything left is stopped (servers always are)."""
        role, index = self.shape.chief
        chief = self.tasks[f"{role}:{index}"]
        if not (chief.handled and chief.exit_codes[-1:] == [0]):
            return False
        deadline = time.monotonic() + self.grace
        for task in self.tasks.values():
            if task.proc is not None and not task.handled and not self.shape.is_server_only(
                    task.role):
                with contextlib.suppress(subprocess.TimeoutExpired):
                    task.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        return True

    def _handle_exit(self, task: TaskState, code: int) -> str | None:
        """React to a task that exited with `code`; return a final reason or None to go on."""
        task.exit_codes.append(code)
        task.handled = True
        if code == 0 and not self.shape.is_server_only(task.role):
            return None  # a trainer that is done (the chief's exit is checked in run())
        self.on_line(f"[launcher] {task.name} exited with code {code}")
        if code == FATAL_EXIT:
            return f"{task.name} failed (exit {code}, not retried): {self._last_error(task)}"
        if self.restarts >= self.max_restarts:
            return f"{task.name} failed (exit {code}) after {self.restarts} restart(s)"
        self.restarts += 1
        if self.shape.strategy == "async" and task.role == "worker" and (
                task.role, task.index) != self.shape.chief:
            self.on_line(f"[launcher] restarting {task.name} alone "
                         f"({self.restarts}/{self.max_restarts})")
            self._spawn(task)
        else:
            self.on_line(f"[launcher] restarting the whole job ({self.restarts}/"
                         f"{self.max_restarts}); training resumes from the last checkpoint")
            self.stop_all()
            self._start_job()
        return None

    @staticmethod
    def _last_error(task: TaskState) -> str:
        lines = [ln for ln in task.tail if ln.startswith("error:")] or list(task.tail)[-1:]
        return lines[-1] if lines else "no output"

    def _install_signal_handlers(self) -> dict[int, Any]:
        """SIGTERM/SIGINT raise JobInterrupted here (main thread only; else {})."""
        if threading.current_thread() is not threading.main_thread():
            return {}

        def interrupt(signum: int, _frame: Any) -> None:
            if not self._stop_requested.is_set():  # once: a 2nd Ctrl-C must not cut the clean-up
                self._stop_requested.set()
                raise JobInterrupted(signum)

        return {sig: signal.signal(sig, interrupt) for sig in STOP_SIGNALS}

    @staticmethod
    def _pass_on(signum: int, previous: Any) -> None:
        """After the tasks are stopped: let the signal do what it did before the job."""
        if callable(previous):
            previous(signum, None)       # Prefect's bridge raises TerminationSignal here
        if previous == signal.SIG_DFL:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            os.kill(os.getpid(), signum)  # the default action: the process ends with it
        # SIG_IGN (or a handler that returned): the caller gets a failed JobResult

    def run(self) -> JobResult:
        """Start the job, supervise it to the end, stop every task; never leaves a child."""
        previous = self._install_signal_handlers()
        try:
            return self._run()
        except JobInterrupted as exc:
            self.on_line(f"[launcher] {exc}: every task stopped")
            handler = previous.pop(exc.signum, signal.SIG_DFL)
            for sig, old in previous.items():
                signal.signal(sig, old)
            signal.signal(exc.signum, handler)
            previous = {}
            self._pass_on(exc.signum, handler)
            return JobResult(False, str(exc), self.restarts, self._summary())
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def _summary(self) -> dict[str, dict]:
        return {name: {"exit_codes": list(t.exit_codes), "starts": t.starts, "tail": list(t.tail)}
                for name, t in self.tasks.items()}

    def _run(self) -> JobResult:
        deadline = time.monotonic() + self.timeout
        reason = ""
        try:
            self._start_job()
            while True:
                if self._stop_requested.is_set():
                    ok, reason = False, "stop requested"
                    break
                if self._finished():
                    ok, reason = True, "the chief finished"
                    break
                if time.monotonic() > deadline:
                    ok, reason = False, f"timeout after {self.timeout:.0f} s"
                    break
                final = None
                for task in list(self.tasks.values()):
                    if task.proc is None or task.handled:
                        continue
                    code = task.proc.poll()
                    if code is not None:
                        final = self._handle_exit(task, code)
                        if final:
                            break
                if final:
                    ok, reason = False, final
                    break
                time.sleep(self.poll)
        finally:
            self.stop_all()
        self.on_line(f"[launcher] job {'succeeded' if ok else 'failed'}: {reason}")
        return JobResult(ok, reason, self.restarts, self._summary())
