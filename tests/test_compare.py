"""tasks.compare and tasks.classifier.comparison(_report): paired runs of every arm, the
table with intervals, the per-run chart, the MLflow parent run and its child runs."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import yaml
from cnn_fixtures import TINY, write_inputs

from tasks import compare
from tasks.classifier import comparison
from tasks.classifier.stats import paired_difference, summarise
from tasks.core.errors import PipelineError
from tasks.core.params import apply_overrides

ARMS = list(comparison.arms())


def project(root: Path, repo_params: dict, **overrides) -> Path:
    write_inputs(root)
    raw = apply_overrides(repo_params, {**TINY, "cnn.patience": 1, **overrides})
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.slow
def test_make_compare_trains_paired_runs_under_one_parent_run(tmp_path, repo_params):
    params = project(tmp_path, repo_params, **{"tracking.enabled": True, "cnn.epochs": 3})
    # One seed keeps this at five trainings; the interval arithmetic is tested on fake runs.
    assert compare.main(["--params", str(params), "--train", "--seeds", "1"]) == 0

    report = json.loads((tmp_path / "metrics/compare.json").read_text())
    assert report["runs_per_arm"] == 1 and report["protocol"] == "split"
    assert len(report["runs"]) == len(ARMS)
    seeds = sorted({r["seed"] for r in report["runs"]})
    assert seeds == [repo_params["seed"]]
    assert report["arms"]["static"]["accuracy_minus_rand"]["low"] is None  # no interval of 1
    for arm in ARMS:  # the table's figures are the statistics of the runs it lists
        runs = [r for r in report["runs"] if r["arm"] == arm]
        assert report["arms"][arm]["accuracy"]["mean"] == pytest.approx(
            summarise([r["test_accuracy"] for r in runs]).mean)
    table = (tmp_path / "metrics/compare.md").read_text()
    for arm in ARMS:
        assert f"| {arm} | " in table
    assert "non-static - rand" in table and "Student t" in table and "n/a (1 run)" in table
    assert (tmp_path / "metrics/compare.png").read_bytes()[:4] == b"\x89PNG"

    client = mlflow.MlflowClient()
    runs = mlflow.search_runs(experiment_names=[repo_params["tracking"]["experiment"]],
                              output_format="list")
    [parent] = [r for r in runs if r.data.tags["stage"] == "compare"]
    children = [r for r in runs if r.data.tags["stage"] == "cnn"]
    assert len(children) == len(ARMS)
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert sorted({(r.data.params["seed"], r.data.params["cnn.fold"]) for r in children}) == [
        (str(s), "-1") for s in seeds]
    assert {r.data.params["cnn.optimizer"] for r in children} == {"adam", "adadelta"}
    assert {r.data.tags["comparison"] for r in [parent, *children]} == {report["comparison"]}
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "compare")}
    assert logged == {"compare/compare.md", "compare/compare.png", "compare/compare.json"}
    assert parent.data.metrics["non-static.minus_rand_mean"] == pytest.approx(
        report["arms"]["non-static"]["accuracy_minus_rand"]["mean"])


def fake_runs(cfg, dataset: str, plan, accuracy, comparison_id: str = "abc123",
              epochs_run: int = 6, skip=()) -> None:
    """The files `python -m tasks.cnn` leaves for each run (cnn.json, model.json)."""
    for arm in ARMS:
        for seed, fold in plan.keys:
            if (arm, seed, fold) in skip:
                continue
            folder = comparison.run_folder(cfg, dataset, arm, seed, fold)
            (folder / "metrics").mkdir(parents=True)
            (folder / "model").mkdir(parents=True)
            acc = accuracy(arm, seed, fold)
            (folder / "metrics/cnn.json").write_text(json.dumps({
                "test_accuracy": acc, "test_macro_f1": acc - 0.01, "dev_accuracy": acc,
                "best_epoch": 3, "epochs_run": epochs_run, "seconds_per_epoch": 2.0}))
            (folder / "model/model.json").write_text(json.dumps(
                {"comparison": comparison_id, "mlflow_run_id": f"{arm}-{seed}-{fold}"}))


EFFECT = {"rand": 0.0, "static": 0.02, "non-static": 0.04, "multichannel": 0.0,
          comparison.ADADELTA: 0.03}


def accuracy(arm: str, seed: int, fold: int) -> float:
    # Folds differ a lot (shared by all arms); the arm effect wobbles a little per seed.
    return (0.70 + 0.03 * (fold % 3) + EFFECT[arm]
            + 0.002 * ((seed * 7 + fold * 3 + len(arm)) % 5 - 2))


def test_full_protocol_table_pairs_folds_and_flags_intervals(tmp_path, make_cfg):
    cfg = make_cfg(**{**TINY, "prepare.folds": 4, "cnn.epochs": 6, "cnn.patience": 4})
    plan = comparison.plan(cfg, full=True)
    assert plan.protocol == "kfold" and plan.folds == (0, 1, 2, 3) and len(plan.seeds) == 1
    sets = comparison.run_overrides(cfg, plan, "sentence_polarity", comparison.ADADELTA, 0, 2)
    assert {"cnn.fold=2", "cnn.protocol=kfold", "cnn.optimizer=adadelta"} <= set(sets)
    fake_runs(cfg, cfg.data.labelled, plan, accuracy)
    metrics = compare.run(cfg, compare.Options(full=True))

    # Kim's protocol has its own files: the default protocol's table is never overwritten.
    assert not (tmp_path / "metrics/compare.json").exists()
    report = json.loads((tmp_path / "metrics/compare-kfold.json").read_text())
    seed = plan.seeds[0]
    rand = [accuracy("rand", seed, f) for f in plan.folds]
    shown = {}
    for arm in ARMS[1:]:
        mine = [accuracy(arm, seed, f) for f in plan.folds]
        expected = paired_difference(mine, rand)
        got = report["arms"][arm]["accuracy_minus_rand"]
        assert (got["mean"], got["low"], got["high"]) == pytest.approx(
            (expected.mean, expected.low, expected.high))
        assert metrics[arm]["minus_rand_low"] == pytest.approx(expected.low)
        shown[arm] = f"| {arm} - rand | {100 * expected.mean:+.2f} | "
        assert expected.excludes_zero == (arm in ("static", "non-static", comparison.ADADELTA))
    table = (tmp_path / "metrics/compare-kfold.md").read_text()
    # Fold-to-fold spread is large, yet pairing exposes the +4 point effect.
    lines = {arm: next(x for x in table.splitlines() if x.startswith(shown[arm]))
             for arm in shown}
    assert lines["non-static"].count("| yes |") == 2  # accuracy and macro F1
    assert lines["multichannel"].count("| no |") == 2
    assert "4-fold cross-validation" in table
    assert "the cap ended 20 of 20 runs" in table  # 6 epochs = cnn.epochs, 3 since the best < patience


def test_collector_keeps_complete_pairs_and_rejects_mixed_runs(tmp_path, make_cfg):
    cfg = make_cfg(**TINY)
    plan = comparison.plan(cfg, seeds=3)
    seeds = plan.seeds
    fake_runs(cfg, "sentence_polarity", plan, accuracy, skip={("static", seeds[2], -1)},
              epochs_run=2)
    records = comparison.collect(cfg, plan, "sentence_polarity")
    assert {r["seed"] for r in records} == set(seeds[:2])  # seed 3 lacks one arm: unpaired
    compare.run(cfg, compare.Options(seeds=3))
    table = (tmp_path / "metrics/compare.md").read_text()
    assert "3 runs per arm planned, 2 finished for every arm" in table
    assert "the cap ended 0 of 10 runs" in table  # patience ended them (epochs_run < cap)

    other = comparison.run_folder(cfg, "sentence_polarity", "static", seeds[2], -1)
    (other / "metrics").mkdir(parents=True)
    (other / "model").mkdir(parents=True)
    (other / "metrics/cnn.json").write_text((comparison.run_folder(
        cfg, "sentence_polarity", "rand", seeds[2], -1) / "metrics/cnn.json").read_text())
    (other / "model/model.json").write_text(json.dumps({"comparison": "zzz999"}))
    with pytest.raises(PipelineError, match="different data or params .*abc123, zzz999"):
        comparison.collect(cfg, plan, "sentence_polarity")
    with pytest.raises(PipelineError, match="no .seed, fold. has finished .*make compare"):
        comparison.collect(cfg, plan, "my_reviews")


def test_other_dataset_writes_its_own_files_and_unknown_names_fail(tmp_path, make_cfg,
                                                                 repo_params, capsys):
    cfg = make_cfg(**{**TINY, "data.custom": {"my_reviews": {
        "format": "csv", "file": "data/custom/r.csv"}}})
    plan = comparison.plan(cfg, seeds=2)
    fake_runs(cfg, "my_reviews", plan, accuracy)
    compare.run(cfg, compare.Options(dataset="my_reviews", seeds=2))
    assert (tmp_path / "metrics/compare-my_reviews.md").exists()
    assert (tmp_path / "metrics/compare-my_reviews.png").exists()
    assert json.loads((tmp_path / "metrics/compare-my_reviews.json").read_text())[
        "dataset"] == "my_reviews"
    assert not (tmp_path / "metrics/compare.md").exists()
    params = project(tmp_path, repo_params)
    assert compare.main(["--params", str(params), "--dataset", "nosuch"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: compare: --dataset nosuch: neither a registry name nor a data.custom key")
