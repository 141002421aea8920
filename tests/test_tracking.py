"""tasks.core.tracking against a real MLflow SQLite store: one run per stage, tags, grouping."""

from __future__ import annotations

import json
import re
import subprocess
import threading
from pathlib import Path

import mlflow
import pytest

from tasks.core import tracking
from tasks.core.stage import run_stage


def _runs(cfg):
    tracking.configure(cfg)
    return mlflow.search_runs(experiment_names=[cfg.tracking.experiment], output_format="list")


def test_stage_run_logs_params_metrics_tags_and_groups(make_cfg, tmp_path, monkeypatch):
    cfg = make_cfg(**{"tracking.experiment": "t-exp"})
    monkeypatch.setenv("PIPELINE_RUN_ID", "group-1")
    monkeypatch.setenv("PREFECT_FLOW_RUN_ID", "flow-123")
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  vocab:\n    outs:\n    - path: data/vocab\n"
        "      md5: abc123.dir\n  prepare:\n    outs:\n    - path: data/prepared\n"
        "      md5: def456.dir\n")

    def fake_vocab(c):
        tracking.log_metrics({"loss": 1.5, "nested": {"x": 1}}, step=0)
        return {"vocab_size": 7}

    metrics = run_stage("vocab", fake_vocab, cfg)
    assert metrics["vocab_size"] == 7
    assert (cfg.path("metrics") / "vocab.json").exists()

    [run] = _runs(cfg)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "vocab"
    assert run.data.tags["stage"] == "vocab"
    assert run.data.tags["pipeline_run"] == "group-1"
    assert run.data.tags["prefect_flow_run_id"] == "flow-123"
    # the data hashes: one JSON tag (sorted by path), not a `data.<path>` row per output
    assert json.loads(run.data.tags["data_hashes"]) == {"data/prepared": "def456.dir",
                                                        "data/vocab": "abc123.dir"}
    assert not [tag for tag in run.data.tags if tag.startswith("data.")]
    [found] = mlflow.search_runs(experiment_names=["t-exp"], output_format="list",
                                 filter_string="tags.data_hashes LIKE '%abc123.dir%'")
    assert found.info.run_id == run.info.run_id  # the filter the docs give
    assert "git_commit" in run.data.tags
    assert run.data.params["vocab.min_count"] == str(cfg.vocab.min_count)
    assert "word2vec.dims" not in run.data.params  # only the stage's own section
    assert run.data.metrics["vocab_size"] == 7
    assert run.data.metrics["loss"] == 1.5


def test_failed_stage_marks_run_failed_and_writes_no_metrics(make_cfg):
    cfg = make_cfg()

    def broken(c):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        run_stage("prepare", broken, cfg)
    assert not (cfg.path("metrics") / "prepare.json").exists()
    [run] = _runs(cfg)
    assert run.info.status == "FAILED"


def test_parent_run_nests_stage_runs(make_cfg, monkeypatch):
    cfg = make_cfg()
    tracking.configure(cfg)
    with mlflow.start_run(run_name="pipeline") as parent:
        parent_id = parent.info.run_id
    monkeypatch.setenv("MLFLOW_PARENT_RUN_ID", parent_id)
    run_stage("vocab", lambda c: {"n": 1}, cfg)
    child = [r for r in _runs(cfg) if r.info.run_name == "vocab"][0]
    assert child.data.tags["mlflow.parentRunId"] == parent_id


def test_tracking_disabled_writes_metrics_only(make_cfg, tmp_path):
    cfg = make_cfg(**{"tracking.enabled": False})
    run_stage("vocab", lambda c: {"n": 1}, cfg)
    assert (cfg.path("metrics") / "vocab.json").exists()
    assert not (tmp_path / "mlflow.db").exists()


def test_default_store_is_sqlite_in_project_root_even_in_dvc_exp_copy(make_cfg, tmp_path,
                                                                       monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    exp_copy = tmp_path / "proj" / ".dvc" / "tmp" / "exps" / "run" / "abc"
    exp_copy.mkdir(parents=True)
    cfg = make_cfg(root=exp_copy)
    assert tracking.tracking_uri(cfg) == f"sqlite:///{tmp_path / 'proj' / 'mlflow.db'}"
    cfg2 = make_cfg(root=tmp_path, **{"tracking.uri": "http://127.0.0.1:5000"})
    assert tracking.tracking_uri(cfg2) == "http://127.0.0.1:5000"


def test_git_tags_read_the_commit(tmp_path: Path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "f").write_text("x")
    env = ["-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", *env, "-C", str(tmp_path), "add", "f"], check=True)
    subprocess.run(["git", *env, "-C", str(tmp_path), "commit", "-qm", "m"], check=True)
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    tags = tracking.git_tags(tmp_path)
    assert tags == {"git_commit": head, "git_dirty": "false"}


def test_safe_key_keeps_plain_keys_and_separates_the_others():
    assert tracking.safe_key("data.custom.mine.files.pos") == "data.custom.mine.files.pos"
    assert tracking.safe_key("fold_1/epoch/dev_accuracy") == "fold_1/epoch/dev_accuracy"
    accents = [tracking.safe_key(s) for s in ("très bien", "trés bien", "tres bien")]
    assert len(set(accents)) == 3 and all(k.startswith("tr") for k in accents)
    for odd in ("\U0001F600", "../up", "a//b", "x" * 300, "", "tab\there"):
        key = tracking.safe_key(odd)
        assert re.fullmatch(r"[A-Za-z0-9_.-]+-[0-9a-f]{8}", key) and ".." not in key, key
        assert key == tracking.safe_key(odd) and len(key) <= 200     # stable, not too long


def test_run_names_tell_variants_and_overrides_apart(make_cfg, monkeypatch):
    """MLflow lists and chart legends show the run name: `cnn` four times told nobody which
    variant was which."""
    monkeypatch.delenv("PIPELINE_OVERRIDES", raising=False)
    assert tracking.stage_run_name(make_cfg(**{"cnn.embedding_init": "rand"}), "cnn") == \
        "cnn-rand"
    assert tracking.stage_run_name(make_cfg(), "vocab") == "vocab"
    adadelta = make_cfg(**{"cnn.embedding_init": "non-static", "cnn.optimizer": "adadelta",
                           "cnn.learning_rate": 1.0})
    assert tracking.stage_run_name(adadelta, "cnn") == "cnn-non-static-adadelta"
    monkeypatch.setenv("PIPELINE_OVERRIDES", "cnn.embedding_init=static")
    assert tracking.stage_run_name(make_cfg(**{"cnn.embedding_init": "static"}), "cnn") == \
        "cnn-static"
    monkeypatch.setenv("PIPELINE_OVERRIDES", "vocab.min_count=3")
    assert tracking.stage_run_name(make_cfg(), "vocab") == "vocab (vocab.min_count=3)"


def test_flow_overrides_go_to_their_own_tag_not_variant(make_cfg, monkeypatch):
    """`variant` means the CNN's embedding variant only (set by the cnn stage)."""
    monkeypatch.setenv("PIPELINE_OVERRIDES", "vocab.min_count=3")
    tags = tracking.run_tags(make_cfg(), "vocab")
    assert tags["overrides"] == "vocab.min_count=3"
    assert "variant" not in tags


def test_parent_run_id_arrives_through_the_handover_file(make_cfg, monkeypatch, tmp_path):
    """The flow starts DVC before its parent run exists: a stage waits for the file."""
    cfg = make_cfg()
    tracking.configure(cfg)
    with mlflow.start_run(run_name="pipeline") as parent:
        parent_id = parent.info.run_id
    handover = tmp_path / "handover" / "parent-run-id"
    handover.parent.mkdir()
    monkeypatch.setenv(tracking.PARENT_FILE_ENV, str(handover))
    writer = threading.Timer(0.3, tracking.publish_parent_run_id, (handover, parent_id))
    writer.start()
    run_stage("vocab", lambda c: {"n": 1}, cfg)
    writer.join()
    child = [r for r in _runs(cfg) if r.info.run_name == "vocab"][0]
    assert child.data.tags["mlflow.parentRunId"] == parent_id


def test_empty_or_missing_handover_means_no_parent(monkeypatch, tmp_path):
    handover = tmp_path / "parent-run-id"
    monkeypatch.setenv(tracking.PARENT_FILE_ENV, str(handover))
    assert tracking.parent_run_id(timeout=0.1) is None            # the flow never wrote it
    tracking.publish_parent_run_id(handover, None)
    assert handover.read_text() == "" and tracking.parent_run_id() is None
    monkeypatch.setenv("MLFLOW_PARENT_RUN_ID", "abc")             # an explicit id wins
    assert tracking.parent_run_id() == "abc"
