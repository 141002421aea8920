"""The `pipeline` flow against a real Prefect server, real DVC and a real MLflow store.

- toy project (seconds per stage): one task run per stage named after it, in dvc.yaml order,
  all following one `dvc repro`; stage output streamed into that stage's task logs; download
  retried by Prefect (re-running `dvc repro`); the flow run named after the variant; the
  summary artifact; MLflow parent run with nested stage runs and tags; `dvc status` clean; a second
  run is all "Skipped"; bad overrides fail before any work.
- the REAL project pipeline on loopback fixture data (tests/project_copy.py), tiny params:
  two flow runs started at once both succeed (DVC's locks serialise them), then a third run
  skips every stage.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import mlflow
import pytest

from flows import stages as dvc
from flows.pipeline import pipeline
from tests.flowtools import (
    TOY_STAGES,
    artifacts,
    mlflow_runs,
    prefect_api_fixture,  # noqa: F401 (the prefect_api fixture)
    sub_env,
    task_logs,
    task_runs,
    toy_project,
    toy_run_fixture,  # noqa: F401 (the toy_run fixture)
)


def _dvc_clean(root, env=None) -> bool:
    out = subprocess.run(dvc.dvc_command("status", "dvc.yaml"), cwd=root, env=env or sub_env(),
                         capture_output=True, text=True, check=True).stdout
    return "up to date" in out


@pytest.mark.slow
def test_toy_pipeline_tasks_logs_retries_artifact_mlflow(toy_run):
    root, summary = toy_run.root, toy_run.summary  # its first download attempt failed
    flow_run_id = summary["flow_run_id"]

    runs = task_runs(flow_run_id)
    assert [r.name for r in runs] == TOY_STAGES  # one task run per stage, dvc.yaml order
    assert all(r.state.is_completed() and r.state_name == "Completed" for r in runs)
    download = runs[0]
    assert download.run_count == 2  # Prefect retried the I/O stage once
    assert "prepare: line 1" in task_logs(runs[1].id)  # the stage's own stdout, line by line
    assert any(m.startswith("Running stage 'vocab'") for m in task_logs(runs[2].id))
    assert {s: r["status"] for s, r in summary["stages"].items()} == dict.fromkeys(
        TOY_STAGES, "ran")

    assert not any("prepare" in line for line in task_logs(runs[0].id))  # split per stage
    assert summary["flow_run_name"].startswith("baseline ")  # not a random adjective-animal

    # the summary table: one row per stage metric, the stage named on its first row
    [artifact] = [a for a in artifacts(flow_run_id) if a.key == "pipeline-summary"]
    rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    assert [row["stage"] for row in rows if row["stage"]] == TOY_STAGES
    vocab = {row["metric"]: row for row in rows[[r["stage"] for r in rows].index("vocab"):]}
    assert vocab["lines"]["mlflow_run_id"] == summary["stage_runs"]["vocab"]
    assert vocab["lines"]["value"] == "3" and vocab["min_count"]["value"] == "5"
    assert summary["mlflow_run_id"] in artifact.description

    # MLflow: one parent, each stage nested under it, all carrying the flow run id
    uri = toy_run.mlflow_uri
    parent = mlflow.MlflowClient(uri).get_run(summary["mlflow_run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["prefect_flow_run_id"] == flow_run_id
    assert parent.data.tags["git_commit"] == subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    assert json.loads(parent.data.tags["data_hashes"])["data/c.txt"]  # dvc.lock md5 (vocab)
    assert parent.data.tags["overrides"] == "baseline"
    assert parent.data.metrics["vocab.lines"] == 3
    children = [r for r in mlflow_runs(uri)
                if r.data.tags.get("mlflow.parentRunId") == summary["mlflow_run_id"]
                and r.info.status == "FINISHED"]
    assert sorted(r.data.tags["stage"] for r in children) == sorted(TOY_STAGES)
    assert {r.data.tags["prefect_flow_run_id"] for r in children} == {flow_run_id}
    assert _dvc_clean(root)

    # nothing changed: every task is a Completed state named "Skipped"; no stage run
    again = pipeline(root=str(root))
    skipped = task_runs(again["flow_run_id"])
    assert [(r.name, r.state_name) for r in skipped] == [(s, "Skipped") for s in TOY_STAGES]
    assert again["stage_runs"] == {}
    # and plain DVC agrees: the flow used the same dvc.lock and cache
    out = subprocess.run(dvc.dvc_command("repro"), cwd=root, env=sub_env(), capture_output=True,
                         text=True, check=True).stdout
    assert "Running stage" not in out


def test_bad_overrides_fail_before_any_work(tmp_path, isolated_env, prefect_api):
    root = toy_project(tmp_path / "toy")
    state = pipeline(root=str(root), overrides={"vocab.min_cont": 2}, return_state=True)
    assert state.is_failed()
    assert "vocab.min_cont: unknown key" in state.message
    assert task_runs(str(state.state_details.flow_run_id)) == []
    assert not (root / "dvc.lock").exists()
    assert not (isolated_env / "mlflow.db").exists()


@pytest.mark.slow
def test_real_pipeline_two_concurrent_runs_then_all_skipped(tmp_path, monkeypatch, prefect_api):
    from tests.project_copy import fixture_project

    with fixture_project(tmp_path) as project:
        stages = dvc.stage_names(project.root)
        env = {**project.env, "PREFECT_API_URL": prefect_api.api_url,
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DVC_NO_ANALYTICS": "1"}
        uri = env["MLFLOW_TRACKING_URI"]
        mlflow.MlflowClient(uri).search_experiments()  # create the store once, not racing

        started = time.monotonic()
        procs = [subprocess.Popen([sys.executable, "-m", "flows.pipeline", "--root",
                                   str(project.root), "--json"], env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for _ in range(2)]
        outputs = [proc.communicate(timeout=900) for proc in procs]
        for proc, (_, err) in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, err[-3000:]
        summaries = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
        print(f"two concurrent runs: {time.monotonic() - started:.0f} s")
        for summary in summaries:
            print({s: (r["status"], r["seconds"]) for s, r in summary["stages"].items()})

        for summary in summaries:
            runs = task_runs(summary["flow_run_id"])
            assert [r.name for r in runs] == stages
            assert all(r.state.is_completed() for r in runs)
            assert [a.key for a in artifacts(summary["flow_run_id"])] == ["pipeline-summary"]
        for stage in stages:  # every stage ran in one of the two runs, was skipped in the other
            statuses = sorted(s["stages"][stage]["status"] for s in summaries)
            assert "ran" in statuses or "restored" in statuses, (stage, statuses)
        assert _dvc_clean(project.root, env)
        cnn = json.loads((project.root / "metrics" / "cnn.json").read_text())
        assert 0.0 <= cnn["test_accuracy"] <= 1.0

        # MLflow: every stage run is nested under one of the two parent runs
        parents = {s["mlflow_run_id"]: s["flow_run_id"] for s in summaries}
        stage_runs = [r for r in mlflow_runs(uri) if r.data.tags.get("mlflow.parentRunId")]
        assert {r.data.tags["stage"] for r in stage_runs} == set(stages)
        for run in stage_runs:
            parent = run.data.tags["mlflow.parentRunId"]
            assert run.data.tags["prefect_flow_run_id"] == parents[parent]

        # a third run, in this process: everything skipped, in seconds
        for key in ("DATASET_REGISTRY", "DATA_MIRROR", "MLFLOW_TRACKING_URI", "PYTHONPATH"):
            monkeypatch.setenv(key, project.env[key])
        started = time.monotonic()
        again = pipeline(root=str(project.root))
        print(f"no-op run: {time.monotonic() - started:.1f} s")
        assert {s: r["status"] for s, r in again["stages"].items()} == dict.fromkeys(
            stages, "skipped")
        assert [r.state_name for r in task_runs(again["flow_run_id"])] == ["Skipped"] * len(stages)
        assert again["metrics"]["cnn"]["test_accuracy"] == cnn["test_accuracy"]
