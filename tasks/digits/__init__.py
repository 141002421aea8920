"""MNIST digits: the workshop's first models (softmax regression and the "Deep MNIST" CNN).

Modules (plain library code; nothing runs on import, no Prefect):
- `idx`: read/write the original IDX files (gzip or plain) with validation;
- `split`: the `test-split` and `standard` protocols (seeded, stratified);
- `models`: `SoftmaxRegression` (tf.Module, W [784, 10], b [10]) and `build_cnn` (Keras 3);
- `train`: training loops reporting curves through `on_eval(step, metrics)`;
- `plots`: softmax weights, confusion matrix, misclassified digits (PNG, written atomically);
- `predict`: load a saved `.keras` model and classify an image file.

Importing this package does not import TensorFlow; only `models`, `train` and `predict` do.
"""

from __future__ import annotations

from tasks.core.errors import PipelineError


class DigitsError(PipelineError, ValueError):
    """An expected failure (bad IDX file, bad image, bad argument) with a one-line message."""


__all__ = ["DigitsError"]
