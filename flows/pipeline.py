"""The `pipeline` flow: every DVC stage of dvc.yaml as one Prefect task run, through DVC.

    python -m flows.pipeline                                  # like `dvc repro`, in Prefect
    python -m flows.pipeline --set cnn.embedding_init=rand    # a DVC experiment (--temp)

Parameters: `overrides` (dotted params keys -> values, validated by tasks.core.params before any
work), `root` (the project checkout, default the working directory), `label` (the flow
run's name before its start time, default the overrides as `key=value,...` or `baseline`),
`exp_name` (DVC experiment name),
`mlflow_tags` (extra tags on the MLflow parent run), `lock_timeout` (seconds to wait for a
DVC lock held by another run), `download_retries` / `retry_backoff` (Prefect retries of the
download task, the only I/O-bound stage).

The flow starts ONE DVC process, `dvc repro dvc.yaml` in the workspace (so dvc.lock and the
cache are the ones `dvc repro` uses) or, with overrides, `dvc exp run --temp`, opens the
MLflow parent run while DVC starts (flows/run.py), and each
stage's task follows that stage's part of its output (flows/follow.py); a stage DVC skips or
restores from its run cache ends in a Completed state named "Skipped"; the download task's
retries run `dvc repro` again (docs/orchestration.md). Flow runs are named after the
label and the start time (`baseline 12-02 20:31Z`). MLflow tags (flows/run.py): `variant` =
the CNN's embedding variant, `overrides` = the overrides, on the parent and stage runs alike.
Output: the summary dict (also printed by the CLI as JSON with --json) and the table
artifact `pipeline-summary`.
"""

from __future__ import annotations

if __name__ == "__main__":
    # The CLI: start the MLflow helper (flows/parent_run.py) before importing Prefect, so
    # MLflow's ~3 s and Prefect's ~1.5 s of imports run on two cores at once.
    from flows.parent_run import ParentRunProcess

    ParentRunProcess.prestart()

import argparse
import contextlib
import gc
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Completed
from prefect.tasks import exponential_backoff

from flows import stages as dvc
from flows.common import summary_markdown
from flows.follow import DvcProcess
from flows.logs import clean, line_level
from flows.overrides import variant_name
from flows.run import PipelineRun

RETRIED_STAGES = {"download"}  # network I/O: worth a retry; a training failure is not


TEMPORARY_SERVER_NOTE = """\
{prog}: PREFECT_API_URL is not set: starting Prefect's temporary server for this run.
  It imports the whole Prefect server and opens its database before the run starts: about
  9 s on 2 idle cores, up to a minute on a busy machine (waits up to {timeout} s), and it
  is gone with its UI when the run ends. To skip the wait, run a server once:
    PREFECT_SERVER_ANALYTICS_ENABLED=false .venv/bin/prefect server start --host 127.0.0.1
    export PREFECT_API_URL=http://127.0.0.1:4200/api
"""


@contextlib.contextmanager
def local_server_settings(prog: str = "flows.pipeline") -> Iterator[None]:
    """For the CLIs: without PREFECT_API_URL Prefect starts a temporary local server per run.
    Say so on stderr (what the CLI waits for, how to run a server instead), keep it offline
    (no analytics) and give it time to start on a busy machine (the default 20 s is not
    always enough on 2 loaded cores). Explicit user settings win."""
    import sys

    from prefect.settings import (
        PREFECT_API_URL,
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
        if not PREFECT_API_URL.value():
            timeout = PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
            print(TEMPORARY_SERVER_NOTE.format(prog=prog, timeout=timeout), end="",
                  file=sys.stderr, flush=True)
        yield


def line_logger(logger: Any) -> dvc.LineSink:
    """Each output line of a DVC or stage process becomes one Prefect log record, at the
    level the line itself states (flows/logs.py: TensorFlow start-up chatter is DEBUG)."""
    def emit(line: str) -> None:
        line = clean(line)
        if line.strip():
            logger.log(line_level(line), line)
    return emit


def stage_state(result: dvc.StageResult) -> Any:
    """The task's return value: the result, in a Completed state named "Skipped" if skipped."""
    if not result.skipped:
        return result.as_dict()
    why = result.detail or ("outputs restored from the DVC run cache" if
                            result.status == "restored" else "dependencies unchanged")
    return Completed(name="Skipped", message=f"{result.stage}: {why}", data=result.as_dict())


@task(cache_policy=NO_CACHE, persist_result=False)
def follow(stage: str, process: DvcProcess) -> Any:
    """One stage of the running DVC process: stream its lines, end when DVC moves on.

    A retry (Prefect retries the download task) finds DVC exited with an error and runs the
    same `dvc repro` again: DVC skips what is done and re-runs the failed stage."""
    if process.failed:
        process.restart()
    return stage_state(process.follow(stage, line_logger(get_run_logger())))


def stage_task(stage: str, experiment: bool, retries: int, backoff: float) -> Any:
    options: dict[str, Any] = {"name": stage, "task_run_name": stage}
    if stage in RETRIED_STAGES and not experiment:
        options.update(retries=retries, retry_delay_seconds=exponential_backoff(backoff))
    return follow.with_options(**options)


def run_name() -> str:
    """The flow run's name: what it runs and when, e.g. `cnn.embedding_init=rand 12-02 20:31Z`
    (`baseline ...` without overrides), instead of Prefect's random adjective-animal."""
    params = flow_run.parameters or {}
    label = params.get("label") or params.get("exp_name") or variant_name(
        params.get("overrides"))
    return f"{label[:80]} {datetime.now(UTC):%m-%d %H:%MZ}"


@flow(name="pipeline", flow_run_name=run_name)
def pipeline(overrides: dict[str, Any] | None = None, root: str = ".",
             label: str | None = None, exp_name: str | None = None,
             mlflow_tags: dict[str, str] | None = None, lock_timeout: float = 3600.0,
             download_retries: int = 2, retry_backoff: float = 10.0) -> dict[str, Any]:
    logger = get_run_logger()
    run = PipelineRun.open(root, overrides, flow_run.id, flow_run.name, exp_name, mlflow_tags,
                           lock_timeout)
    results: dict[str, Any] = {}
    ok = False
    try:
        process = run.start(line_logger(logger))  # DVC first, then the MLflow parent run
        logger.info("stages %s; MLflow parent run %s%s", run.stages, run.parent.run_id,
                    f"; DVC experiment {run.exp_name}" if run.exp_name else "")
        for stage in run.stages:
            task_fn = stage_task(stage, bool(run.exp_name), download_retries, retry_backoff)
            state = task_fn(stage, process, return_state=True)
            results[stage] = state.result()  # raises if the stage failed
        process.wait()
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
    parser.add_argument("--label", default=None,
                        help="flow run name (default: the overrides, or `baseline`)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    try:
        overrides = parse_overrides(args.overrides)
        PipelineRun.validate_only(args.root, overrides)
    except (ParamsError, dvc.StageError) as exc:
        return report_error("pipeline", exc)
    try:
        with local_server_settings():
            summary = pipeline(overrides=overrides, root=args.root, label=args.label,
                               exp_name=args.name)
    except Exception as exc:  # the flow run is Failed; Prefect has logged the traceback
        return report_error("pipeline", exc, 1)
    if args.json:
        print(json.dumps(summary, default=str))
    else:
        for stage, result in summary["stages"].items():
            print(f"{stage:<12} {result['status']:<9} {result['seconds']:>8.1f} s")
        print(f"MLflow parent run {summary['mlflow_run_id']} ({summary['tracking_uri']})")
    # Exit without the interpreter's last full collection over Prefect's and MLflow's ~1M
    # objects: ~1 s of a no-op run on two cores (measured), for memory the OS frees anyway.
    gc.freeze()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
