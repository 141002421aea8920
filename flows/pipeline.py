"""The `pipeline` flow: every DVC stage of dvc.yaml as one Prefect task run, through DVC.

    python -m flows.pipeline                                  # like `dvc repro`, in Prefect
    python -m flows.pipeline --set cnn.embedding_init=rand    # a DVC experiment (--temp)

Parameters: `overrides` (dotted params keys -> values, validated by tasks.core.params before any
work), `root` (the project checkout, default the working directory), `variant` (MLflow tag
`variant`, default derived from the overrides), `exp_name` (DVC experiment name),
`mlflow_tags` (extra tags on the MLflow parent run), `lock_timeout` (seconds to wait for a
DVC lock held by another run), `download_retries` / `retry_backoff` (Prefect retries of the
download task, the only I/O-bound stage).

Without overrides each task runs `dvc repro --single-item <stage>` in the workspace (so
dvc.lock and the cache are the ones `dvc repro` uses); a stage DVC reports as unchanged ends
in a Completed state named "Skipped". With overrides the flow runs one `dvc exp run --temp`
and each stage's task follows that stage's part of its output (docs/orchestration.md).
Output: the summary dict (also printed by the CLI as JSON with --json) and the table
artifact `pipeline-summary`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Completed
from prefect.tasks import exponential_backoff

from flows import stages as dvc
from flows.common import summary_markdown
from flows.experiment import Experiment
from flows.run import PipelineRun

RETRIED_STAGES = {"download"}  # network I/O: worth a retry; a training failure is not


@contextlib.contextmanager
def local_server_settings() -> Iterator[None]:
    """For the CLIs: without PREFECT_API_URL Prefect starts a temporary local server per run.
    Keep it offline (no analytics) and give it time to start on a busy machine (the default
    20 s is not always enough on 2 loaded cores). Explicit user settings win."""
    from prefect.settings import (
        PREFECT_SERVER_ANALYTICS_ENABLED,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    updates: dict[Any, Any] = {}
    if "PREFECT_SERVER_ANALYTICS_ENABLED" not in os.environ:
        os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"  # the server subprocess's env
        updates[PREFECT_SERVER_ANALYTICS_ENABLED] = False
    if "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" not in os.environ:
        updates[PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS] = 180
    with temporary_settings(updates=updates):
        yield


def line_logger(logger: Any) -> dvc.LineSink:
    """Each output line of a stage process becomes one Prefect log record."""
    def emit(line: str) -> None:
        if not line.strip():
            return
        if any(marker in line for marker in dvc.LOCK_ERRORS):
            level = logging.WARNING  # another run holds the lock: expected, waited for
        elif line.startswith("ERROR"):
            level = logging.ERROR
        else:
            level = logging.WARNING if line.startswith("WARNING") else logging.INFO
        logger.log(level, line)
    return emit


def stage_state(result: dvc.StageResult) -> Any:
    """The task's return value: the result, in a Completed state named "Skipped" if skipped."""
    if not result.skipped:
        return result.as_dict()
    why = result.detail or ("outputs restored from the DVC run cache" if
                            result.status == "restored" else "dependencies unchanged")
    return Completed(name="Skipped", message=f"{result.stage}: {why}", data=result.as_dict())


@task(cache_policy=NO_CACHE, persist_result=False)
def repro(stage: str, root: str, env: dict[str, str], unchanged: bool,
          lock_timeout: float) -> Any:
    """One stage in the workspace through `dvc repro --single-item`."""
    if unchanged:  # dvc status said so and no upstream stage ran in this flow run
        return stage_state(dvc.StageResult(stage, "skipped", 0.0, "unchanged (dvc status)"))
    logger = get_run_logger()
    result = dvc.repro_stage(root, stage, dvc.stage_env(env), line_logger(logger), lock_timeout)
    return stage_state(result)


@task(cache_policy=NO_CACHE, persist_result=False)
def follow(stage: str, experiment: Experiment) -> Any:
    """One stage of the running DVC experiment: stream its lines, end when DVC moves on."""
    return stage_state(experiment.follow(stage, line_logger(get_run_logger())))


def stage_task(stage: str, experiment: bool, retries: int, backoff: float) -> Any:
    fn = follow if experiment else repro
    options: dict[str, Any] = {"name": stage, "task_run_name": stage}
    if stage in RETRIED_STAGES and not experiment:
        options.update(retries=retries, retry_delay_seconds=exponential_backoff(backoff))
    return fn.with_options(**options)


@flow(name="pipeline")
def pipeline(overrides: dict[str, Any] | None = None, root: str = ".",
             variant: str | None = None, exp_name: str | None = None,
             mlflow_tags: dict[str, str] | None = None, lock_timeout: float = 3600.0,
             download_retries: int = 2, retry_backoff: float = 10.0) -> dict[str, Any]:
    logger = get_run_logger()
    run = PipelineRun.open(root, overrides, flow_run.id, flow_run.name, variant, exp_name,
                           mlflow_tags, lock_timeout)
    logger.info("stages %s; MLflow parent run %s%s", run.stages, run.parent.run_id,
                f"; DVC experiment {run.exp_name}" if run.exp_name else "")
    results: dict[str, Any] = {}
    ok = False
    try:
        if run.exp_name:
            experiment = run.start_experiment(line_logger(logger))
            for stage in run.stages:
                state = stage_task(stage, True, 0, 0)(stage, experiment, return_state=True)
                results[stage] = state.result()  # raises if the stage failed
            experiment.wait()
        else:
            changed, ran = run.changed(), False
            for stage in run.stages:
                unchanged = changed is not None and stage not in changed and not ran
                task_fn = stage_task(stage, False, download_retries, retry_backoff)
                state = task_fn(stage, str(run.root), run.env, unchanged, lock_timeout,
                                return_state=True)
                results[stage] = state.result()  # raises if the stage failed
                ran = ran or results[stage]["status"] != "skipped"
        ok = True
    finally:
        summary = run.close(results, ok)
    create_table_artifact(
        table=summary["rows"], key="pipeline-summary",
        description=summary_markdown(run.flow_run_id, run.parent.run_id, run.exp_name,
                                     summary["tracking_uri"], summary["mlflow_experiment"]))
    return {k: v for k, v in summary.items() if k != "rows"}


def main(argv: list[str] | None = None) -> int:
    from tasks.core.errors import ParamsError
    from tasks.core.stage import parse_overrides, report_error

    parser = argparse.ArgumentParser(prog="python -m flows.pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a params key (runs a DVC experiment)")
    parser.add_argument("--root", default=".", help="project checkout (default: .)")
    parser.add_argument("--name", default=None, help="DVC experiment name (with --set)")
    parser.add_argument("--variant", default=None, help="MLflow tag `variant`")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    try:
        overrides = parse_overrides(args.overrides)
        PipelineRun.validate_only(args.root, overrides)
    except (ParamsError, dvc.StageError) as exc:
        return report_error("pipeline", exc)
    try:
        with local_server_settings():
            summary = pipeline(overrides=overrides, root=args.root, variant=args.variant,
                               exp_name=args.name)
    except Exception as exc:  # the flow run is Failed; Prefect has logged the traceback
        return report_error("pipeline", exc, 1)
    if args.json:
        print(json.dumps(summary, default=str))
    else:
        for stage, result in summary["stages"].items():
            print(f"{stage:<12} {result['status']:<9} {result['seconds']:>8.1f} s")
        print(f"MLflow parent run {summary['mlflow_run_id']} ({summary['tracking_uri']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
