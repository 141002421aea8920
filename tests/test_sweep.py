"""The `sweep` flow (one DVC experiment per overrides mapping, a comparison artifact from
MLflow) and `python -m flows.compare` (latest run per variant), on real DVC, MLflow, Prefect.
"""

from __future__ import annotations

import json
import subprocess

import mlflow
import pytest
import yaml

from flows import compare
from flows.sweep import sweep
from tests.flowtools import (
    BIN,
    artifacts,
    mlflow_runs,
    prefect_api_fixture,  # noqa: F401 (the prefect_api fixture)
    sub_env,
    toy_project,
    toy_run_fixture,  # noqa: F401 (the toy_run fixture)
)


@pytest.mark.slow
def test_sweep_runs_each_variant_as_an_experiment_and_compares(toy_run, capsys):
    root = toy_run.root  # stages built: each experiment re-runs only vocab
    params_before = (root / "params.yaml").read_bytes()

    # min_count 99 makes the toy vocab stage fail: the other variant still runs and is compared
    state = sweep(variants=[{"vocab.min_count": 3}, {"vocab.min_count": 99}], root=str(root),
                  metrics=["vocab.min_count", "vocab.lines"], name="toy", return_state=True)
    assert state.is_failed() and "1 of 2 variants failed" in state.message
    sweep_id = str(state.state_details.flow_run_id)

    [artifact] = [a for a in artifacts(sweep_id) if a.key == "sweep-comparison"]
    rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    assert [(r["overrides"], r["status"]) for r in rows] == [
        ("vocab.min_count=3", "FINISHED"), ("vocab.min_count=99", "FAILED")]
    assert rows[0]["vocab.min_count"] == 3.0 and rows[0]["vocab.lines"] == 3.0
    exp_name = rows[0]["dvc_exp_name"]
    assert exp_name.startswith("sweep-min-count-3-")

    listed = subprocess.run([str(BIN / "dvc"), "exp", "list", "--name-only"], cwd=root,
                            env=sub_env(), capture_output=True, text=True, check=True).stdout
    assert exp_name in listed.split()
    assert (root / "params.yaml").read_bytes() == params_before
    parents = [r for r in mlflow_runs(toy_run.mlflow_uri)
               if r.data.tags.get("sweep_id") == sweep_id]
    assert sorted(r.data.tags["overrides"] for r in parents) == [
        "vocab.min_count=3", "vocab.min_count=99"]

    # the CLI on the sweep's parent runs (the failed variant logged no metric)
    assert compare.main(["--metric", "vocab.min_count", "--experiment", "w2v-cnn",
                         "--tracking-uri", toy_run.mlflow_uri,
                         "--filter", f"tags.sweep_id = '{sweep_id}'",
                         "--group-by", "tags.overrides"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["tags.overrides", "metrics.vocab.min_count"]
    assert [line.split()[:2] for line in table[2:]] == [["vocab.min_count=3", "3.0000"]]
    assert exp_name in table[2]


def test_compare_latest_run_per_group(isolated_env, capsys):
    uri = f"sqlite:///{isolated_env / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    exp = client.create_experiment("cmp")

    def run(variant, start, accuracy=None, init=None):
        r = client.create_run(exp, start_time=start, run_name=f"{variant}-{start}",
                              tags={"variant": variant, "dvc_exp_name": f"e-{variant}"})
        if accuracy is not None:
            client.log_metric(r.info.run_id, "test_accuracy", accuracy)
        if init:
            client.log_param(r.info.run_id, "cnn.embedding_init", init)
        client.set_terminated(r.info.run_id)

    run("rand", 1000, 0.61, "rand")
    run("rand", 2000, 0.58, "rand")      # newer: this one is shown
    run("static", 1500, 0.74, "static")
    run("static", 3000)                  # newest, but no metric: ignored
    assert compare.main(["--metric", "test_accuracy", "--experiment", "cmp",
                         "--tracking-uri", uri]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:3] for line in lines[2:]] == [["static", "0.7400", "static-1500"],
                                                        ["rand", "0.5800", "rand-2000"]]
    assert compare.main(["--metric", "test_accuracy", "--experiment", "cmp", "--tracking-uri",
                         uri, "--group-by", "params.cnn.embedding_init"]) == 0
    assert "params.cnn.embedding_init" in capsys.readouterr().out
    assert compare.main(["--metric", "nope", "--experiment", "cmp", "--tracking-uri", uri]) == 1
    assert "no run in experiment 'cmp'" in capsys.readouterr().err


def test_sweep_rejects_a_bad_variant_before_any_work(tmp_path, isolated_env, prefect_api):
    root = toy_project(tmp_path / "toy")
    state = sweep(variants=[{"vocab.min_count": 2}, {"cnn.embedding_init": "glove"}],
                  root=str(root), return_state=True)
    assert state.is_failed() and "cnn.embedding_init" in state.message
    assert not (root / "dvc.lock").exists()
    assert yaml.safe_load((root / "params.yaml").read_text())["vocab"]["min_count"] == 5
