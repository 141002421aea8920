"""Predict with the cnn stage's saved end-to-end model: raw text in, label out.

    predict(["a gorgeous movie"], model_dir) -> [("pos", 0.9998, "a gorgeous movie")]
    python -m tasks.cnn predict "a gorgeous, witty, seductive movie"   # the CLI, `main` below

The model folder (default `paths.cnn`) holds model.keras and labels.txt.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tasks.core.errors import ParamsError, PipelineError
from tasks.core.params import PARAMS_FILE, load_params
from tasks.core.stage import parse_overrides, report_error, setup_logging


def predict(texts: Sequence[str], model_dir: Path) -> list[tuple[str, float, str]]:
    """(label, probability, text) for each raw text, with the saved end-to-end model."""
    path = model_dir / "model.keras"
    if not path.exists():
        raise PipelineError(f"no trained model at {path} (run `dvc repro cnn` first)")
    import keras
    import tensorflow as tf

    import tasks.classifier.data  # noqa: F401  registers SentenceVectorizer for load_model

    model = keras.models.load_model(path)
    names = (model_dir / "labels.txt").read_text(encoding="utf-8").splitlines()
    rows = []
    for i in range(0, len(texts), 1024):
        chunk = list(texts[i:i + 1024])
        probs = model(tf.constant(chunk, dtype=tf.string), training=False).numpy()  # [b, C]
        rows += [(names[int(p.argmax())], float(p.max()), t) for p, t in zip(probs, chunk,
                                                                               strict=True)]
    return rows


def main(argv: Sequence[str]) -> int:
    """`python -m tasks.cnn predict [TEXT ...]`: label<TAB>probability<TAB>text per input."""
    parser = argparse.ArgumentParser(prog="python -m tasks.cnn predict",
                                     description="label<TAB>probability<TAB>text per input")
    parser.add_argument("texts", nargs="*", help="sentences (default: lines of stdin)")
    parser.add_argument("--params", default=PARAMS_FILE)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--model-dir", help="folder with model.keras (default paths.cnn)")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        model_dir = Path(args.model_dir) if args.model_dir else load_params(
            args.params, parse_overrides(args.overrides)).path("cnn")
        texts = args.texts or [line.rstrip("\n") for line in sys.stdin if line.strip()]
        for label, prob, text in predict(texts, model_dir):
            print(f"{label}\t{prob:.4f}\t{text}")
    except (PipelineError, ParamsError, OSError) as exc:
        return report_error("cnn", exc)
    return 0
