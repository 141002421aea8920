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

from tasks.core.errors import PipelineError
from tasks.core.params import PARAMS_FILE, load_params
from tasks.core.stage import guarded, parse_overrides, setup_logging


def predict(texts: Sequence[str], model_dir: Path) -> list[tuple[str, float, str]]:
    """(label, probability, text) for each raw text, with the saved end-to-end model."""
    path = model_dir / "model.keras"
    if not path.exists():
        raise PipelineError(f"no trained model at {path} (run `dvc repro cnn` first)")
    import keras
    import tensorflow as tf

    import tasks.classifier.data  # noqa: F401  registers SentenceVectorizer for load_model

    try:
        model = keras.models.load_model(path)   # safe_mode: a Lambda layer is refused
    except (ValueError, TypeError, OSError) as exc:
        reason = " ".join(str(exc).split())[:300]
        raise PipelineError(f"{path}: cannot load the model ({reason})") from None
    names = (model_dir / "labels.txt").read_text(encoding="utf-8").splitlines()
    rows = []
    for i in range(0, len(texts), 1024):
        chunk = list(texts[i:i + 1024])
        probs = model(tf.constant(chunk, dtype=tf.string), training=False).numpy()  # [b, C]
        rows += [(names[int(p.argmax())], float(p.max()), t) for p, t in zip(probs, chunk,
                                                                               strict=True)]
    return rows


def utf8_texts(texts: Sequence[str], source: str) -> list[str]:
    """Refuse text that is not valid UTF-8 (argv undecodable bytes arrive as lone surrogates)
    with one error naming the input; warn about empty ones (they predict the model's prior)."""
    for i, text in enumerate(texts, 1):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = text.encode("utf-8", "surrogateescape")[exc.start:exc.end]
            raise PipelineError(f"{source} {i} is not valid UTF-8 text (byte {bad.hex()} at "
                                f"offset {exc.start}); re-encode it as UTF-8") from None
        if not text.strip():
            print(f"warning: cnn: {source} {i} is empty: its prediction is the model's prior "
                  "on no words", file=sys.stderr)
    return list(texts)


def stdin_lines() -> list[str]:
    """Non-blank stdin lines, decoded strictly as UTF-8 (a bad line is an error naming it)."""
    lines = []
    # the bytes under sys.stdin (a text-only stream, e.g. io.StringIO, is used as it is)
    for number, raw in enumerate(getattr(sys.stdin, "buffer", sys.stdin), 1):
        try:
            line = (raw.decode("utf-8") if isinstance(raw, bytes) else raw).rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise PipelineError(f"stdin line {number} is not valid UTF-8 text (byte "
                                f"{raw[exc.start:exc.end].hex()} at offset {exc.start}); "
                                "re-encode it as UTF-8") from None
        if line.strip():
            lines.append(line)
    return lines


def main(argv: Sequence[str]) -> int:
    """`python -m tasks.cnn predict [TEXT ...]`: label<TAB>probability<TAB>text per input."""
    parser = argparse.ArgumentParser(prog="python -m tasks.cnn predict",
                                     description="label<TAB>probability<TAB>text per input")
    parser.add_argument("texts", nargs="*", help="sentences (default: lines of stdin)")
    parser.add_argument("--params", default=PARAMS_FILE)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--model-dir", help="folder with model.keras (default paths.cnn)")
    parser.add_argument("--verbose", action="store_true", help="traceback of unexpected errors")
    args = parser.parse_args(argv)
    setup_logging()

    def body() -> None:
        model_dir = Path(args.model_dir) if args.model_dir else load_params(
            args.params, parse_overrides(args.overrides)).path("cnn")
        texts = (utf8_texts(args.texts, "argument") if args.texts
                 else utf8_texts(stdin_lines(), "stdin line"))
        for label, prob, text in predict(texts, model_dir):
            print(f"{label}\t{prob:.4f}\t{text}")

    return guarded("cnn", body, args.verbose)
