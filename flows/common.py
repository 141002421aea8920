"""What the flows record about a pipeline run: the MLflow parent run, metrics, summary rows.

- `warm_up_tracking(cfg)`: MLflow's import and store set-up in a background thread (CLIs).
- `ParentRun`: one MLflow run per pipeline run, created through `tasks.core.tracking.configure`
  (same store and experiment as the stage runs). Its id goes to the stage processes as
  `MLFLOW_PARENT_RUN_ID`, so tasks/core/tracking.py nests each stage run under it. Tags: git
  commit, Prefect flow-run id, DVC experiment name, variant, overrides, `data_hashes`
  ({path: md5} of dvc.lock as JSON); params: the overrides; metrics: `<stage>.<name>` from the stages' metrics files.
- `read_metrics(cfg, stages, rev)`: `<paths.metrics>/<stage>.json`, from the workspace or
  from a git revision (a DVC experiment's commit).
- `summary_rows(...)`: the Prefect table artifact, one row per stage metric, numbers
  formatted by `readable` (`11,104,392`, `0.8011`).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tasks.core import tracking
from tasks.core.params import Config

BATCH_LIMIT = 100  # tags per log_batch call: MLflow's limit (1,000 metrics, 100 tags)


def git(root: Path | str, *args: str) -> str | None:
    """stdout of `git <args>` in root, or None if git fails."""
    result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    return result.stdout if result.returncode == 0 else None


def head_commit(root: Path | str) -> str:
    return (git(root, "rev-parse", "HEAD") or "").strip()


def exp_ref(baseline: str, name: str) -> str:
    """The git ref DVC stores experiment `name` under (refs/exps/<ba>/<seline>/<name>)."""
    return f"refs/exps/{baseline[:2]}/{baseline[2:]}/{name}"


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


def read_metrics(cfg: Config, stages: Sequence[str], rev: str | None = None) -> dict[str, dict]:
    """{stage: metrics} for the stages whose metrics file exists (workspace or `rev`)."""
    out = {}
    for stage in stages:
        path = Path(cfg.paths.metrics) / f"{stage}.json"
        if rev is None:
            file = cfg.root / path
            text = file.read_text() if file.exists() else None
        else:
            text = git(cfg.root, "show", f"{rev}:{path.as_posix()}")
        if text:
            try:
                out[stage] = json.loads(text)
            except json.JSONDecodeError:
                continue
    return out


def lock_data_tags(root: Path, rev: str | None = None) -> dict[str, str]:
    """The `data_hashes` tag ({path: md5} as JSON) from dvc.lock (workspace, or the one
    committed at `rev`); {} without one."""
    if rev is None:
        return tracking.data_hashes_tag(tracking.data_hashes(root))
    text = git(root, "show", f"{rev}:dvc.lock")
    if not text:
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "dvc.lock").write_text(text)
        return tracking.data_hashes_tag(tracking.data_hashes(Path(tmp)))


def warm_up_tracking(cfg: Config) -> threading.Thread | None:
    """Import MLflow and open its store in a background thread; return it (None if tracking
    is disabled). `import mlflow` and the store's schema check are the largest fixed cost of a
    pipeline run after Prefect itself (~2 s of CPU): the CLI starts this before the flow, so
    it runs while Prefect registers the flow run (HTTP round trips) or waits for its
    temporary server. ParentRun then finds both done (MLflow caches the store per URI)."""
    if not cfg.tracking.enabled:
        return None

    def warm() -> None:
        with contextlib.suppress(Exception):  # ParentRun reports any real problem itself
            tracking.configure(cfg)

    thread = threading.Thread(target=warm, name="mlflow-warm-up", daemon=True)
    thread.start()
    return thread


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


def readable(value: float) -> str:
    """A number as people read it: `11,104,392` for counts, `0.8011` or `92.1` otherwise
    (never `1.11e+07`); scientific notation only below 0.001."""
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    if abs(value) >= 0.001:
        return f"{value:.4f}".rstrip("0").rstrip(".")
    return f"{value:.2e}"


def summary_rows(results: Mapping[str, Mapping[str, Any]], metrics: Mapping[str, Mapping],
                 children: Mapping[str, str]) -> list[dict[str, str]]:
    """The `pipeline-summary` table: one row per stage metric (a stage without metrics gets
    one row, metric `-`); the stage, status, seconds and MLflow run id of a stage appear on
    its first row only, so the table reads stage by stage."""
    rows = []
    for stage, result in results.items():
        values = scalar_metrics(metrics.get(stage, {})) or {"-": None}
        for i, (name, value) in enumerate(values.items()):
            first = i == 0
            rows.append({
                "stage": stage if first else "",
                "status": str(result.get("status", "")) if first else "",
                "seconds": f"{float(result.get('seconds', 0.0)):.1f}" if first else "",
                "metric": name,
                "value": "-" if value is None else readable(value),
                "mlflow_run_id": children.get(stage, "-") if first else "",
            })
    return rows


def summary_markdown(flow_run_id: str, parent_run_id: str | None, exp: str | None,
                     uri: str, experiment: str) -> str:
    lines = [f"Prefect flow run `{flow_run_id}`",
             f"MLflow experiment `{experiment}`, parent run `{parent_run_id or '-'}` ({uri})"]
    if exp:
        lines.append(f"DVC experiment `{exp}` (`dvc exp show`, `dvc exp apply {exp}`)")
    return "  \n".join(lines)
