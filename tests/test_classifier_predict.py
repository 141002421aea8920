"""tasks/classifier/predict.py: bad input to `python -m tasks.cnn predict` is one error line.

Issue #12: non-UTF-8 text (argument or stdin) ended in a TensorFlow ValueError, a `.keras`
file with a Lambda layer in a Keras safe-mode traceback, and an empty string predicted
without a word. The model-free checks run before any model is loaded.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np

from tasks.classifier import predict

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: bytes | str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "tasks.cnn", "predict", *args], input=stdin,
                          capture_output=True, cwd=REPO, env=env, timeout=300)


def test_non_utf8_argument_is_one_error_line_in_a_real_process(tmp_path):
    done = run_cli("--model-dir", str(tmp_path), b"caf\xe9")
    assert done.returncode == 2 and done.stdout == b""
    assert done.stderr.decode().strip().splitlines() == [
        "error: cnn: argument 1 is not valid UTF-8 text (byte e9 at offset 3); "
        "re-encode it as UTF-8"]


def test_non_utf8_stdin_line_is_named(tmp_path, monkeypatch, capsys):
    stdin = io.TextIOWrapper(io.BytesIO(b"fine\n\nstill fine\ncaf\xe9 au lait\n"))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert predict.main(["--model-dir", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines() == [
        "error: cnn: stdin line 4 is not valid UTF-8 text (byte e9 at offset 3); "
        "re-encode it as UTF-8"]


def test_empty_text_warns(capsys):
    assert predict.utf8_texts(["good", "", "  "], "argument") == ["good", "", "  "]
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0].startswith("warning: cnn: argument 2 is empty")
    assert err[1].startswith("warning: cnn: argument 3 is empty")


def test_model_with_a_lambda_layer_is_refused_in_one_line(tmp_path, capsys):
    inputs = keras.Input(shape=(3,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2.0)(inputs))
    model.save(tmp_path / "model.keras")
    (tmp_path / "labels.txt").write_text("neg\npos\n")
    assert np.asarray(model(np.ones((1, 3), np.float32))).shape == (1, 3)
    assert predict.main(["--model-dir", str(tmp_path), "a good film"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1, lines
    assert lines[0].startswith(f"error: cnn: {tmp_path / 'model.keras'}: cannot load the model (")
    assert "Lambda" in lines[0] or "safe_mode" in lines[0]


def test_a_model_file_that_is_not_a_keras_archive_is_one_line(tmp_path, capsys):
    (tmp_path / "model.keras").write_bytes(b"not a zip")
    assert predict.main(["--model-dir", str(tmp_path), "text"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cnn: ") and "cannot load" in lines[0]
