"""PNG figures for the MNIST stage (matplotlib Agg canvas; no pyplot global state).

- `plot_weights(W, path)`: softmax W [784, 10] as ten 28x28 images, "what each class looks
  for" (red = pixels that vote for the class, blue = against; one colour scale for all ten).
- `plot_confusion(confusion, path)`: a [10, 10] count matrix, rows = true, columns = predicted.
- `plot_misclassified(images, labels, predictions, path)`: a grid of wrongly classified test
  digits titled "pred P / true T" (with the probability of P when given).

Each writes a temp file in the target folder and renames it over `path` (os.replace), so a
crash never leaves a half-written PNG. Each returns the path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tasks.core.atomic import atomic_file
from tasks.digits import DigitsError


def _save(fig: Figure, path: Path | str, dpi: int = 100) -> Path:
    """Render `fig` to PNG at `path` atomically (temp file in the same folder + os.replace)."""
    path = Path(path)
    FigureCanvasAgg(fig)  # attach the Agg canvas: no GUI backend involved
    with atomic_file(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=dpi, bbox_inches="tight")
    return path


def plot_weights(weights: np.ndarray, path: Path | str) -> Path:
    """weights float [784, 10] (softmax W) -> PNG with ten 28x28 panels, class 0..9."""
    weights = np.asarray(weights, dtype=np.float32)
    if weights.shape != (784, 10):
        raise DigitsError(f"softmax weights must be [784, 10], got {list(weights.shape)}")
    images = weights.T.reshape(10, 28, 28)                   # [10, 28, 28]
    limit = float(np.abs(images).max()) or 1.0               # symmetric scale around 0
    fig = Figure(figsize=(10, 4.6))
    axes = fig.subplots(2, 5)
    for k, ax in enumerate(axes.flat):
        shown = ax.imshow(images[k], cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(str(k))
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(shown, ax=axes.ravel().tolist(), shrink=0.8, label="weight")
    fig.suptitle("Softmax weights: what each class looks for")
    return _save(fig, path)


def plot_confusion(confusion: np.ndarray, path: Path | str, title: str = "Confusion matrix"
                   ) -> Path:
    """confusion int [k, k] (rows = true class, columns = predicted) -> annotated PNG."""
    confusion = np.asarray(confusion)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise DigitsError(f"confusion matrix must be square, got {list(confusion.shape)}")
    k = confusion.shape[0]
    fig = Figure(figsize=(6.5, 5.5))
    ax = fig.subplots()
    shown = ax.imshow(confusion, cmap="Blues")
    threshold = confusion.max() / 2 if confusion.size else 0
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(int(confusion[i, j])), ha="center", va="center", fontsize=7,
                    color="white" if confusion[i, j] > threshold else "black")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    total = confusion.sum()
    accuracy = np.trace(confusion) / total if total else 0.0
    ax.set_title(f"{title} (accuracy {accuracy:.2%}, n={int(total)})")
    fig.colorbar(shown, ax=ax, shrink=0.8)
    return _save(fig, path)


def plot_misclassified(images: np.ndarray, labels: np.ndarray, predictions: np.ndarray,
                       path: Path | str, probabilities: np.ndarray | None = None,
                       max_images: int = 32, columns: int = 8) -> Path:
    """The first `max_images` misclassified digits as a grid.

    Inputs: images uint8 [n, 28, 28], labels [n], predictions [n], optional probabilities
    [n, 10] (adds the predicted class's probability to each title). Output: the PNG path
    (a figure saying so when nothing is misclassified).
    """
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if not len(images) == len(labels) == len(predictions):
        raise DigitsError(f"{len(images)} images, {len(labels)} labels and "
                          f"{len(predictions)} predictions: counts must agree")
    wrong = np.flatnonzero(labels != predictions)[:max_images]   # int [m]
    rows = max(1, -(-len(wrong) // columns))
    fig = Figure(figsize=(1.4 * columns, 1.6 * rows + 0.6))
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, i in zip(axes, wrong, strict=False):
        ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=255)
        p = f" ({probabilities[i, predictions[i]]:.0%})" if probabilities is not None else ""
        ax.set_title(f"pred {int(predictions[i])}{p}\ntrue {int(labels[i])}", fontsize=8,
                     color="firebrick")
    total = int(np.sum(labels != predictions))
    if total == 0:
        axes[0].text(0, 0.5, "no misclassified digits", fontsize=12)
    fig.suptitle(f"Misclassified: {total} of {len(labels)} (showing {len(wrong)})")
    return _save(fig, path)
