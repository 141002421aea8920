"""What the flows record about a pipeline run: metrics, data hashes, summary rows.

- The MLflow parent run itself is in flows/parent_run.py; its id reaches the stage processes
  (`MLFLOW_PARENT_RUN_ID` or the handover file), so tasks/core/tracking.py nests each stage
  run under it.
- `read_metrics(cfg, stages, rev)`: `<paths.metrics>/<stage>.json`, from the workspace or
  from a git revision (a DVC experiment's commit).
- `summary_rows(...)`: the Prefect table artifact, one row per stage metric, numbers
  formatted by `readable` (`11,104,392`, `0.8011`).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tasks.core import tracking
from tasks.core.params import Config


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
