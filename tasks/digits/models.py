"""The workshop's two MNIST models, in TensorFlow 2 / Keras 3.

Both take the same input: float32 [n, 28, 28] images scaled to [0, 1] (`to_inputs`), white
digit on black like MNIST, and give probabilities [n, 10].

- `SoftmaxRegression`: the "TensorFlow and deep learning without a PhD" model 1.0, written as
  the workshop writes it: variables W [784, 10] and b [10] initialised to zeros,
  Y = softmax(X W + b) on flattened images, cross-entropy loss, plain gradient descent (the
  update is hand-written in `tasks.digits.train`). `softmax_to_keras` copies W and b into an
  equivalent Keras model (Flatten + Dense(10, softmax)) so both models are saved, reloaded and
  served the same way (`.keras` files, `save_keras`).
- `build_cnn`: "Deep MNIST for experts": conv 5x5x32 + ReLU + 2x2 max-pool, conv 5x5x64 +
  ReLU + 2x2 max-pool, dense 1024 + ReLU, dropout, dense 10 softmax ('same' padding, so
  28 -> 14 -> 7). Filters and dense units are arguments so the stage can trade size for time;
  the defaults (16, 32) filters and 512 units are half the tutorial's widths (see build_cnn).

Loss (`cross_entropy`): the workshop's first version is
`-tf.reduce_sum(Y_ * tf.log(Y))` with learning rate 0.003 and batches of 100, i.e. the
cross-entropy SUMMED over the batch (its later "mean * 1000" form is the same thing for batches
of 100). reduction="sum" reproduces that; "mean" divides the gradient by the batch size, so
lr 0.003 then learns 100x slower (see benchmarks/mnist_targets.py). It is computed from the
logits (`sparse_softmax_cross_entropy_with_logits`): the same value as -sum(Y_ log Y), without
the log(0) = NaN the workshop warns about.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tasks.core.atomic import atomic_path
from tasks.digits import DigitsError

PIXELS = 28 * 28
NUM_CLASSES = 10
REDUCTIONS = ("sum", "mean")


def to_inputs(images: np.ndarray) -> np.ndarray:
    """uint8 images [n, 28, 28] (0..255) -> float32 [n, 28, 28] in [0, 1]."""
    return np.asarray(images, dtype=np.float32) / np.float32(255.0)


class SoftmaxRegression(tf.Module):
    """Y = softmax(X W + b): W [784, 10] and b [10], both zeros at the start."""

    def __init__(self, pixels: int = PIXELS, classes: int = NUM_CLASSES,
                 name: str = "softmax_regression") -> None:
        super().__init__(name=name)
        self.pixels = pixels
        self.W = tf.Variable(tf.zeros([pixels, classes]), name="W")  # [784, 10]
        self.b = tf.Variable(tf.zeros([classes]), name="b")          # [10]

    def logits(self, images: tf.Tensor) -> tf.Tensor:
        """images float [n, 28, 28] (or [n, 784]) -> logits X W + b [n, 10]."""
        x = tf.reshape(images, [-1, self.pixels])  # [n, 784]
        return tf.matmul(x, self.W) + self.b       # [n, 10]

    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        """images float [n, 28, 28] -> probabilities softmax(X W + b) [n, 10]."""
        return tf.nn.softmax(self.logits(images))


def cross_entropy(labels: tf.Tensor, logits: tf.Tensor, reduction: str = "sum") -> tf.Tensor:
    """labels int [n], logits [n, 10] -> scalar -sum_i log Y[i, label_i] ("sum") or its mean."""
    per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=logits)  # [n]
    if reduction == "sum":
        return tf.reduce_sum(per_example)
    if reduction == "mean":
        return tf.reduce_mean(per_example)
    raise DigitsError(f"unknown loss reduction {reduction!r}; expected one of {REDUCTIONS}")


def softmax_to_keras(model: SoftmaxRegression) -> keras.Model:
    """The same function as a Keras model: [n, 28, 28] -> Flatten [n, 784] -> Dense softmax."""
    inputs = keras.Input(shape=(28, 28), name="image")
    flat = keras.layers.Flatten(name="flatten")(inputs)                        # [n, 784]
    dense = keras.layers.Dense(NUM_CLASSES, activation="softmax", name="softmax")
    outputs = dense(flat)                                                      # [n, 10]
    dense.set_weights([model.W.numpy(), model.b.numpy()])
    return keras.Model(inputs, outputs, name="softmax_regression")


def build_cnn(filters: Sequence[int] = (16, 32), dense_units: int = 512,
              dropout: float = 0.5, kernel_size: int = 5, seed: int = 0) -> keras.Model:
    """The Deep-MNIST CNN: float [n, 28, 28] in [0, 1] -> probabilities [n, 10].

    Defaults are half the tutorial's widths (it uses filters (32, 64), dense_units 1024:
    3.3 M parameters, ~2.5x slower per epoch on 2 CPU cores); at 3 epochs on 7k images they
    still reach ~98 % test accuracy within the stage's time budget (~20 s of training).

    Weight initialisers and dropout get seeds derived from `seed`, so the same seed builds
    the same network and drops the same units whatever the global Keras seed is.
    `dropout` is the drop rate (the tutorial's keep_prob 0.5 = rate 0.5).
    """
    if len(filters) != 2 or min(filters) < 1 or dense_units < 1 or not 0 <= dropout < 1:
        raise DigitsError(f"bad CNN size: filters {list(filters)}, dense_units {dense_units}, "
                          f"dropout {dropout}")
    init = keras.initializers.GlorotUniform
    inputs = keras.Input(shape=(28, 28), name="image")
    x = keras.layers.Reshape((28, 28, 1), name="channel")(inputs)                # [n, 28, 28, 1]
    for i, f in enumerate(filters):
        x = keras.layers.Conv2D(f, kernel_size, padding="same", activation="relu",
                                kernel_initializer=init(seed=seed + i), name=f"conv{i + 1}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    # x: [n, 7, 7, filters[1]]
    x = keras.layers.Flatten(name="flatten")(x)                                  # [n, 7*7*f2]
    x = keras.layers.Dense(dense_units, activation="relu", kernel_initializer=init(seed=seed + 2),
                           name="fc1")(x)                                        # [n, units]
    x = keras.layers.Dropout(dropout, seed=seed + 3, name="dropout")(x)
    outputs = keras.layers.Dense(NUM_CLASSES, activation="softmax",
                                 kernel_initializer=init(seed=seed + 4), name="fc2")(x)  # [n, 10]
    return keras.Model(inputs, outputs, name="deep_mnist_cnn")


def save_keras(model: keras.Model, path: Path | str) -> Path:
    """Save `model` to `path` (must end in .keras) atomically: temp file, then os.replace."""
    path = Path(path)
    if path.suffix != ".keras":
        raise DigitsError(f"{path}: model files must end in .keras")
    with atomic_path(path) as tmp:
        model.save(tmp)
    return path


def count_params(model: keras.Model | SoftmaxRegression) -> int:
    """Number of trainable scalars (softmax: 784 * 10 + 10 = 7850)."""
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))
