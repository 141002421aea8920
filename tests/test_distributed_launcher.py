"""The local launcher's process management, with small Python children instead of TensorFlow.

Each child reads its TF_CONFIG like a real task and follows a script from the test (exit
codes, crashes on the first start only, sleeping forever like a parameter server).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tasks.distributed.cluster import ClusterShape
from tasks.distributed.launcher_local import LocalJob

CHILD = r'''
import json, os, sys, time
from pathlib import Path
config = json.loads(os.environ["TF_CONFIG"])
name = f"{config['task']['type']}:{config['task']['index']}"
me = config["cluster"][config["task"]["type"]][config["task"]["index"]]
plan = json.loads(Path(sys.argv[1]).read_text()).get(name, "ok")
state = Path(sys.argv[1]).parent / f"started-{name.replace(':', '-')}"
first = not state.exists()
state.write_text(state.read_text() + me + "\n" if state.exists() else me + "\n")
print(f"hello from {name} at {me}", flush=True)
if plan == "ok":
    sys.exit(0)
if plan == "slow-ok":
    time.sleep(2)
    sys.exit(0)
if plan == "noisy":   # what TensorFlow prints in a worker (native_logs: noise, then a real one)
    print("I0000 00:00:1796262812.205172   10074 cudart_stub.cc:31] Could not find cuda drivers",
          flush=True)
    for feature in ("prefer-no-scatter", "avx512f"):
        print("E0000 00:00:1796349812.203112   21521 cpu_aot_loader.cc:220] Loading XLA:CPU AOT "
              f"result. Target machine feature +{feature} is not  supported on the host "
              "machine. This could lead to execution errors such as SIGILL.", flush=True)
    sys.exit(0)
if plan == "fatal":
    print("error: word2vec: boom", flush=True)
    sys.exit(2)
if plan.startswith("crash-once") and first:
    time.sleep(0.5)
    sys.exit(1)
if plan == "crash-once-then-ok":
    sys.exit(0)
if plan == "crash":
    sys.exit(1)
if plan == "wait-for-restart":   # the async chief: done once worker 1 came back
    marker = Path(sys.argv[1]).parent / "started-worker-1"
    deadline = time.time() + 60
    while time.time() < deadline:
        if marker.exists() and len(marker.read_text().split()) >= 2:
            sys.exit(0)
        time.sleep(0.1)
    sys.exit(1)
time.sleep(120)  # "serve", "crash-once" after the restart: run until stopped
'''


def make_job(tmp_path: Path, shape: ClusterShape, plan: dict, lines: list, **kw) -> LocalJob:
    (tmp_path / "child.py").write_text(CHILD)
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    return LocalJob(shape, [sys.executable, str(tmp_path / "child.py"), str(tmp_path / "plan.json")],
                    cwd=tmp_path, env=dict(os.environ), on_line=lines.append, **kw)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); the launcher reaps its children, so check /proc too.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


def test_the_job_ends_when_the_chief_is_done(tmp_path):
    lines: list[str] = []
    job = make_job(tmp_path, ClusterShape("sync", 2), {"worker:1": "serve"}, lines, timeout=60,
                   grace=1.0)
    result = job.run()
    assert result.ok and result.reason == "the chief finished"
    # A straggler that does not exit within the grace period is stopped, not waited for.
    assert result.tasks["worker:1"]["exit_codes"] == [-15]
    assert not alive(job.tasks["worker:1"].proc.pid)


def test_all_tasks_finish_and_logs_are_prefixed(tmp_path):
    lines: list[str] = []
    result = make_job(tmp_path, ClusterShape("sync", 2), {}, lines, timeout=60).run()
    assert result.ok and result.restarts == 0
    assert {n: t["exit_codes"] for n, t in result.tasks.items()} == {
        "worker:0": [0], "worker:1": [0]}
    assert any(line.startswith("[worker:1] hello from worker:1 at 127.0.0.1:") for line in lines)


def test_native_noise_goes_to_the_debug_log_and_real_errors_are_shown(tmp_path, caplog):
    lines: list[str] = []
    with caplog.at_level("DEBUG", logger="tasks.distributed.launcher_local"):
        result = make_job(tmp_path, ClusterShape("sync", 2), {"worker:1": "noisy"}, lines,
                          timeout=60).run()
    assert result.ok
    shown = [line for line in lines if line.startswith("[worker:1]")]
    assert shown[0].startswith("[worker:1] hello from worker:1")
    # The cuda notice and the LLVM tuning hint are hidden; a missing instruction set is not.
    assert len(shown) == 2 and "+avx512f is not" in shown[1]
    debug = [r.getMessage() for r in caplog.records if r.levelname == "DEBUG"]
    assert any("cudart_stub.cc" in m for m in debug)
    assert any("+prefer-no-scatter is not" in m for m in debug)
    # The error report's tail keeps every line.
    assert any("prefer-no-scatter" in line for line in result.tasks["worker:1"]["tail"])


def test_a_fatal_exit_stops_the_others_without_retry(tmp_path):
    lines: list[str] = []
    job = make_job(tmp_path, ClusterShape("sync", 3), {"worker:0": "serve", "worker:1": "fatal",
                                                       "worker:2": "serve"},
                   lines, timeout=60, max_restarts=3)
    started = time.monotonic()
    result = job.run()
    assert not result.ok
    assert "worker:1 failed (exit 2, not retried): error: word2vec: boom" in result.reason
    assert result.restarts == 0
    assert result.tasks["worker:1"]["exit_codes"] == [2]
    for name in ("worker:0", "worker:2"):  # stopped by the launcher (SIGTERM), reported
        assert result.tasks[name]["exit_codes"] == [-15]
        assert not alive(job.tasks[name].proc.pid)
    assert time.monotonic() - started < 30  # not the children's 120 s sleep
    assert "[worker:1] error: word2vec: boom" in lines


def test_a_crash_restarts_the_whole_sync_job(tmp_path):
    lines: list[str] = []
    plan = {"worker:0": "slow-ok", "worker:1": "crash-once-then-ok"}
    result = make_job(tmp_path, ClusterShape("sync", 2), plan, lines, timeout=60,
                      max_restarts=1).run()
    assert result.ok, result.reason
    assert result.restarts == 1
    assert result.tasks["worker:1"]["exit_codes"] == [1, 0]
    # Everyone restarts (an all-reduce needs all): the chief was stopped, then finished.
    assert result.tasks["worker:0"]["exit_codes"] == [-15, 0]
    assert any("restarting the whole job" in line for line in lines)


def test_restarts_are_bounded(tmp_path):
    lines: list[str] = []
    result = make_job(tmp_path, ClusterShape("sync", 2), {"worker:0": "crash"}, lines,
                      timeout=60, max_restarts=2).run()
    assert not result.ok and result.restarts == 2
    assert "worker:0 failed (exit 1) after 2 restart(s)" in result.reason
    assert result.tasks["worker:0"]["exit_codes"] == [1, 1, 1]


def run_async_job(tmp_path: Path, plan: dict) -> tuple[Any, list[str], LocalJob]:
    """A 2-worker + 1-ps job of `plan`, one restart allowed; it must succeed."""
    lines: list[str] = []
    job = make_job(tmp_path, ClusterShape("async", 2, 1), plan, lines, timeout=90,
                   max_restarts=1)
    result = job.run()
    assert result.ok, result.reason
    return result, lines, job


def test_an_async_worker_is_restarted_alone_at_the_same_address(tmp_path):
    result, lines, job = run_async_job(tmp_path, {
        "ps:0": "serve", "worker:1": "crash-once", "worker:0": "wait-for-restart"})
    assert result.tasks["worker:1"]["starts"] == 2
    assert [result.tasks[n]["starts"] for n in ("ps:0", "worker:0")] == [1, 1]
    assert "[launcher] restarting worker:1 alone (1/1)" in lines
    first, second = (tmp_path / "started-worker-1").read_text().split()
    assert first == second  # the same host:port: the cluster spec stays valid
    # Servers never exit by themselves: the launcher stops them once the chief is done.
    assert result.tasks["ps:0"]["exit_codes"] == [-15]
    assert all(not alive(t.proc.pid) for t in job.tasks.values())


def test_a_lost_async_chief_restarts_the_whole_job(tmp_path):
    result, lines, _ = run_async_job(tmp_path, {
        "ps:0": "serve", "worker:0": "crash-once-then-ok", "worker:1": "slow-ok"})
    # the servers' tables came from the chief: everything starts again from its checkpoint
    assert [result.tasks[n]["starts"] for n in ("ps:0", "worker:0", "worker:1")] == [2, 2, 2]
    assert any(line.startswith("[launcher] restarting the whole job") for line in lines)


@pytest.mark.timeout(60)
def test_timeout_stops_every_task(tmp_path):
    lines: list[str] = []
    job = make_job(tmp_path, ClusterShape("sync", 2), {"worker:0": "serve", "worker:1": "serve"},
                   lines, timeout=3)
    result = job.run()
    assert not result.ok and result.reason == "timeout after 3 s"
    assert all(not alive(t.proc.pid) for t in job.tasks.values())


LAUNCHER = r'''
import json, os, sys
from pathlib import Path
from tasks.distributed.cluster import ClusterShape
from tasks.distributed.launcher_local import LocalJob
folder = Path(sys.argv[1])
job = LocalJob(ClusterShape("async", 2, 1),
               [sys.executable, str(folder / "child.py"), str(folder / "plan.json")],
               cwd=folder, env=dict(os.environ), timeout=120, grace=2.0,
               on_line=lambda line: print(line, flush=True))
result = job.run()
print("RESULT", json.dumps({"ok": result.ok, "reason": result.reason}), flush=True)
'''


def launch_in_a_process(tmp_path: Path) -> tuple[subprocess.Popen, dict[str, int]]:
    """A launcher process (main thread, default signal handlers) whose three tasks all serve."""
    (tmp_path / "child.py").write_text(CHILD)
    (tmp_path / "plan.json").write_text(json.dumps(
        {n: "serve" for n in ("ps:0", "worker:0", "worker:1")}))
    (tmp_path / "launcher.py").write_text(LAUNCHER)
    proc = subprocess.Popen([sys.executable, str(tmp_path / "launcher.py"), str(tmp_path)],
                            cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE,
                            text=True)
    pids: dict[str, int] = {}
    assert proc.stdout is not None
    hello: set[str] = set()
    for line in proc.stdout:  # until every task has said hello (all three are running)
        started = re.match(r"\[launcher\] started (\S+) pid (\d+)", line)
        if started:
            pids[started.group(1)] = int(started.group(2))
        said = re.match(r"\[(\S+)\] hello from", line)
        if said:
            hello.add(said.group(1))
        if len(hello) == 3:
            break
    return proc, pids


@pytest.mark.timeout(90)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_stops_every_task_then_the_launcher(tmp_path, sig):
    proc, pids = launch_in_a_process(tmp_path)
    assert set(pids) == {"ps:0", "worker:0", "worker:1"}
    assert all(alive(pid) for pid in pids.values())
    sent = time.monotonic()
    proc.send_signal(sig)
    rest = proc.communicate(timeout=30)[0]
    # Every task is gone within a few seconds (SIGTERM, then SIGKILL after the 2 s grace)...
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [n for n, pid in pids.items() if alive(pid)] == []
    assert time.monotonic() - sent < 10
    # ...and then the signal took its usual course: SIGTERM's default action ends the
    # launcher; SIGINT is a KeyboardInterrupt, which ends Python by the signal too.
    assert proc.returncode == -sig
    assert f"stopped by signal {signal.Signals(sig).name}: every task stopped" in rest
    assert "RESULT" not in rest


def test_request_stop_from_another_thread(tmp_path):
    lines: list[str] = []
    job = make_job(tmp_path, ClusterShape("sync", 2), {"worker:0": "serve", "worker:1": "serve"},
                   lines, timeout=60, grace=1.0)
    threading.Timer(2.0, job.request_stop).start()
    started = time.monotonic()
    result = job.run()
    assert not result.ok and result.reason == "stop requested"
    assert time.monotonic() - started < 15
    assert all(not alive(t.proc.pid) for t in job.tasks.values())
