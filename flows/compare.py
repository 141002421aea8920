"""Compare MLflow runs: the latest run of each variant for one metric, best first.

    python -m flows.compare --metric test_accuracy                     # grouped by tags.variant
    python -m flows.compare --experiment w2v-cnn --metric test_accuracy \\
        --group-by params.cnn.embedding_init

Inputs: the MLflow store (`--tracking-uri`, else MLFLOW_TRACKING_URI, else the store
params.yaml's `tracking` section points at, as tasks/core/tracking.py resolves it) and experiment
(default `tracking.experiment`). Only runs that logged the metric count, so stage runs
(e.g. the cnn runs' `test_accuracy`) and pipeline parent runs (`cnn.test_accuracy`) are
compared separately. `--group-by` is any search_runs column (`tags.X`, `params.X`); a bare
name means a tag. Output: a plain-text table on stdout (exit 1 if no run has the metric).
Used by the `sweep` flow for its comparison artifact.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

PREFIXES = ("tags.", "params.", "metrics.", "attributes.")


def column(name: str, default_prefix: str) -> str:
    return name if name.startswith(PREFIXES) or name in ("run_id", "status") else (
        default_prefix + name)


def search(experiment: str, filter_string: str = "", max_results: int = 5000) -> Any:
    """mlflow.search_runs as a DataFrame, newest first."""
    import mlflow

    return mlflow.search_runs(experiment_names=[experiment], filter_string=filter_string,
                              order_by=["attributes.start_time DESC"], max_results=max_results)


def latest_per_group(runs: Any, metric: str, group_by: str) -> list[dict[str, Any]]:
    """One row per value of `group_by`: the newest run with `metric`, sorted best first."""
    metric_col, group_col = column(metric, "metrics."), column(group_by, "tags.")
    if runs.empty or metric_col not in runs.columns:
        return []
    runs = runs[runs[metric_col].notna()].copy()
    groups = runs[group_col] if group_col in runs.columns else None
    runs["_group"] = "(none)" if groups is None else groups.fillna("(none)").astype(str)
    latest = runs.sort_values("start_time", ascending=False).drop_duplicates("_group")
    latest = latest.sort_values(metric_col, ascending=False)
    rows = []
    for _, run in latest.iterrows():
        rows.append({
            group_col: run["_group"],
            metric_col: float(run[metric_col]),
            "run_name": run.get("tags.mlflow.runName", ""),
            "run_id": run["run_id"],
            "started": run["start_time"].strftime("%Y-%m-%d %H:%M:%S"),
            "dvc_exp_name": _text(run.get("tags.dvc_exp_name")),
            "prefect_flow_run_id": _text(run.get("tags.prefect_flow_run_id")),
        })
    return rows


def _text(value: Any) -> str:
    return "" if value is None or value != value else str(value)  # NaN != NaN


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Fixed-width plain-text table (floats to 4 decimals)."""
    if not rows:
        return ""
    cells = [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values()]
             for row in rows]
    header = list(rows[0])
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    import mlflow

    from tasks.core import tracking
    from tasks.core.errors import ParamsError
    from tasks.core.params import load_params
    from tasks.core.stage import report_error

    parser = argparse.ArgumentParser(prog="python -m flows.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default=None, help="default: params tracking.experiment")
    parser.add_argument("--metric", required=True, help="e.g. test_accuracy")
    parser.add_argument("--group-by", default="tags.variant", help="default: tags.variant")
    parser.add_argument("--params", default="params.yaml", help="for the store and experiment")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--filter", default="", help="an MLflow search filter string")
    args = parser.parse_args(argv)
    try:
        cfg = load_params(args.params) if not (args.tracking_uri and args.experiment) else None
    except ParamsError as exc:
        return report_error("compare", exc)
    uri = args.tracking_uri or (tracking.tracking_uri(cfg) if cfg else "")
    mlflow.set_tracking_uri(uri)
    experiment = args.experiment or cfg.tracking.experiment
    rows = latest_per_group(search(experiment, args.filter), args.metric, args.group_by)
    if not rows:
        return report_error("compare", f"no run in experiment {experiment!r} ({uri}) has "
                                       f"metric {args.metric!r}", 1)
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
