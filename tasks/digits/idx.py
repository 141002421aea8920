"""Read and write the original MNIST IDX files (gzip-compressed or plain).

IDX layout (big-endian): two zero bytes, a type byte (0x08 = unsigned byte), a byte with the
number of dimensions d, then d int32 sizes, then the data. MNIST uses two kinds:
- images: magic 2051 (0x00000803), sizes [n, 28, 28], one byte per pixel (0 = background);
- labels: magic 2049 (0x00000801), sizes [n], one byte per label in 0..9.

`load_mnist(images_path, labels_path)` -> (images uint8 [n, 28, 28], labels uint8 [n]).
Every problem (missing, not gzip although named .gz, truncated, wrong magic, wrong size,
label out of range, counts disagree) raises `DigitsError` with a one-line message.
`write_idx(path, array)` writes any uint8 array (gzip when the name ends in .gz); tests use
it to build tiny fixture files so the real reader runs on them.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from tasks.core.atomic import atomic_file
from tasks.digits import DigitsError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
UBYTE = 0x08
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
GZIP_MAGIC = b"\x1f\x8b"

# The four files of the original distribution; a mirror may hold them gzipped or plain.
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "t10k": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when it starts with the gzip magic bytes."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DigitsError(f"{path}: file not found") from None
    except OSError as exc:
        raise DigitsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if raw[:2] != GZIP_MAGIC:
        if path.suffix == ".gz":
            raise DigitsError(f"{path}: named .gz but is not gzip-compressed")
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DigitsError(f"{path}: corrupt or truncated gzip data ({exc})") from None


def read_idx(path: Path | str, expect: tuple[int, str] | None = None) -> tuple[int, np.ndarray]:
    """Parse one IDX file of unsigned bytes.

    Input: path to an IDX file (gzip or plain); `expect` = (magic, kind) checks the magic
    number before anything else. Output: (magic number, uint8 array whose shape is the
    header's sizes). Raises DigitsError when the magic is not the expected one, the header is
    malformed or the data size does not match the header exactly (truncated or trailing bytes).
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DigitsError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    magic = int.from_bytes(data[:4], "big")
    if expect is not None and magic != expect[0]:
        raise DigitsError(f"{path}: magic number {magic}, expected {expect[0]} ({expect[1]})")
    zeros, dtype, ndim = data[:2], data[2], data[3]
    if zeros != b"\0\0" or dtype != UBYTE or ndim == 0:
        raise DigitsError(f"{path}: not an unsigned-byte IDX file (magic {magic:#010x})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DigitsError(f"{path}: truncated IDX header ({len(data)} of {header} bytes)")
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(dims)  # Python ints: no overflow on forged headers
    found = len(data) - header
    if found != expected:
        what = "truncated" if found < expected else "has trailing bytes"
        raise DigitsError(f"{path}: {what}: header {list(dims)} needs {expected} data bytes, "
                          f"file has {found}")
    array = np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)
    return magic, array.copy()  # own, writable memory (frombuffer views are read-only)


def read_images(path: Path | str, shape: tuple[int, int] = IMAGE_SHAPE) -> np.ndarray:
    """Images file -> uint8 [n, rows, cols] (MNIST: rows = cols = 28, 0 = background)."""
    _, images = read_idx(path, expect=(IMAGES_MAGIC, "IDX images"))
    if images.ndim != 3 or images.shape[1:] != tuple(shape):
        raise DigitsError(f"{path}: image dimensions {list(images.shape)}, "
                          f"expected [n, {shape[0]}, {shape[1]}]")
    return images


def read_labels(path: Path | str) -> np.ndarray:
    """Labels file -> uint8 [n] with every value in 0..9."""
    _, labels = read_idx(path, expect=(LABELS_MAGIC, "IDX labels"))
    if labels.size and int(labels.max()) >= NUM_CLASSES:
        bad = int(np.argmax(labels >= NUM_CLASSES))
        raise DigitsError(f"{path}: label {int(labels[bad])} at index {bad} is outside 0..9")
    return labels


def load_mnist(images_path: Path | str, labels_path: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """A matching pair of files -> (images uint8 [n, 28, 28], labels uint8 [n])."""
    images = read_images(images_path)
    labels = read_labels(labels_path)
    if len(images) != len(labels):
        raise DigitsError(f"{images_path}: {len(images)} images but {labels_path} has "
                          f"{len(labels)} labels")
    if len(images) == 0:
        raise DigitsError(f"{images_path}: holds no images")
    return images, labels


def find_pair(folder: Path | str, part: str = "t10k") -> tuple[Path, Path]:
    """Paths of the images and labels files of `part` ("train" or "t10k") in `folder`.

    Each file may be stored gzipped (`<name>.gz`, preferred) or plain (`<name>`).
    """
    if part not in FILES:
        raise DigitsError(f"unknown MNIST part {part!r}; expected one of {sorted(FILES)}")
    folder = Path(folder)
    found = []
    for name in FILES[part]:
        candidates = [folder / f"{name}.gz", folder / name]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise DigitsError(f"{folder}: missing {name}.gz (or {name})")
        found.append(path)
    return found[0], found[1]


def load_part(folder: Path | str, part: str = "t10k") -> tuple[np.ndarray, np.ndarray]:
    """`find_pair` + `load_mnist`: (images uint8 [n, 28, 28], labels uint8 [n])."""
    return load_mnist(*find_pair(folder, part))


def write_idx(path: Path | str, array: np.ndarray, magic: int | None = None) -> Path:
    """Write a uint8 array as an IDX file (gzip when `path` ends in .gz), atomically.

    Input: array of any shape with 1..255 dimensions (values must fit in uint8); `magic`
    overrides the header's magic number (tests use it to forge bad files). Output: the path.
    """
    path = Path(path)
    array = np.asarray(array)
    if array.ndim < 1 or array.ndim > 255:
        raise DigitsError(f"IDX arrays need 1..255 dimensions, got {array.ndim}")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise DigitsError("IDX unsigned-byte data must lie in 0..255")
    magic = (UBYTE << 8 | array.ndim) if magic is None else magic
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes(order="C")
    if path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)  # mtime 0: same bytes on every run
    with atomic_file(path, "wb") as handle:
        handle.write(payload)
    return path
