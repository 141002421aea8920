"""Stage `mnist` (tasks/mnist.py) on tiny generated IDX files fetched by the real download code.

The fixture mirror (tests/fixtures.py `build_fixtures`) is served from a loopback HTTP server;
`DATA_MIRROR` lists an empty folder first and the server second, so the per-file mirror list
runs too. The download stage fetches the MNIST files `mnist.protocol` names; the mnist stage
reads them with the product's IDX reader, trains both models for a few steps (real
TensorFlow) and writes models, metrics, curves, PNGs, TensorBoard and MLflow records.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml
from fixtures import MNIST_FIXTURE_SIZES, build_fixtures, fixture_registry, serve_directory
from PIL import Image

from tasks import download, mnist
from tasks.core.params import Config, parse
from tasks.core.stage import run_stage

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# A few seconds of CPU: 20 softmax steps, one CNN epoch of a 2/4-filter network.
TINY_MNIST = {"mnist.softmax.steps": 20, "mnist.softmax.eval_every": 10,
              "mnist.softmax.batch_size": 50, "mnist.cnn.filters": [2, 4],
              "mnist.cnn.dense_units": 16, "mnist.cnn.epochs": 1.0,
              "mnist.cnn.batch_size": 50, "mnist.cnn.eval_every": 3,
              "data.corpus": ["abc"], "tracking.enabled": True}


@contextlib.contextmanager
def served_mirror(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    """Fixture mirror on a loopback server; DATA_MIRROR = an empty folder, then the server."""
    files = build_fixtures(tmp / "mirror")
    (tmp / "empty").mkdir()
    with serve_directory(tmp / "mirror") as url:
        registry = fixture_registry(files, url, tmp / "registry.yaml")
        monkeypatch.setenv("DATASET_REGISTRY", str(registry))
        monkeypatch.setenv("DATA_MIRROR", f"{tmp / 'empty'}|{url}")
        yield files


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    with served_mirror(tmp_path, monkeypatch) as files:
        yield files


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, dict, str]:
    """Download + mnist stages run in-process (as stage_main runs them) on the fixtures, once
    for the module (training is the slow part); -> (cfg, metrics, MLflow tracking URI)."""
    tmp = tmp_path_factory.mktemp("mnist")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as monkeypatch, served_mirror(tmp, monkeypatch):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        cfg = parse(yaml.safe_load((REPO / "params.yaml").read_text()), tmp / "project",
                    TINY_MNIST)
        fetched = download.run(cfg)
        assert fetched["mnist_files"] == fetched["mnist_fetched"] == 2
        return cfg, run_stage("mnist", mnist.run, cfg), uri


def test_stage_trains_both_models_and_writes_every_output(trained):
    cfg, metrics, _ = trained
    out, metrics_dir = cfg.path("mnist"), cfg.path("metrics")
    n = 10 * MNIST_FIXTURE_SIZES["t10k"]  # test-split of the tiny t10k set: 0.7 / 0.1 / 0.2
    assert metrics["split"] == {"train": n * 7 // 10, "dev": n // 10, "test": n * 2 // 10}
    assert json.loads((metrics_dir / "mnist.json").read_text()) == metrics
    for name, steps, params in (("softmax", 20, 7850), ("cnn", 6, None)):
        m = metrics[name]
        assert m["steps"] == steps and 0.0 <= m["test_accuracy"] <= 1.0
        assert 0.0 <= m["dev_accuracy"] <= 1.0 and m["test_loss"] > 0
        assert sorted(m["per_class_accuracy"]) == [str(k) for k in range(10)]
        assert params is None or m["params"] == params
        assert (out / f"{name}.keras").is_file()
        curves = json.loads((metrics_dir / f"mnist_{name}_curves.json").read_text())
        assert [p["step"] for p in curves] == ([10, 20] if name == "softmax" else [3, 6])
        assert {"epoch", "train_loss", "train_accuracy", "dev_loss", "dev_accuracy"} <= set(
            curves[0])
        events = list((out / "tensorboard" / name).rglob("events.out.tfevents.*"))
        assert {p.parent.name for p in events} == {"train", "dev"}
    # the synthetic shapes are easy: 20 plain gradient-descent steps already learn them
    assert metrics["softmax"]["test_accuracy"] >= 0.8
    for png in ("softmax_weights", "softmax_confusion", "cnn_confusion",
                "softmax_misclassified", "cnn_misclassified"):
        data = (metrics_dir / f"mnist_{png}.png").read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5000, png
    with Image.open(metrics_dir / "mnist_softmax_weights.png") as image:
        assert image.width > 1.5 * image.height  # ten panels in two rows of five
    saved = json.loads((out / "model.json").read_text())
    assert saved["protocol"] == "test-split" and saved["split"] == metrics["split"]


def test_stage_records_params_curves_pictures_and_models_in_mlflow(trained):
    cfg, metrics, uri = trained
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    (stage_run,) = client.search_runs([experiment.experiment_id],
                                      "tags.stage = 'mnist'")
    assert stage_run.info.run_name == "mnist" and stage_run.data.tags["protocol"] == "test-split"
    assert stage_run.data.params["mnist.softmax.learning_rate"] == "0.003"
    assert stage_run.data.params["split.train"] == str(metrics["split"]["train"])
    history = client.get_metric_history(stage_run.info.run_id, "softmax/dev_accuracy")
    assert [m.step for m in history] == [10, 20]
    assert len(client.get_metric_history(stage_run.info.run_id, "cnn/train_loss")) == 2
    assert stage_run.data.metrics["cnn/test_accuracy"] == pytest.approx(
        metrics["cnn"]["test_accuracy"], abs=1e-6)
    artifacts = {a.path for folder in ("softmax", "cnn")
                 for a in client.list_artifacts(stage_run.info.run_id, folder)}
    assert {"softmax/softmax.keras", "softmax/mnist_softmax_weights.png",
            "cnn/cnn.keras", "cnn/mnist_cnn_misclassified.png",
            "cnn/mnist_cnn_curves.json"} <= artifacts


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "tasks.mnist", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)


def error_lines(done: subprocess.CompletedProcess) -> list[str]:
    """stderr lines of ours (TensorFlow's C++ start-up banner is not: it prints regardless)."""
    return [line for line in done.stderr.splitlines() if line.startswith("error")]


def test_predict_cli_prints_digit_and_probability_and_rejects_bad_files(trained, tmp_path):
    from tasks.digits.predict import load_model, predict_digit

    cfg, _, _ = trained
    digit = np.zeros((56, 56), np.uint8)
    digit[8:48, 24:32] = 255                       # a white bar on black: a "1"-like stroke
    light = tmp_path / "dark-on-light.png"
    Image.fromarray(255 - digit).convert("RGB").save(light)  # RGB, dark ink on paper
    bad = tmp_path / "not-an-image.png"
    bad.write_text("hello")
    params = str(cfg.root / "params.yaml")
    (cfg.root / "params.yaml").write_text((REPO / "params.yaml").read_text())

    done = _cli("predict", str(light), "--model", "softmax", "--params", params, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    path, shown, probability = done.stdout.strip().split("\t")
    expected = predict_digit(load_model(cfg.path("mnist") / "softmax.keras"), light)
    assert (path, int(shown)) == (str(light), expected[0])
    assert float(probability) == pytest.approx(expected[1], abs=1e-4)

    failed = _cli("predict", str(bad), "--params", params, cwd=tmp_path)
    assert failed.returncode == 2 and failed.stdout == ""
    assert error_lines(failed) == [f"error: mnist: {bad}: not a readable image (PNG, JPEG, ...)"]
    nothing = tmp_path / "fresh"  # a checkout whose mnist stage never ran
    nothing.mkdir()
    (nothing / "params.yaml").write_text((REPO / "params.yaml").read_text())
    missing = _cli("predict", str(light), cwd=nothing)
    assert missing.returncode == 2
    assert error_lines(missing) == [
        f"error: mnist: {nothing / 'data' / 'mnist' / 'cnn.keras'}: model file not found"]


def test_stage_without_its_files_or_with_bad_params_fails_in_one_line(tmp_path, capsys):
    project = tmp_path / "project"
    project.mkdir()
    (project / "params.yaml").write_text((REPO / "params.yaml").read_text())
    params = str(project / "params.yaml")
    assert mnist.main(["--params", params, "--set", "tracking.enabled=false"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1] == (f"error: mnist: {project / 'data' / 'mnist_raw'}: missing "
                         f"t10k-images-idx3-ubyte.gz (or t10k-images-idx3-ubyte)")
    assert mnist.main(["--params", params, "--set", "mnist.cnn.filters=[8]"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: params: mnist.cnn.filters: two conv layers, each >= 1 filter, got [8]")
    assert not (project / "metrics").exists() and not (project / "data" / "mnist").exists()


def test_standard_protocol_fetches_and_trains_on_the_training_files(tmp_path, make_cfg, served):
    cfg = make_cfg(root=tmp_path / "project", **{**TINY_MNIST, "tracking.enabled": False,
                                                  "mnist.protocol": "standard"})
    fetched = download.run(cfg)
    assert fetched["mnist_files"] == 4
    assert sorted(p.name for p in cfg.path("mnist_raw").iterdir()) == sorted(
        served[f"mnist-{part}-{kind}"].name for part in ("train", "t10k")
        for kind in ("images", "labels"))
    metrics = mnist.run(cfg)
    train = 10 * MNIST_FIXTURE_SIZES["train"]
    assert metrics["split"] == {"train": train - train // 10, "dev": train // 10,
                                "test": 10 * MNIST_FIXTURE_SIZES["t10k"]}
    assert metrics["protocol"] == "standard"
