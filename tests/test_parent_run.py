"""flows/parent_run.py: the pipeline's MLflow parent run, kept by a helper process.

Real helper processes (`python -m flows.parent_run`) against the test's own MLflow SQLite
store (conftest's MLFLOW_TRACKING_URI, inherited by the helper); no Prefect.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import mlflow
import pytest
import yaml

from flows.parent_run import ParentRun, ParentRunProcess, open_parent_run
from tasks.core.params import apply_overrides, load_params

OVERRIDES = {"cnn.embedding_init": "rand"}


@pytest.fixture
def project(tmp_path: Path, repo_params: dict) -> Path:
    raw = apply_overrides(repo_params, {"tracking.enabled": True,
                                        "tracking.experiment": "parent-run-test"})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return tmp_path


def load(project: Path):
    return load_params(project / "params.yaml", OVERRIDES)


def fetch(run_id: str):
    return mlflow.MlflowClient().get_run(run_id)


def test_helper_opens_and_finishes_the_run_with_tags_params_and_metrics(project: Path):
    cfg = load(project)
    parent = ParentRunProcess(cfg, "pipeline-toy", {"variant": "rand", "empty": ""},
                              params=OVERRIDES, overrides=OVERRIDES)
    assert parent.process is not None and parent.process.poll() is None
    assert parent.env() == {"MLFLOW_PARENT_RUN_ID": parent.run_id}
    run = fetch(parent.run_id)
    assert run.info.status == "RUNNING"
    assert run.info.run_name == "pipeline-toy"
    assert run.data.tags["variant"] == "rand" and "empty" not in run.data.tags
    assert run.data.tags["run_kind"] == "pipeline"
    assert run.data.params == {"cnn.embedding_init": "rand"}
    assert mlflow.get_experiment(parent.experiment_id).name == "parent-run-test"

    # a stage run nested under it, as tasks.core.tracking would make one
    child = mlflow.MlflowClient().create_run(
        parent.experiment_id, tags={"mlflow.parentRunId": parent.run_id, "stage": "vocab"})
    parent.finish(True, {"stage_status.vocab": "ran"},
                  {"vocab": {"vocab_size": 1234, "note": "not a number", "flag": True}})
    assert parent.process.returncode == 0  # the helper exits once the run is finished
    run = fetch(parent.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics == {"vocab.vocab_size": 1234.0}
    assert run.data.tags["stage_status.vocab"] == "ran"
    assert parent.children() == {"vocab": child.info.run_id}


def test_a_flow_process_that_goes_away_leaves_the_run_failed_not_running(project: Path):
    parent = ParentRunProcess(load(project), "pipeline-crash", {}, overrides=OVERRIDES)
    parent.process.stdin.close()  # what the OS does when the flow process dies
    assert parent.process.wait(timeout=60) == 0
    run = fetch(parent.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["parent_run_end"] == "flow process exited without finishing"


def test_ctrl_c_of_the_process_group_does_not_stop_the_helper(project: Path):
    """A terminal's Ctrl-C reaches every process of the group: the flow handles it and
    finishes the run through the helper, which must still be there."""
    parent = ParentRunProcess(load(project), "pipeline-interrupted", {}, overrides=OVERRIDES)
    for sig in (signal.SIGINT, signal.SIGTERM):
        os.kill(parent.process.pid, sig)
    time.sleep(0.5)
    assert parent.process.poll() is None
    parent.finish(False, {"stage_status.download": "failed"})
    assert fetch(parent.run_id).info.status == "FAILED"


def test_an_unusable_store_fails_in_one_line_and_the_helper_exits(project: Path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "notascheme://nowhere")
    with pytest.raises(RuntimeError, match=r"^MLflow parent run: \w+"):
        ParentRunProcess(load(project), "pipeline-nowhere", {}, overrides=OVERRIDES)


def test_tracking_disabled_opens_nothing_and_closes_a_prestarted_helper(project: Path):
    ParentRunProcess.prestart()
    helper = ParentRunProcess._prestarted
    cfg = load_params(project / "params.yaml", {**OVERRIDES, "tracking.enabled": False})
    parent = ParentRunProcess(cfg, "off", {})
    assert (parent.run_id, parent.env(), parent.children()) == (None, {}, {})
    assert ParentRunProcess._prestarted is None
    assert helper.wait(timeout=60) == 0  # its input closed: it exits without a run
    parent.finish(True)  # nothing to finish: no error


def test_open_parent_run_uses_a_prestarted_helper_else_mlflow_in_this_process(project: Path):
    cfg = load(project)
    here = open_parent_run(cfg, "in-process", {}, overrides=OVERRIDES)  # mlflow is loaded
    assert isinstance(here, ParentRun)
    here.finish(True)
    ParentRunProcess.prestart()
    helper = ParentRunProcess._prestarted
    kept = open_parent_run(cfg, "by-helper", {}, overrides=OVERRIDES)
    assert isinstance(kept, ParentRunProcess) and kept.process is helper
    kept.finish(True)
    assert {fetch(r.run_id).info.status for r in (here, kept)} == {"FINISHED"}
