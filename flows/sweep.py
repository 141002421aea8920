"""The `sweep` flow: the pipeline once per params-overrides mapping, then a comparison table.

    python -m flows.sweep                                   # Kim's arms, as make compare
    python -m flows.sweep --variant word2vec.dims=50 --variant word2vec.dims=100
    python -m flows.sweep --variant 'word2vec.dims=50;cnn.embedding_dims=50'   # `;` joins keys

Parameters: `variants` (a list of overrides mappings; default: the arms of `make compare`,
tasks.classifier.comparison.arms(): rand, static, non-static, multichannel with Adam and
non-static with Adadelta; one run each: repeated paired seeds are `make compare`'s, because
`seed` here would re-split the data and retrain word2vec too), `root`, `metrics` (MLflow
metric names of the pipeline parent runs to show, `<stage>.<metric>`; default: those of
KEY_METRICS that exist), `name` (label for the sweep). Every mapping is validated (tasks.core.params) before the first variant runs.

Each variant is a `pipeline` subflow run: a DVC experiment named
`sweep-<overrides>-<sweep id>`, an MLflow parent run tagged `sweep_id`, `overrides` (the
variant's mapping as `key=value,...`) and `variant` (the CNN's embedding variant).
Variants run one after another (the stages already use both cores); a failed variant does
not stop the others, but fails the sweep at the end. Output: the rows of the table artifact
`sweep-comparison`, read back from MLflow with `mlflow.search_runs`.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.runtime import flow_run

from flows.compare import search
from flows.overrides import exp_name, slug, validate, variant_name
from flows.pipeline import local_server_settings, pipeline
from tasks.classifier.comparison import arms

DEFAULT_VARIANTS: list[dict[str, Any]] = list(arms().values())


KEY_METRICS = ["cnn.test_accuracy", "cnn.dev_accuracy", "word2vec.analogy_accuracy",
               "word2vec.wordsim353_spearman", "vocab.vocab_size", "cnn.wall_seconds"]


def comparison_rows(runs: Any, metrics: list[str] | None) -> list[dict[str, Any]]:
    """One row per pipeline parent run: overrides, CNN variant, the chosen metrics, DVC
    experiment, run id."""
    if runs.empty:
        return []
    if metrics is None:  # the headline metrics that exist, else every non-timing metric
        metrics = [m for m in KEY_METRICS if f"metrics.{m}" in runs.columns] or sorted(
            c[len("metrics."):] for c in runs.columns
            if c.startswith("metrics.") and not c.endswith("seconds"))
    rows = []
    for _, run in runs.sort_values("start_time").iterrows():
        row: dict[str, Any] = {"overrides": run.get("tags.overrides"),
                               "variant": run.get("tags.variant")}
        for name in metrics:
            value = run.get(f"metrics.{name}")
            row[name] = None if value is None or value != value else round(float(value), 4)
        row.update({"dvc_exp_name": run.get("tags.dvc_exp_name"), "mlflow_run_id": run["run_id"],
                    "status": run["status"]})
        rows.append(row)
    return rows


def run_name() -> str:
    """The flow run's name, e.g. `sweep cnn.embedding_init x4 12-02 20:31Z` or `sweep <name> ...`."""
    params = flow_run.parameters or {}
    variants = params.get("variants")
    if variants is None:
        variants = DEFAULT_VARIANTS
    keys = sorted({key for overrides in variants for key in overrides})
    label = params.get("name") or f"{','.join(keys)[:60] or 'baseline'} x{len(variants)}"
    return f"sweep {label} {datetime.now(UTC):%m-%d %H:%MZ}"


@flow(name="sweep", flow_run_name=run_name)
def sweep(variants: list[dict[str, Any]] | None = None, root: str = ".",
          metrics: list[str] | None = None, name: str | None = None) -> list[dict[str, Any]]:
    logger = get_run_logger()
    variants = variants if variants is not None else DEFAULT_VARIANTS
    cfg = validate(root, {})
    for overrides in variants:  # every mapping, before the first variant does any work
        validate(root, overrides)
    sweep_id = flow_run.id or slug(name or "local")
    short = slug(sweep_id, 8)
    failed = []
    for overrides in variants:
        label = variant_name(overrides)
        logger.info("variant %s", label)
        state = pipeline(overrides=overrides, root=root, label=label,
                         exp_name=exp_name("sweep", overrides, short) if overrides else None,
                         mlflow_tags={"sweep_id": sweep_id, "sweep_name": name or ""},
                         return_state=True)
        if not state.is_completed():
            failed.append(label)
            logger.error("variant %s failed: %s", label, state.message)
    rows = []
    if cfg.tracking.enabled:
        from tasks.core import tracking

        tracking.configure(cfg)
        runs = search(cfg.tracking.experiment,
                      f"tags.sweep_id = '{sweep_id}' AND tags.run_kind = 'pipeline'")
        rows = comparison_rows(runs, metrics)
    create_table_artifact(table=rows, key="sweep-comparison",
                          description=f"Sweep `{name or sweep_id}`: {len(variants)} variants, "
                                      f"MLflow experiment `{cfg.tracking.experiment}`")
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(variants)} variants failed: {failed}")
    return rows


def main(argv: list[str] | None = None) -> int:
    from tasks.core.errors import ParamsError
    from tasks.core.stage import parse_overrides, report_error

    parser = argparse.ArgumentParser(prog="python -m flows.sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", default=[], metavar="K=V[;K=V]",
                        help="one variant's overrides (repeat; default: the 4 CNN variants)")
    parser.add_argument("--root", default=".")
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)
    try:
        variants = [json.loads(v) if v.lstrip().startswith("{") else
                    parse_overrides(v.split(";")) for v in args.variant] or None
        for overrides in variants or DEFAULT_VARIANTS:
            validate(args.root, overrides)
    except (ParamsError, ValueError) as exc:  # a bad key or value, or bad JSON
        return report_error("sweep", exc)
    try:
        with local_server_settings("flows.sweep"):
            rows = sweep(variants=variants, root=args.root, name=args.name)
    except Exception as exc:
        return report_error("sweep", exc, 1)
    print(json.dumps(rows, default=str, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
