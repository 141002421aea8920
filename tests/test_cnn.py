"""The `cnn` stage end to end on tiny data: outputs, MLflow, predict CLI, resume, kfold, DVC."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest
import tensorflow as tf
import yaml
from cnn_fixtures import TINY, write_inputs, write_tsv

from tasks.classifier.model import ARCHITECTURE
from tasks.classifier.report import plot_confusion
from tasks.cnn import main
from tasks.core.params import apply_overrides

REPO = Path(__file__).resolve().parents[1]
SENTENCES = ["a gorgeous, witty, seductive movie", "Awful, dull and BORING!", "zzz qqq xyzzy"]


def project(root: Path, repo_params: dict, **overrides) -> Path:
    """Tiny inputs plus a params.yaml under `root`; returns the params file."""
    write_inputs(root)
    raw = apply_overrides(repo_params, {**TINY, **overrides})
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def stage(params: Path, *sets: str) -> int:
    return main(["--params", str(params), *(a for s in sets for a in ("--set", s))])


def probabilities(model, texts) -> np.ndarray:
    return np.asarray(model.predict(np.array(texts, dtype=object), verbose=0))


def test_stage_saves_end_to_end_model_metrics_and_mlflow_run(tmp_path, repo_params):
    params = project(tmp_path, repo_params, **{"tracking.enabled": True,
                                               "cnn.embedding_init": "non-static"})
    assert stage(params) == 0
    out, metrics_dir = tmp_path / "data/cnn", tmp_path / "metrics"
    metrics = json.loads((metrics_dir / "cnn.json").read_text())
    for key in ("test_accuracy", "test_macro_f1", "dev_accuracy", "best_epoch", "epochs_run",
                "seconds_per_epoch", "embedding_coverage"):
        assert isinstance(metrics[key], int | float), key
    assert metrics["test_accuracy"] >= 0.75  # the planted cue words are easy
    assert np.array(metrics["confusion_matrix"]).sum() == 12
    curves = json.loads((metrics_dir / "cnn_curves.json").read_text())
    assert [r["epoch"] for r in curves] == list(range(1, metrics["epochs_run"] + 1))
    assert set(curves[0]) == {"epoch", "train_loss", "train_accuracy", "dev_loss", "dev_accuracy"}
    assert (metrics_dir / "cnn_confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "labels.txt").read_text() == "neg\npos\n"
    assert list((out / "tensorboard/dev").glob("events.out.tfevents.*"))
    assert json.loads((out / "checkpoints/state.json").read_text())["epoch"] == len(curves)

    # The saved model takes raw strings; its test accuracy is the one reported.
    import tasks.classifier.data  # noqa: F401  registers the vectoriser layer

    model = keras.models.load_model(out / "model.keras")
    test = (tmp_path / "data/prepared/test.tsv").read_text().splitlines()[1:]
    probs = probabilities(model, [r.split("\t")[1] for r in test])
    truth = np.array([r.split("\t")[0] == "pos" for r in test])
    assert np.isclose((probs.argmax(1) == truth).mean(), metrics["test_accuracy"])
    expected = probabilities(model, SENTENCES)
    assert np.allclose(expected.sum(1), 1.0)  # the all-unknown sentence still gets a prediction

    spec = json.loads((out / "model.json").read_text())
    run = mlflow.get_run(spec["mlflow_run_id"])
    assert run.data.tags["variant"] == "non-static"
    assert run.data.tags["comparison"] == spec["comparison"]
    assert run.data.params["cnn.embedding_init"] == "non-static"
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id,
                                                               "epoch/dev_accuracy")
    assert [m.step for m in history] == list(range(1, len(curves) + 1))
    assert [m.value for m in history] == pytest.approx([r["dev_accuracy"] for r in curves])
    artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "cnn")]
    assert "cnn/cnn_confusion.png" in artifacts and "cnn/cnn_curves.json" in artifacts

    [logged] = mlflow.search_logged_models(output_format="list",
                                           experiment_ids=[run.info.experiment_id])
    uri = f"models:/{logged.model_id}"
    reloaded = mlflow.tensorflow.load_model(uri)
    np.testing.assert_allclose(probabilities(reloaded, SENTENCES), expected, rtol=1e-5)
    pyfunc = mlflow.pyfunc.load_model(uri)
    np.testing.assert_allclose(pyfunc.predict(np.array(SENTENCES, dtype=object)), expected,
                               rtol=1e-5)


def test_checkpoints_are_reused_or_discarded_by_fingerprint(tmp_path, repo_params, caplog,
                                                            monkeypatch):
    params = project(tmp_path, repo_params, **{"cnn.epochs": 2})
    caplog.set_level(logging.INFO)
    assert stage(params) == 0
    state = tmp_path / "data/cnn/checkpoints/state.json"
    first = json.loads(state.read_text())
    caplog.clear()
    assert stage(params) == 0  # same params and inputs: finished training is reused
    assert json.loads(state.read_text()) == first
    assert "epoch 1/2" not in caplog.text
    caplog.clear()
    assert stage(params, "cnn.learning_rate=0.02") == 0  # other params: start fresh
    assert "starting fresh" in caplog.text and "epoch 1/2" in caplog.text
    assert json.loads(state.read_text())["fingerprint"] != first["fingerprint"]
    caplog.clear()
    # Another graph (model.ARCHITECTURE bumped), same params: its weights may have the same
    # shapes, but the checkpoint belongs to the old graph and is not resumed.
    monkeypatch.setattr("tasks.classifier.training.ARCHITECTURE", ARCHITECTURE + 1)
    assert stage(params, "cnn.learning_rate=0.02") == 0
    assert "starting fresh" in caplog.text and "epoch 1/2" in caplog.text


@pytest.mark.slow
def test_killed_run_resumes_and_continues_the_epoch_count(tmp_path, repo_params, caplog):
    params = project(tmp_path, repo_params, **{"cnn.epochs": 500, "cnn.patience": 500})
    state = tmp_path / "data/cnn/checkpoints/state.json"
    proc = subprocess.Popen([sys.executable, "-m", "tasks.cnn", "--params", str(params)],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    try:
        while not (state.exists() and json.loads(state.read_text())["epoch"] >= 2):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed = json.loads(state.read_text())
    done = killed["epoch"]
    assert not (tmp_path / "data/cnn/model.keras").exists()  # killed before the end

    caplog.set_level(logging.INFO)
    assert stage(params, f"cnn.epochs={done + 2}") == 0
    assert f"resuming after epoch {done}" in caplog.text
    assert f"epoch {done + 1}/{done + 2}" in caplog.text and f"epoch 1/{done + 2}" not in caplog.text
    resumed = json.loads(state.read_text())
    assert [r["epoch"] for r in resumed["history"]] == list(range(1, done + 3))
    assert resumed["history"][:done] == killed["history"]
    metrics = json.loads((tmp_path / "metrics/cnn.json").read_text())
    assert metrics["epochs_run"] == done + 2


def test_kfold_protocol_reports_mean_std_and_folds(tmp_path, repo_params):
    params = project(tmp_path, repo_params, **{"cnn.protocol": "kfold", "cnn.epochs": 2,
                                               "cnn.embedding_init": "rand"})
    shutil.rmtree(tmp_path / "data/export")  # CNN-rand needs no embeddings
    assert stage(params) == 0
    metrics = json.loads((tmp_path / "metrics/cnn.json").read_text())
    folds = metrics["fold_test_accuracy"]
    assert metrics["folds"] == 3 and len(folds) == 3
    assert metrics["test_accuracy"] == pytest.approx(np.mean(folds), abs=1e-6)
    assert metrics["test_accuracy_std"] == pytest.approx(np.std(folds), abs=1e-6)
    assert np.array(metrics["confusion_matrix"]).sum() == 64  # every example tested once
    assert sorted(p.name for p in (tmp_path / "data/cnn/checkpoints").iterdir()) == [
        "fold-00", "fold-01", "fold-02"]
    assert json.loads((tmp_path / "data/cnn/model.json").read_text())["saved_fold"] == "fold-02"


@pytest.mark.parametrize(("case", "sets", "message"), [
    ("missing embeddings", [], "embeddings.npy: not found"),
    ("wrong dimension", ["cnn.embedding_dims=5"], "cnn.embedding_dims is 5 but"),
    ("one class", [], "the training split has one class ('neg')"),
    ("unseen label", [], "label 'zzz' in the dev split does not occur in the training split"),
    ("empty training", [], "the training split is empty"),
])
def test_bad_inputs_fail_with_one_line_and_no_outputs(tmp_path, repo_params, capsys, case, sets,
                                                      message):
    params = project(tmp_path, repo_params, **{"cnn.embedding_init": "static"})
    prepared = tmp_path / "data/prepared"
    if case == "missing embeddings":
        (tmp_path / "data/export/embeddings.npy").unlink()
    elif case == "one class":
        write_tsv(prepared / "train.tsv", ["label", "text"], [["neg", "bad film"], ["neg", "dull"]])
    elif case == "empty training":
        write_tsv(prepared / "train.tsv", ["label", "text"], [])
    if case == "unseen label":  # a class listed in labels.txt, in dev, but never in training
        (prepared / "labels.txt").write_text("neg\npos\nzzz\n")
        write_tsv(prepared / "train.tsv", ["label", "text"], [["neg", "bad"], ["pos", "good"]])
        write_tsv(prepared / "dev.tsv", ["label", "text"], [["neg", "dull"], ["zzz", "meh"]])
    assert stage(params, *sets) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: cnn: ") and message in err[-1], err
    assert not (tmp_path / "data/cnn/model.keras").exists()
    assert not (tmp_path / "metrics/cnn.json").exists()


@pytest.mark.slow
def test_predict_cli(tmp_path, repo_params, capsys, monkeypatch):
    params = project(tmp_path, repo_params, **{"cnn.epochs": 8})
    assert stage(params) == 0
    result = subprocess.run([sys.executable, "-m", "tasks.cnn", "predict", "--params",
                             str(params), *SENTENCES], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [r[2] for r in rows] == SENTENCES
    assert [r[0] for r in rows[:2]] == ["pos", "neg"] and rows[2][0] in ("neg", "pos")
    assert all(0.5 <= float(r[1]) <= 1.0 for r in rows)

    capsys.readouterr()
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO("great fun\n\nflat , tedious\n"))
    assert main(["predict", "--params", str(params)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["pos", "neg"]  # blank lines skipped

    assert main(["predict", "--params", str(params), "great fun", ""]) == 0   # issue #12
    captured = capsys.readouterr()
    assert [line.split("\t")[0] for line in captured.out.splitlines()][0] == "pos"
    assert len(captured.out.splitlines()) == 2
    assert "warning: cnn: argument 2 is empty" in captured.err

    assert main(["predict", "--model-dir", str(tmp_path / "nowhere"), "text"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cnn: no trained model at ")


def test_dvc_plots_show_renders_the_curves(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(REPO / "dvc.yaml", tmp_path)
    shutil.copy(REPO / "params.yaml", tmp_path)
    dvc = str(Path(sys.executable).parent / "dvc")
    subprocess.run([dvc, "init", "--no-scm", "-q"], check=True)
    (tmp_path / "metrics").mkdir()
    rows = [{"epoch": e, "train_loss": 1 / e, "dev_loss": 1.2 / e, "train_accuracy": 1 - 0.5 / e,
             "dev_accuracy": 0.9 - 0.4 / e} for e in range(1, 5)]
    (tmp_path / "metrics/cnn_curves.json").write_text(json.dumps(rows))
    plot_confusion([[5, 1], [2, 4]], ["neg", "pos"], tmp_path / "metrics/cnn_confusion.png")
    listed = subprocess.run([dvc, "stage", "list"], capture_output=True, text=True, check=True)
    assert any(line.split()[0] == "cnn" for line in listed.stdout.splitlines())
    result = subprocess.run([dvc, "plots", "show", "-o", "html", "cnn_loss", "cnn_accuracy",
                             "metrics/cnn_confusion.png"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "html/index.html").read_text()
    for needle in ("dev_loss", "train_loss", "dev_accuracy", "cnn: loss per epoch", "<img"):
        assert needle in html, needle


def test_tf_string_model_input_accepts_a_column(tmp_path):
    """A [B, 1] column (pandas / MLflow serving) is squeezed to [B] by the vectoriser."""
    from tasks.classifier.data import SentenceVectorizer

    layer = SentenceVectorizer(["<pad>", "<unk>", "good"], max_length=3)
    column = layer(tf.constant([["good good"], ["bad"]]))
    assert column.numpy().tolist() == [[2, 2, 0], [1, 0, 0]]
