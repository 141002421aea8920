"""flows/run.py: the MLflow parent run of a pipeline run and its stage runs mean the same by
each tag (`variant` = the CNN's embedding variant, `overrides` = the params overrides).

Real MLflow SQLite store, the real `cnn` stage on tiny data (tests/cnn_fixtures.py) run the
way the flow's DVC process runs it (in the environment `PipelineRun` builds, with the
overrides applied); no Prefect and no DVC process are needed for what is checked here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import pytest
import yaml
from cnn_fixtures import TINY, write_inputs

from flows.run import PipelineRun
from tasks.cnn import main as cnn_main
from tasks.core.params import apply_overrides

REPO = Path(__file__).resolve().parents[1]
OVERRIDES = {"cnn.embedding_init": "rand"}


@pytest.fixture
def project(tmp_path: Path, repo_params: dict) -> Path:
    """The real dvc.yaml (its stage list has `cnn`), tiny cnn inputs, baseline `static`."""
    write_inputs(tmp_path)
    raw = apply_overrides(repo_params, {**TINY, "tracking.enabled": True,
                                        "cnn.embedding_init": "static"})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(
        {"schema": "2.0", "stages": {"vocab": {"outs": [{"path": "data/vocab",
                                                         "md5": "abc.dir"}]}}}))
    return tmp_path


def test_variant_filter_finds_the_parent_and_its_cnn_run(project: Path, monkeypatch):
    run = PipelineRun.open(project, OVERRIDES, "flow-1", "toy")
    assert run.env["PIPELINE_OVERRIDES"] == "cnn.embedding_init=rand"
    run.open_parent()  # what start() does once DVC is launched; the stage reads the handover
    for name, value in run.env.items():
        monkeypatch.setenv(name, value)
    assert cnn_main(["--params", str(project / "params.yaml"),
                     "--set", "cnn.embedding_init=rand"]) == 0
    summary = run.close({"cnn": {"status": "ran", "seconds": 1.0}}, ok=True)
    assert (summary["variant"], summary["overrides"]) == ("rand", "cnn.embedding_init=rand")

    mlflow.set_tracking_uri(summary["tracking_uri"])
    experiment = [run.cfg.tracking.experiment]
    parent_id, cnn_id = summary["mlflow_run_id"], summary["stage_runs"]["cnn"]
    # the filters docs/orchestration.md suggests, each finding the parent and its stage run
    for filter_string in ("tags.variant = 'rand'", "tags.overrides = 'cnn.embedding_init=rand'"):
        found = mlflow.search_runs(experiment_names=experiment, output_format="list",
                                   filter_string=filter_string)
        assert {r.info.run_id for r in found} == {parent_id, cnn_id}, filter_string
    [parent] = mlflow.search_runs(experiment_names=experiment, output_format="list",
                                  filter_string="tags.run_kind = 'pipeline'")
    [stage] = mlflow.search_runs(experiment_names=experiment, output_format="list",
                                 filter_string="tags.stage = 'cnn'")
    assert stage.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert stage.info.run_name == "cnn-rand"
    for tag in ("variant", "overrides"):
        assert parent.data.tags[tag] == stage.data.tags[tag], tag
    assert not [tag for tag in parent.data.tags if tag.startswith("data.")]
    assert json.loads(parent.data.tags["data_hashes"]) == {"data/vocab": "abc.dir"}


def test_parent_of_a_pipeline_without_a_cnn_stage_has_no_variant(project: Path):
    (project / "dvc.yaml").write_text(yaml.safe_dump(
        {"stages": {"vocab": {"cmd": "python -m tasks.vocab"}}}))
    run = PipelineRun.open(project, {"vocab.min_count": 3}, "flow-2", "toy")
    run.open_parent()
    summary = run.close({}, ok=False)
    [parent] = mlflow.search_runs(experiment_names=[run.cfg.tracking.experiment],
                                  output_format="list",
                                  filter_string=f"attributes.run_id = '{summary['mlflow_run_id']}'")
    assert parent.data.tags["overrides"] == "vocab.min_count=3"
    assert "variant" not in parent.data.tags
