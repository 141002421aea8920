"""tasks.compare: the four embedding variants side by side."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from cnn_fixtures import TINY, write_inputs

from tasks import cnn, compare
from tasks.classifier.model import VARIANTS
from tasks.core.errors import PipelineError
from tasks.core.stage import run_stage
from tasks.core.tracking import configure

REPO = Path(__file__).resolve().parents[1]


def variant_cfg(make_cfg, variant: str, **extra):
    return make_cfg(**{**TINY, "tracking.enabled": True, "cnn.epochs": 1,
                       "cnn.embedding_init": variant, "paths.cnn": f"data/cnn-{variant}",
                       "paths.metrics": f"metrics/compare/{variant}", **extra})


@pytest.mark.slow
def test_four_variants_compared_in_table_chart_and_mlflow(tmp_path, make_cfg):
    write_inputs(tmp_path)
    for variant in VARIANTS:
        run_stage("cnn", cnn.run, variant_cfg(make_cfg, variant))
    cfg = make_cfg(**{**TINY, "tracking.enabled": True})
    metrics = run_stage("compare", compare.run, cfg)

    assert set(metrics) == {*VARIANTS, "wall_seconds"}
    table = (tmp_path / "metrics/compare.md").read_text().splitlines()
    rows = [line for line in table if line.startswith("| ") and "variant" not in line]
    assert [r.split(" | ")[0].strip("| ") for r in rows] == list(VARIANTS)
    for row, variant in zip(rows, VARIANTS, strict=True):
        assert f"{100 * metrics[variant]['test_accuracy']:.2f}" in row
    assert (tmp_path / "metrics/compare.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "metrics/compare.json").read_text())["rand"] == metrics["rand"]

    configure(cfg)
    runs = mlflow.search_runs(experiment_names=[cfg.tracking.experiment], output_format="list")
    by_stage = {}
    for run in runs:
        by_stage.setdefault(run.data.tags["stage"], []).append(run)
    assert sorted(r.data.tags["variant"] for r in by_stage["cnn"]) == sorted(VARIANTS)
    ids = {r.data.tags["comparison"] for r in runs}
    assert len(ids) == 1 and ids.pop() in "\n".join(table)
    [collector] = by_stage["compare"]
    assert collector.data.metrics["rand.test_accuracy"] == metrics["rand"]["test_accuracy"]


def fake_outputs(cfg, accuracies: dict[str, float], comparison: str = "abc123",
                 kfold: bool = False) -> None:
    """The files the four cnn@variant stages leave, in their formats (cnn.json, model.json)."""
    for variant, acc in accuracies.items():
        model_dir, metrics_dir = compare.variant_paths(cfg, variant)
        model_dir.mkdir(parents=True)
        metrics_dir.mkdir(parents=True)
        metrics = {"test_accuracy": acc, "test_macro_f1": acc, "dev_accuracy": acc + 0.01,
                   "best_epoch": 3, "epochs_run": 6, "seconds_per_epoch": 12.5}
        if kfold:
            metrics.update(folds=10, test_accuracy_std=0.012,
                           fold_test_accuracy=[acc] * 10)
        (metrics_dir / "cnn.json").write_text(json.dumps(metrics))
        spec = {"variant": variant, "comparison": comparison,
                "protocol": "kfold" if kfold else "split"}
        (model_dir / "model.json").write_text(json.dumps(spec))


def test_kfold_comparison_shows_mean_and_std(tmp_path, make_cfg):
    cfg = make_cfg(**{**TINY, "tracking.enabled": False})
    fake_outputs(cfg, dict(zip(VARIANTS, (0.76, 0.80, 0.81, 0.805), strict=True)), kfold=True)
    metrics = compare.run(cfg)
    assert metrics["non-static"] == pytest.approx({"test_accuracy": 0.81, "test_accuracy_std": 0.012,
                                                   "test_macro_f1": 0.81, "dev_accuracy": 0.82})
    text = (tmp_path / "metrics/compare.md").read_text()
    assert "(mean ± std)" in text and "| non-static | 81.00 ± 1.20 |" in text
    assert "Protocol `kfold` (10 folds)" in text and "| 81.5 |" in text  # Kim's MR column
    assert (tmp_path / "metrics/compare.png").stat().st_size > 1000


def test_collector_rejects_missing_or_mismatched_variants(tmp_path, make_cfg):
    cfg = make_cfg(**TINY)
    fake_outputs(cfg, {"rand": 0.7, "static": 0.8, "non-static": 0.8})
    with pytest.raises(PipelineError, match="variant multichannel: .* not found .*"
                                            r"make compare"):
        compare.collect(cfg)
    model_dir, metrics_dir = compare.variant_paths(cfg, "multichannel")
    metrics_dir.mkdir(parents=True)
    model_dir.mkdir(parents=True)
    (metrics_dir / "cnn.json").write_text(json.dumps({"test_accuracy": 0.8}))
    (model_dir / "model.json").write_text(json.dumps({"comparison": "zzz999"}))
    with pytest.raises(PipelineError, match="different data or params .*abc123, zzz999"):
        compare.collect(cfg)
