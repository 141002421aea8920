"""Shared helpers for the Prefect flow tests: a real Prefect server, a toy DVC project.

- `shared_server()`: one `prefect server start --host 127.0.0.1 --port <free>` per pytest
  process (its own PREFECT_HOME in tmp; ~15-30 s to come up), stopped at exit. The
  `prefect_api` fixture points this process's Prefect settings (and subprocesses' env) at
  it; a test module gets it with `from tests.flowtools import prefect_api_fixture`.
- `toy_project(dest)`: a git + DVC repo with the project's tasks/ and params.yaml and a toy
  3-stage dvc.yaml (download -> prepare -> vocab; download depends on `../toy-eval.txt`,
  outside the repo, as word2vec does on ../shared/eval) run as `python toystage.py`,
  a stand-in stage using the real `tasks.core.stage.stage_main` (MLflow run, metrics file).
  Seconds per stage instead of minutes; `TOY_SLEEP` (env) makes every stage take longer,
  `TOY_GATE=<file>` makes it wait while that file exists,
  a file `.fail-<stage>` in the repo makes that stage fail once, `vocab.min_count: 99`
  makes vocab fail (also inside a DVC experiment, where untracked files are not copied).
- `toy_run` fixture: ONE toy pipeline flow run per session (its first download attempt
  fails, so Prefect retries it; flows/ and prefect.yaml are in the project), with its own
  MLflow store. Tests that read what it recorded, or need a project whose stages are already
  built (experiments then re-run only what the overrides change), share it instead of each
  paying for a run: test_pipeline_flow, test_ui_browser, test_deployment, test_sweep. Later
  tests may add runs and experiments to it, never change its workspace.
- `task_runs(flow_run_id)`, `artifacts(flow_run_id)`, `task_logs(task_run_id)`: read back
  from the Prefect API what a flow run recorded.
- `free_port()`, `wait_http(url)`, `sub_env(**extra)`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

TOY_STAGE = '''"""A stand-in stage for flow tests: appends a line per stage, through tasks.core.stage."""
import os
import sys
import time
from pathlib import Path

from tasks.core.errors import PipelineError
from tasks.core.stage import stage_main


def make(stage, src, dst):
    def run(cfg):
        print(f"{stage}: start, DVC_EXP_NAME={os.environ.get('DVC_EXP_NAME', '')}", flush=True)
        time.sleep(float(os.environ.get("TOY_SLEEP", "0")))
        gate, waited = os.environ.get("TOY_GATE"), 0.0
        while gate and Path(gate).exists() and waited < 300:  # held until the test says go
            time.sleep(0.1)
            waited += 0.1
        marker = Path(f".fail-{stage}")
        if marker.exists():
            marker.unlink()
            raise PipelineError(f"{stage}: planned failure")
        if stage == "vocab" and cfg.vocab.min_count == 99:
            raise PipelineError("vocab: min_count 99 is the planned failure")
        text = (Path(src).read_text() if src != "-" else "") + f"{stage} {cfg.vocab.min_count}\\n"
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        Path(dst).write_text(text)
        for i in range(3):
            print(f"{stage}: line {i}", flush=True)
        return {"lines": len(text.splitlines()), "min_count": cfg.vocab.min_count}
    return run


if __name__ == "__main__":
    stage, src, dst = sys.argv[1:4]
    raise SystemExit(stage_main(stage, make(stage, src, dst), sys.argv[4:]))
'''

TOY_DVC = """stages:
  download:
    cmd: python toystage.py download - data/a.txt
    deps: [toystage.py, ../toy-eval.txt]   # outside the repo, like ../shared/eval/
    params: [seed]
    outs: [data/a.txt]
    metrics:
      - ${paths.metrics}/download.json:
          cache: false
  prepare:
    cmd: python toystage.py prepare data/a.txt data/b.txt
    deps: [toystage.py, data/a.txt]
    params: [prepare.min_tokens]
    outs: [data/b.txt]
    metrics:
      - ${paths.metrics}/prepare.json:
          cache: false
  vocab:
    cmd: python toystage.py vocab data/b.txt data/c.txt
    deps: [toystage.py, data/b.txt]
    params: [vocab.min_count]
    outs: [data/c.txt]
    metrics:
      - ${paths.metrics}/vocab.json:
          cache: false
"""
TOY_STAGES = ["download", "prepare", "vocab"]


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=test",
                           *args], cwd=root, check=True, capture_output=True, text=True).stdout


def sub_env(**extra: str) -> dict[str, str]:
    """This process's environment for a subprocess, venv first on PATH, no analytics."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update({"DVC_NO_ANALYTICS": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def toy_project(dest: Path, with_flows: bool = False, tracking: bool = True) -> Path:
    """A committed git + DVC repo with the toy pipeline (see module docstring).

    `with_flows` also copies flows/ and prefect.yaml (for `prefect deploy` and workers);
    `tracking=False` sets `tracking.enabled: false` (no MLflow import: faster stages).
    """
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "tasks", dest / "tasks", ignore=ignore)
    if with_flows:
        shutil.copytree(REPO / "flows", dest / "flows", ignore=ignore)
        shutil.copy2(REPO / "prefect.yaml", dest / "prefect.yaml")
    params = (REPO / "params.yaml").read_text()
    if not tracking:
        params = params.replace("  enabled: true", "  enabled: false", 1)
        assert "enabled: false" in params
    (dest / "params.yaml").write_text(params)
    (dest / "toystage.py").write_text(TOY_STAGE)
    (dest.parent / "toy-eval.txt").write_text("evaluation data kept outside the repo\n")
    (dest / "dvc.yaml").write_text(TOY_DVC)
    (dest / ".gitignore").write_text("mlflow.db\nmlartifacts/\n__pycache__/\n.fail-*\n")
    git(dest, "init", "-q")
    env = sub_env()
    subprocess.run([str(BIN / "dvc"), "init", "-q"], cwd=dest, check=True, env=env)
    subprocess.run([str(BIN / "dvc"), "config", "core.analytics", "false"], cwd=dest, check=True,
                   env=env)
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "toy project")
    return dest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 180.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


class PrefectServer:
    """`prefect server start` on a free loopback port, with a private PREFECT_HOME."""

    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="prefect-server-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.url}/api"
        self.log = open(self.home / "server.log", "w")  # noqa: SIM115 (lives as long as server)
        # The UI asks the API at PREFECT_UI_API_URL (default port 4200, whatever --port says).
        env = sub_env(PREFECT_HOME=str(self.home), PREFECT_UI_API_URL=self.api_url)
        env.pop("PREFECT_API_URL", None)
        self.proc = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
             "--port", str(self.port)], env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            wait_http(f"{self.api_url}/health", proc=self.proc)
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        stop_process(self.proc, grace=30)
        self.log.close()
        shutil.rmtree(self.home, ignore_errors=True)


def stop_process(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM `proc`; after `grace` seconds SIGKILL its whole process group.

    Prefect and MLflow CLIs forward the signal to a child and their graceful shutdown can hang
    on a busy box (seen: a `prefect worker` still up 60 s after its flow run finished); the
    test's results are already stored, so nothing is lost. Start `proc` with
    `start_new_session=True` so the group holds only it and its children.
    """
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


_SERVER: list[PrefectServer] = []


def shared_server() -> PrefectServer:
    """The one Prefect server of this pytest process (started on first use)."""
    if not _SERVER:
        _SERVER.append(PrefectServer())
        atexit.register(_SERVER[0].stop)
    return _SERVER[0]


@pytest.fixture(name="prefect_api")
def prefect_api_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                        ) -> Iterator[PrefectServer]:
    """Point Prefect (this process and subprocesses) at the shared server."""
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    server = shared_server()
    monkeypatch.setenv("PREFECT_API_URL", server.api_url)
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    with temporary_settings(updates={PREFECT_API_URL: server.api_url,
                                     PREFECT_HOME: str(tmp_path / "prefect-home")}):
        yield server


def task_runs(flow_run_id: str) -> list:
    """The task runs of a flow run, in start order."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(task_run_filter=TaskRunFilter(
            flow_run_id=TaskRunFilterFlowRunId(any_=[flow_run_id])))
    return sorted(runs, key=lambda r: (r.start_time or r.expected_start_time or r.created))


def artifacts(flow_run_id: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))


def task_logs(task_run_id: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterTaskRunId

    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(task_run_id=LogFilterTaskRunId(
            any_=[task_run_id])))
    return [log.message for log in logs]


def mlflow_runs(uri: str, experiment: str = "w2v-cnn") -> list:
    """Every run of `experiment` in the store at `uri` (the process-wide MLflow URI is left
    alone: a client per store, so later tests still read their own)."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], max_results=10_000) if found else []


@dataclass(frozen=True)
class ToyRun:
    root: Path            # the toy project (later tests may run it again: all skipped)
    mlflow_uri: str       # its own SQLite store
    summary: dict         # what `pipeline` returned


_TOY_RUN: list[ToyRun] = []


@pytest.fixture(name="toy_run")
def toy_run_fixture(prefect_api: PrefectServer, tmp_path_factory: pytest.TempPathFactory,
                    monkeypatch: pytest.MonkeyPatch) -> ToyRun:
    """The session's toy pipeline run; MLFLOW_TRACKING_URI points at its store."""
    if not _TOY_RUN:
        from flows.pipeline import pipeline

        base = tmp_path_factory.mktemp("toy-run")
        root = toy_project(base / "toy", with_flows=True)
        (root / ".fail-download").write_text("the first download attempt fails")
        uri = f"sqlite:///{base / 'mlflow.db'}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        _TOY_RUN.append(ToyRun(root, uri, pipeline(root=str(root), retry_backoff=0.5)))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", _TOY_RUN[0].mlflow_uri)
    return _TOY_RUN[0]
