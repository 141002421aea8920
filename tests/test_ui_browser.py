"""The UIs show what the flow recorded: headless Chromium on the Prefect and MLflow UIs.

The session's toy pipeline run (real DVC, MLflow, Prefect server; tests/flowtools.py), then
Debian's Chromium driven by playwright-python loads the flow-run page of the Prefect UI
(flow-run name, one task run per stage, the summary artifact) and the MLflow UI (`mlflow ui`
on a free 127.0.0.1 port against that run's SQLite store: the parent run, a nested stage run
with the Prefect flow-run id).
Screenshots go to the test's tmp dir, and also to $UI_SCREENSHOTS_DIR when it is set.

Chromium is a system package (CI: `apt-get install -y chromium`); without it this test fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.flowtools import (
    BIN,
    TOY_STAGES,
    free_port,
    prefect_api_fixture,  # noqa: F401 (the prefect_api fixture)
    stop_process,
    sub_env,
    toy_run_fixture,  # noqa: F401 (the toy_run fixture)
    wait_http,
)

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT = 90_000  # ms; the UIs are single-page apps loading on a busy machine


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's Chromium "
                    "(`apt-get update && apt-get install -y chromium`), as .ci/run does")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def mlflow_ui(toy_run):
    """`mlflow ui` on a free loopback port against the toy run's store."""
    port = free_port()
    log_file = Path(toy_run.mlflow_uri.removeprefix("sqlite:///")).with_suffix(".ui.log")
    log = open(log_file, "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen([str(BIN / "mlflow"), "ui", "--backend-store-uri",
                             toy_run.mlflow_uri, "--host", "127.0.0.1", "--port", str(port)],
                            env=sub_env(), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout=120, proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc, grace=5)  # its graceful shutdown takes ~15 s on a busy box
        log.close()


def _save(page, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("UI_SCREENSHOTS_DIR"):
        target = Path(os.environ["UI_SCREENSHOTS_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target / path.name)


@pytest.mark.slow
def test_prefect_and_mlflow_uis_show_the_run(tmp_path, prefect_api, toy_run, mlflow_ui,
                                             browser):
    summary = toy_run.summary
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(TIMEOUT)

    # Prefect UI: the flow-run page names the run, lists one task run per stage
    page.goto(f"{prefect_api.url}/runs/flow-run/{summary['flow_run_id']}")
    page.get_by_text(summary["flow_run_name"]).first.wait_for()
    page.get_by_text("Completed").first.wait_for()
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(5000)  # the timeline is drawn (WebGL, software) after the data
    _save(page, tmp_path / "prefect-flow-run.png")
    page.get_by_text("Task Runs", exact=True).first.click()
    page.get_by_text(f"{len(TOY_STAGES)} Task runs").first.wait_for()
    for stage in TOY_STAGES:
        page.get_by_text(stage, exact=True).first.wait_for()
    _save(page, tmp_path / "prefect-task-runs.png")
    page.get_by_text("Artifacts", exact=True).first.click()
    page.get_by_text("pipeline-summary", exact=True).first.wait_for()

    # MLflow UI: the experiment's runs list shows the parent run; the stage run page its tags
    experiment_id = _experiment_id(toy_run.mlflow_uri)
    page.goto(f"{mlflow_ui}/#/experiments/{experiment_id}/runs")
    page.get_by_text(f"pipeline-{summary['flow_run_name']}").first.wait_for()
    _save(page, tmp_path / "mlflow-runs.png")
    page.goto(f"{mlflow_ui}/#/experiments/{experiment_id}/runs/{summary['stage_runs']['vocab']}")
    page.get_by_text("vocab").first.wait_for()
    page.get_by_text(summary["flow_run_id"]).first.wait_for()  # tag prefect_flow_run_id
    _save(page, tmp_path / "mlflow-stage-run.png")
    assert (tmp_path / "prefect-flow-run.png").stat().st_size > 10_000


def _experiment_id(uri: str) -> str:
    import mlflow

    return mlflow.MlflowClient(uri).get_experiment_by_name("w2v-cnn").experiment_id
