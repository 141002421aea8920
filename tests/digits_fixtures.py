"""Synthetic digit-like data for the `tasks.digits` tests.

`synthetic_digits(per_class, seed)` draws ten distinct white-on-black 28x28 shapes (one per
class: ring, bar, cross, diagonals, ...) with random shifts of up to 2 pixels, stroke
brightness 170..255 and faint noise, so a linear model can learn them but not trivially.
`write_mnist(folder, images, labels, part)` writes them as real (gzip) IDX files under the
original MNIST names, so the product's reader runs on them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks.digits.idx import FILES, write_idx


def _shape(k: int) -> np.ndarray:
    """Class k's template: float [28, 28] with 1 on the stroke, 0 elsewhere."""
    img = np.zeros((28, 28), np.float32)
    yy, xx = np.mgrid[:28, :28]
    r = np.hypot(yy - 13.5, xx - 13.5)
    if k == 0:
        img[(r > 7) & (r < 10)] = 1                          # ring
    elif k == 1:
        img[5:23, 12:16] = 1                                 # vertical bar
    elif k == 2:
        img[12:16, 5:23] = 1                                 # horizontal bar
    elif k == 3:
        img[np.abs(yy - xx) < 2] = 1                         # diagonal "\"
        img[:4], img[-4:] = 0, 0
    elif k == 4:
        img[np.abs(yy + xx - 27) < 2] = 1                    # diagonal "/"
        img[:4], img[-4:] = 0, 0
    elif k == 5:
        img[5:9, 5:23] = 1                                   # "7": top bar + right side
        img[5:23, 19:23] = 1
    elif k == 6:
        img[9:19, 9:19] = 1                                  # filled block
    elif k == 7:
        img[5:23, 5:9] = 1                                   # "L": left side + bottom bar
        img[19:23, 5:23] = 1
    elif k == 8:
        r_top = np.hypot(yy - 8.5, xx - 13.5)                # "8": two small rings
        r_bottom = np.hypot(yy - 19.5, xx - 13.5)
        img[((r_top > 3) & (r_top < 5.5)) | ((r_bottom > 3) & (r_bottom < 5.5))] = 1
    elif k == 9:
        img[4:8, 4:24], img[20:24, 4:24] = 1, 1              # "=": top and bottom bars
    return img


TEMPLATES = np.stack([_shape(k) for k in range(10)])  # float [10, 28, 28]


def synthetic_digits(per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """-> (images uint8 [10 * per_class, 28, 28], labels uint8 [10 * per_class]), shuffled."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10, dtype=np.uint8), per_class)
    rng.shuffle(labels)
    images = np.empty((len(labels), 28, 28), np.uint8)
    for i, k in enumerate(labels):
        dy, dx = rng.integers(-2, 3, size=2)
        stroke = np.roll(TEMPLATES[k], (dy, dx), axis=(0, 1)) * rng.uniform(170, 255)
        noise = rng.uniform(0, 30, size=(28, 28)) * (rng.random((28, 28)) < 0.05)
        images[i] = np.clip(stroke + noise, 0, 255).astype(np.uint8)
    return images, labels


def write_mnist(folder: Path, images: np.ndarray, labels: np.ndarray, part: str = "t10k",
                gz: bool = True) -> tuple[Path, Path]:
    """Write images/labels as `<part>-images-idx3-ubyte[.gz]` and `<part>-labels-idx1-ubyte[.gz]`."""
    suffix = ".gz" if gz else ""
    names = FILES[part]
    return (write_idx(folder / f"{names[0]}{suffix}", images),
            write_idx(folder / f"{names[1]}{suffix}", labels))
