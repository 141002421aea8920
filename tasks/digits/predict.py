"""Classify a digit in an image file with a saved model (`.keras`, softmax or CNN).

    .venv/bin/python -m tasks.digits.predict MODEL.keras IMAGE [IMAGE ...]

`load_model(path)` -> keras.Model ([n, 28, 28] in [0, 1] -> [n, 10]).
`load_image(path, center=True)` -> float32 [28, 28] in [0, 1], white digit on black (MNIST):
1. decode with Pillow (PNG, JPEG, ...; EXIF rotation applied); palette, alpha (composited
   over white: transparent canvas exports become dark-on-light), 16-bit and RGB images are
   all turned into one 0..255 grayscale array [h, w];
2. invert when the mean border intensity is above mid-grey (dark digit on light paper);
3. pad to a square with the background level (keeps the aspect ratio), then stretch so the
   background (border median) is 0 and the brightest pixel 1;
4. center=True (default): crop to the ink's bounding box, fit it into 20x20 and place it in
   28x28 with its centre of mass in the middle, the way MNIST itself was made (a small digit
   on a big canvas then looks like MNIST); center=False: a plain resize of the square to 28x28.
`predict_digit(model, path)` -> (digit, probability). Missing, unreadable, non-image or empty
files, and non-model files, raise DigitsError with a one-line message.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tasks.core.stage import guarded
from tasks.digits import DigitsError

INK_THRESHOLD = 0.2   # a pixel is ink when brighter than this (after stretching to [0, 1])
BOX = 20              # MNIST fits each digit's bounding box into 20x20 ...
SIZE = 28             # ... then centres it by mass in 28x28


def load_model(path: Path | str) -> keras.Model:
    """A saved `.keras` model taking [n, 28, 28] and giving [n, 10] probabilities."""
    path = Path(path)
    if not path.is_file():
        raise DigitsError(f"{path}: model file not found")
    try:
        model = keras.saving.load_model(path, compile=False)
    except (ValueError, OSError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DigitsError(f"{path}: not a loadable Keras model ({reason[:200]})") from None
    if tuple(model.input_shape[1:]) != (SIZE, SIZE) or tuple(model.output_shape[1:]) != (10,):
        raise DigitsError(f"{path}: model maps {model.input_shape} -> {model.output_shape}, "
                          f"expected (None, 28, 28) -> (None, 10)")
    return model


def _decode(path: Path) -> np.ndarray:
    """Image file -> float32 grayscale [h, w] in 0..255."""
    if not path.is_file():
        raise DigitsError(f"{path}: image file not found")
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
            image.load()
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise DigitsError(f"{path}: not a readable image (PNG, JPEG, ...)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DigitsError(f"{path}: corrupt or truncated image ({exc})") from None
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image.convert("RGBA"))
    if image.mode.startswith("I") or image.mode == "F":  # 16/32-bit grayscale
        raw = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or raw.max() > 255 else 255.0
        gray = raw * (255.0 / top)
    else:
        gray = np.asarray(image.convert("L"), dtype=np.float64)
    if gray.ndim != 2 or gray.size == 0:
        raise DigitsError(f"{path}: image has no pixels")
    return gray.astype(np.float32)


def _border(gray: np.ndarray) -> np.ndarray:
    """The outermost rows and columns of [h, w] as one flat array."""
    return np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])


def _resize(array: np.ndarray, width: int, height: int) -> np.ndarray:
    """float [h, w] in [0, 1] -> float32 [height, width] (Lanczos, antialiased)."""
    image = Image.fromarray(np.ascontiguousarray(array, dtype=np.float32))  # mode "F"
    return np.asarray(image.resize((width, height), Image.Resampling.LANCZOS), np.float32)


def _center(square: np.ndarray) -> np.ndarray:
    """[s, s] in [0, 1] -> [28, 28]: ink box fitted into 20x20, centre of mass in the middle."""
    rows, cols = np.nonzero(square > INK_THRESHOLD)
    if rows.size == 0:  # no ink: nothing to centre
        return _resize(square, SIZE, SIZE)
    box = square[rows.min():rows.max() + 1, cols.min():cols.max() + 1]   # [bh, bw]
    scale = BOX / max(box.shape)
    h, w = max(1, round(box.shape[0] * scale)), max(1, round(box.shape[1] * scale))
    digit = np.clip(_resize(box, w, h), 0, 1)                            # [h, w]
    canvas = np.zeros((SIZE, SIZE), np.float32)
    top, left = (SIZE - h) // 2, (SIZE - w) // 2
    canvas[top:top + h, left:left + w] = digit
    mass = canvas.sum()
    if mass > 0:  # shift so the centre of mass lands on the middle, keeping the box inside
        ys, xs = np.indices(canvas.shape)
        dy = int(round((SIZE - 1) / 2 - (ys * canvas).sum() / mass))
        dx = int(round((SIZE - 1) / 2 - (xs * canvas).sum() / mass))
        dy = int(np.clip(dy, -top, SIZE - top - h))
        dx = int(np.clip(dx, -left, SIZE - left - w))
        canvas = np.roll(canvas, (dy, dx), axis=(0, 1))
    return canvas


def prepare(gray: np.ndarray, center: bool = True) -> np.ndarray:
    """Grayscale [h, w] in 0..255 (any orientation of ink) -> MNIST-like float32 [28, 28]."""
    gray = np.asarray(gray, dtype=np.float32)
    if gray.ndim != 2 or gray.size == 0:
        raise DigitsError(f"expected a grayscale image [h, w], got shape {list(gray.shape)}")
    if _border(gray).mean() > 127.5:  # light background: dark digit on paper
        gray = 255.0 - gray
    background = float(np.median(_border(gray)))
    h, w = gray.shape
    side = max(h, w)
    square = np.full((side, side), background, np.float32)                # [s, s]
    square[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = gray
    span = float(square.max()) - background
    square = np.clip((square - background) / span, 0, 1) if span > 0 else np.zeros_like(square)
    out = _center(square) if center else _resize(square, SIZE, SIZE)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def load_image(path: Path | str, center: bool = True) -> np.ndarray:
    """Image file -> float32 [28, 28] in [0, 1], white digit on black (see module docstring)."""
    return prepare(_decode(Path(path)), center=center)


def predict_array(model: keras.Model, image: np.ndarray) -> tuple[int, float]:
    """model, float [28, 28] in [0, 1] -> (digit 0..9, its probability)."""
    probs = np.asarray(model(image[None].astype(np.float32), training=False))[0]  # [10]
    digit = int(np.argmax(probs))
    return digit, float(probs[digit])


def predict_digit(model: keras.Model, path: Path | str, center: bool = True
                  ) -> tuple[int, float]:
    """model, image file -> (digit 0..9, its probability)."""
    return predict_array(model, load_image(path, center=center))


def cli(argv: list[str], models: Path | str, label: str = "mnist") -> int:
    """`python -m tasks.<label> predict IMAGE [IMAGE ...] [--model cnn|softmax]`.

    Loads `<models>/<model>.keras` (the stage's output) and prints `<image>\t<digit>\t<p>`
    per image; a missing/bad model or image prints one `error: <label>: ...` line, exit 2."""
    import argparse

    parser = argparse.ArgumentParser(prog=f"python -m tasks.{label} predict",
                                     description="classify digit images with a saved model")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("--model", choices=("cnn", "softmax"), default="cnn")
    args = parser.parse_args(argv)
    try:
        model = load_model(Path(models) / f"{args.model}.keras")
        for image in args.images:
            digit, probability = predict_digit(model, image)
            print(f"{image}\t{digit}\t{probability:.4f}")
    except DigitsError as exc:
        print(f"error: {label}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    """CLI: print `<image>\t<digit>\t<probability>` per image; exit 2 on DigitsError."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in args
    args = [a for a in args if a != "--verbose"]
    if len(args) < 2:
        print("usage: python -m tasks.digits.predict MODEL.keras IMAGE [IMAGE ...]",
              file=sys.stderr)
        return 2

    def body() -> None:
        model = load_model(args[0])
        for image in args[1:]:
            digit, probability = predict_digit(model, image)
            print(f"{image}\t{digit}\t{probability:.4f}")

    return guarded("digits", body, verbose)


if __name__ == "__main__":
    sys.exit(main())
