"""The MLflow parent run of a pipeline run, kept by a helper process (no Prefect here).

- `ParentRun(cfg, name, tags, params)`: the run itself, opened in this process through
  `tasks.core.tracking.configure` (same store and experiment as the stage runs). Tags: git
  commit, Prefect flow-run id, DVC experiment name, variant, overrides, `data_hashes`
  ({path: md5} of dvc.lock as JSON); params: the overrides; metrics: `<stage>.<name>` from the
  stages' metrics files. The distributed flow uses it directly.
- `ParentRunProcess`: the same interface (`run_id`, `env()`, `finish()`, `children()`), the
  run kept by `python -m flows.parent_run` instead. The pipeline flow uses this one because
  `import mlflow` and its SQL store cost ~3 s of CPU (measured: 1.7 s + 1.4 s) that, in the
  flow's process, hold the GIL against Prefect's own start-up; in a process of their own they
  run on the other core while Prefect and DVC start. The CLI starts the helper before it even
  imports Prefect (`ParentRunProcess.prestart()`). `open_parent_run` picks the in-process run
  only where MLflow is loaded already (a notebook, a test session). Two more gains: the helper ends the run
  FAILED if the flow process dies without finishing it (its stdin closes), and it ignores
  SIGINT/SIGTERM so a Ctrl-C of the terminal's process group still lets the flow finish it.

Protocol: one JSON object per line. The flow writes `{"op": "open", "root", "overrides",
"name", "tags", "params"}`, the helper answers `{"run_id", "experiment_id"}` (or
`{"error"}`); later `{"op": "finish", "ok", "tags", "metrics"}` is answered with
`{"children": {stage: run id}}` and the helper exits.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from flows.common import scalar_metrics
from flows.overrides import validate
from tasks.core import tracking
from tasks.core.params import Config

BATCH_LIMIT = 100  # tags per log_batch call: MLflow's limit (1,000 metrics, 100 tags)
PROJECT = Path(__file__).resolve().parents[1]  # where `flows` is importable from


class ParentRun:
    """The MLflow parent run of one pipeline run (a no-op when tracking is disabled)."""

    def __init__(self, cfg: Config, run_name: str, tags: Mapping[str, str],
                 params: Mapping[str, Any] | None = None, enabled: bool = True) -> None:
        self.cfg, self.run_id, self.experiment_id = cfg, None, None
        if not (enabled and cfg.tracking.enabled):
            return
        import mlflow

        self.experiment_id = tracking.configure(cfg)
        self.client = mlflow.MlflowClient()
        all_tags = {"run_kind": "pipeline", **tracking.git_tags(cfg.root), **tags}
        run = self.client.create_run(self.experiment_id, run_name=run_name,
                                     tags={k: str(v) for k, v in all_tags.items() if v})
        self.run_id = run.info.run_id
        for key, value in (params or {}).items():
            self.client.log_param(self.run_id, key, str(value)[:6000])

    @classmethod
    def disabled(cls, cfg: Config) -> ParentRun:
        """A placeholder (no MLflow run) until the real one is opened."""
        return cls(cfg, "", {}, enabled=False)

    def env(self) -> dict[str, str]:
        return {"MLFLOW_PARENT_RUN_ID": self.run_id} if self.run_id else {}

    def children(self) -> dict[str, str]:
        """{stage: run id} of the stage runs nested under this run (latest per stage)."""
        if not self.run_id:
            return {}
        runs = self.client.search_runs([self.experiment_id],
                                       filter_string=f"tags.mlflow.parentRunId = '{self.run_id}'",
                                       order_by=["attributes.start_time ASC"])
        return {r.data.tags.get("stage", r.info.run_name): r.info.run_id for r in runs}

    def finish(self, ok: bool, tags: Mapping[str, str] | None = None,
               metrics: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        if not self.run_id:
            return
        from mlflow.entities import Metric, RunTag

        # One batch (one store transaction) instead of a call per value: ~90 metrics.
        now = int(time.time() * 1000)
        batch = [Metric(f"{stage}.{key}", value, now, 0)
                 for stage, values in (metrics or {}).items()
                 for key, value in scalar_metrics(values).items()]
        tag_list = [RunTag(key, str(value)) for key, value in (tags or {}).items()]
        for i in range(0, max(len(batch), len(tag_list)), BATCH_LIMIT):
            self.client.log_batch(self.run_id, metrics=batch[i:i + BATCH_LIMIT],
                                  tags=tag_list[i:i + BATCH_LIMIT])
        self.client.set_terminated(self.run_id, "FINISHED" if ok else "FAILED")


class ParentRunProcess:
    """A ParentRun kept by the helper process `python -m flows.parent_run`."""

    _prestarted: subprocess.Popen | None = None

    def __init__(self, cfg: Config, run_name: str, tags: Mapping[str, str],
                 params: Mapping[str, Any] | None = None,
                 overrides: Mapping[str, Any] | None = None) -> None:
        """`overrides`: the params overrides `cfg` was built with (the helper rebuilds it)."""
        self.cfg, self.run_id, self.experiment_id = cfg, None, None
        self._children: dict[str, str] = {}
        self.process: subprocess.Popen | None = None
        if not cfg.tracking.enabled:
            self.discard_prestarted()
            return
        self.process = self.take()
        try:
            reply = self._ask({"op": "open", "root": str(cfg.root),
                               "overrides": dict(overrides or {}), "name": run_name,
                               "tags": dict(tags), "params": dict(params or {})})
        except BaseException:
            self._stop()
            raise
        self.run_id, self.experiment_id = reply["run_id"], reply["experiment_id"]

    @staticmethod
    def spawn() -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(PROJECT), os.environ.get("PYTHONPATH", "")) if p)}
        return subprocess.Popen([sys.executable, "-m", "flows.parent_run"], env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    @classmethod
    def prestart(cls) -> None:
        """Start the helper now (it loads MLflow meanwhile); the next ParentRunProcess uses it."""
        if cls._prestarted is None:
            cls._prestarted = cls.spawn()

    @classmethod
    def take(cls) -> subprocess.Popen:
        process, cls._prestarted = cls._prestarted, None
        return process if process is not None and process.poll() is None else cls.spawn()

    @classmethod
    def discard_prestarted(cls) -> None:
        """Stop a prestarted helper nobody used (tracking disabled): it exits on EOF."""
        process, cls._prestarted = cls._prestarted, None
        if process is not None:
            process.stdin.close()
            process.stdout.close()

    def _ask(self, message: Mapping[str, Any]) -> dict[str, Any]:
        assert self.process is not None
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except (BrokenPipeError, ValueError):
            line = ""
        if not line:
            code = self.process.wait()
            raise RuntimeError(f"the MLflow helper process exited (code {code})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"MLflow parent run: {reply['error']}")
        return reply

    def env(self) -> dict[str, str]:
        return {"MLFLOW_PARENT_RUN_ID": self.run_id} if self.run_id else {}

    def children(self) -> dict[str, str]:
        return dict(self._children)

    def finish(self, ok: bool, tags: Mapping[str, str] | None = None,
               metrics: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        if self.process is None or not self.run_id:
            return
        try:
            # metrics as read from the stages' JSON files; the helper's ParentRun.finish
            # keeps the numeric ones
            reply = self._ask({"op": "finish", "ok": ok, "tags": dict(tags or {}),
                               "metrics": dict(metrics or {})})
            self._children = reply["children"]
        finally:
            self._stop()

    def _stop(self) -> None:
        """Close the helper's input (it exits, ending an unfinished run FAILED) and reap it."""
        assert self.process is not None
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):  # a helper that died leaves a broken pipe
                stream.close()
        self.process.wait()


def open_parent_run(cfg: Config, run_name: str, tags: Mapping[str, str],
                    params: Mapping[str, Any] | None = None,
                    overrides: Mapping[str, Any] | None = None) -> ParentRun | ParentRunProcess:
    """The pipeline's parent run: in this process if MLflow is already loaded here (a
    long-lived process: a notebook, a test session; it costs nothing more) and no helper was
    prestarted, otherwise kept by the helper process."""
    if ParentRunProcess._prestarted is None and "mlflow" in sys.modules:
        return ParentRun(cfg, run_name, tags, params)
    return ParentRunProcess(cfg, run_name, tags, params, overrides)


def serve(requests: IO[str], replies: IO[str]) -> None:
    """The helper's loop: open the run, finish it; a closed input before `finish` = FAILED."""
    run: ParentRun | None = None

    def reply(message: Mapping[str, Any]) -> None:
        replies.write(json.dumps(message) + "\n")
        replies.flush()

    for line in requests:
        message = json.loads(line)
        try:
            if message["op"] == "open":
                cfg = validate(message["root"], message["overrides"])
                run = ParentRun(cfg, message["name"], message["tags"], message["params"])
                reply({"run_id": run.run_id, "experiment_id": run.experiment_id})
            elif message["op"] == "finish" and run is not None:
                run.finish(message["ok"], message["tags"], message["metrics"])
                reply({"children": run.children()})
                return
        except Exception as exc:  # the flow raises it: one line, where and what
            reply({"error": f"{type(exc).__name__}: {exc}"})
    if run is not None:  # the flow process went away without finishing its run
        run.finish(False, {"parent_run_end": "flow process exited without finishing"})


def main() -> int:
    # The flow owns signals: a Ctrl-C reaches the whole process group, and the flow then
    # still needs this process to end the run; it ends with its stdin anyway.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    replies = os.fdopen(os.dup(1), "w")  # the protocol; stray prints go to stderr
    os.dup2(2, 1)
    gc.disable()  # start-up allocates ~1M long-lived objects: no collections while importing
    import mlflow  # noqa: F401  (the ~3 s this process exists for, before any request)

    if not os.environ.get("MLFLOW_TRACKING_URI", "sqlite").startswith(("http", "databricks")):
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
    gc.freeze()
    gc.enable()
    serve(sys.stdin, replies)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
