"""Training loops for the softmax regression and the CNN, with evaluation curves.

Both loops read batches like the workshop's `mnist.train.next_batch(100)`: a seeded
permutation per epoch (`default_rng([seed, epoch])`), consecutive batches of exactly
`batch_size` that may run across an epoch boundary, `steps` batches in all. Same data, config
and seed => same weights and metrics (CPU).

Every `eval_every` steps (and after the last) they call `on_eval(step, metrics)` with
- train_loss, train_accuracy: mean over the training batches since the previous point;
- <name>_loss, <name>_accuracy for each named part in `evals` (e.g. {"dev": splits.dev});
- epoch (fractional), seconds (since training began).
Losses are the mean cross-entropy per example (natural log), whatever the training reduction.
The caller routes these to TensorBoard / MLflow. The result holds the same points as `curves`.

Final metrics are on `test`: test_accuracy, test_loss, per_class_accuracy {"0".."9"},
plus steps, epochs, train_seconds, params.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tasks.digits import DigitsError
from tasks.digits.models import (
    NUM_CLASSES,
    SoftmaxRegression,
    build_cnn,
    count_params,
    cross_entropy,
    softmax_to_keras,
    to_inputs,
)
from tasks.digits.split import Part

OnEval = Callable[[int, dict[str, float]], None]
StepFn = Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]  # -> (loss, correct)
ProbaFn = Callable[[tf.Tensor], tf.Tensor]                              # [n,28,28] -> [n,10]


@dataclass
class TrainResult:
    """What a training run gives back.

    model: Keras model [n, 28, 28] -> [n, 10] (softmax: `softmax_to_keras` of the module);
    metrics: final test metrics (see module docstring); curves: one dict per eval point;
    predictions int [n_test]; probabilities float [n_test, 10]; confusion int [10, 10]
    (rows = true class, columns = predicted); weights: softmax W [784, 10], else None.
    """

    model: keras.Model
    metrics: dict[str, Any]
    curves: list[dict[str, float]]
    predictions: np.ndarray
    probabilities: np.ndarray
    confusion: np.ndarray
    weights: np.ndarray | None = field(default=None)


def batch_indices(n: int, batch_size: int, steps: int, seed: int) -> np.ndarray:
    """int64 [steps, batch_size]: seeded per-epoch permutations of range(n), read in order."""
    if n < 1 or batch_size < 1 or steps < 1:
        raise DigitsError(f"need examples, batch_size and steps >= 1 (got {n}, {batch_size}, "
                          f"{steps})")
    epochs = -(-steps * batch_size // n)  # ceil
    order = np.concatenate([np.random.default_rng([seed, e]).permutation(n)
                            for e in range(epochs)])
    return order[:steps * batch_size].reshape(steps, batch_size)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray,
                     classes: int = NUM_CLASSES) -> np.ndarray:
    """labels [n], predictions [n] -> int64 [classes, classes], rows = true class."""
    flat = np.asarray(labels, np.int64) * classes + np.asarray(predictions, np.int64)
    return np.bincount(flat, minlength=classes * classes).reshape(classes, classes)


def per_class_accuracy(confusion: np.ndarray) -> dict[str, float]:
    """{"0": recall of class 0, ...}; a class absent from the labels gets 0.0."""
    totals = confusion.sum(axis=1)
    return {str(c): float(confusion[c, c] / totals[c]) if totals[c] else 0.0
            for c in range(len(confusion))}


def predict_proba(fn: ProbaFn, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """uint8 images [n, 28, 28] -> float32 probabilities [n, 10], in batches."""
    x = to_inputs(images)
    return np.concatenate([fn(tf.constant(x[i:i + batch_size])).numpy()
                           for i in range(0, len(x), batch_size)])


def evaluate(fn: ProbaFn, part: Part) -> tuple[float, float, np.ndarray]:
    """-> (mean cross-entropy, accuracy, probabilities [n, 10]) of `fn` on `part`."""
    probs = predict_proba(fn, part.images)
    picked = probs[np.arange(len(probs)), part.labels.astype(np.int64)]  # [n]
    loss = float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0))))
    accuracy = float(np.mean(probs.argmax(axis=1) == part.labels))
    return loss, accuracy, probs


def _fit(step_fn: StepFn, proba_fn: ProbaFn, train: Part, evals: Mapping[str, Part],
         batch_size: int, steps: int, eval_every: int, seed: int,
         on_eval: OnEval | None) -> tuple[list[dict[str, float]], float]:
    """The shared loop: run `steps` batches, evaluate on `evals` every `eval_every` steps."""
    if eval_every < 1:
        raise DigitsError(f"eval_every must be >= 1, got {eval_every}")
    x = to_inputs(train.images)               # float32 [n, 28, 28]
    y = train.labels.astype(np.int32)         # int32 [n]
    batches = batch_indices(len(y), batch_size, steps, seed)
    curves: list[dict[str, float]] = []
    loss_sum = correct = seen = 0.0
    start = time.perf_counter()
    for step, idx in enumerate(batches, start=1):
        loss, hits = step_fn(tf.constant(x[idx]), tf.constant(y[idx]))
        loss_sum += float(loss) * len(idx)
        correct += float(hits)
        seen += len(idx)
        if step % eval_every == 0 or step == steps:
            point = {"train_loss": loss_sum / seen, "train_accuracy": correct / seen}
            for name, part in evals.items():
                point[f"{name}_loss"], point[f"{name}_accuracy"], _ = evaluate(proba_fn, part)
            point.update(epoch=step * batch_size / len(y),
                         seconds=time.perf_counter() - start)
            curves.append({"step": step, **point})
            if on_eval is not None:
                on_eval(step, dict(point))
            loss_sum = correct = seen = 0.0
    return curves, time.perf_counter() - start


def _result(model: keras.Model, test: Part, curves: list[dict[str, float]], seconds: float,
            steps: int, batch_size: int, n_train: int, weights: np.ndarray | None
            ) -> TrainResult:
    loss, accuracy, probs = evaluate(lambda t: model(t, training=False), test)
    predictions = probs.argmax(axis=1)
    confusion = confusion_matrix(test.labels, predictions)
    metrics = {"test_accuracy": accuracy, "test_loss": loss,
               "per_class_accuracy": per_class_accuracy(confusion), "steps": steps,
               "epochs": steps * batch_size / n_train, "train_seconds": seconds,
               "params": count_params(model)}
    return TrainResult(model, metrics, curves, predictions, probs, confusion, weights)


def train_softmax(train: Part, test: Part, evals: Mapping[str, Part] | None = None, *,
                  learning_rate: float = 0.003, batch_size: int = 100, steps: int = 2000,
                  reduction: str = "sum", eval_every: int = 100, seed: int = 0,
                  on_eval: OnEval | None = None) -> TrainResult:
    """Softmax regression by plain gradient descent (W -= lr * dL/dW, b -= lr * dL/db).

    Inputs: train / test parts (uint8 images [n, 28, 28], labels [n]); evals: parts for the
    curves (default {"test": test}); workshop defaults lr 0.003, batches of 100, 2000 steps,
    loss summed over the batch. Output: TrainResult (weights = W [784, 10]).
    """
    cross_entropy(tf.constant([0]), tf.zeros([1, NUM_CLASSES]), reduction)  # validates it
    module = SoftmaxRegression()
    lr = tf.constant(learning_rate, tf.float32)

    @tf.function(reduce_retracing=True)
    def step_fn(xb: tf.Tensor, yb: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            logits = module.logits(xb)                       # [b, 10]
            loss = cross_entropy(yb, logits, reduction)      # scalar
        grads = tape.gradient(loss, [module.W, module.b])    # [784, 10], [10]
        module.W.assign_sub(lr * grads[0])
        module.b.assign_sub(lr * grads[1])
        hits = tf.reduce_sum(tf.cast(tf.argmax(logits, 1, output_type=tf.int32) == yb,
                                     tf.float32))
        mean = loss / tf.cast(tf.shape(yb)[0], tf.float32) if reduction == "sum" else loss
        return mean, hits

    proba_fn = tf.function(module.__call__, reduce_retracing=True)
    curves, seconds = _fit(step_fn, proba_fn, train, {"test": test} if evals is None else evals,
                           batch_size, steps, eval_every, seed, on_eval)
    model = softmax_to_keras(module)
    return _result(model, test, curves, seconds, steps, batch_size, len(train.labels),
                   module.W.numpy())


def train_cnn(train: Part, test: Part, evals: Mapping[str, Part] | None = None, *,
              filters: Sequence[int] = (16, 32), dense_units: int = 512, dropout: float = 0.5,
              learning_rate: float = 2e-3, batch_size: int = 100, epochs: float = 3.0,
              eval_every: int = 35, seed: int = 0, on_eval: OnEval | None = None
              ) -> TrainResult:
    """The Deep-MNIST CNN trained with Adam on mean cross-entropy.

    Inputs: as `train_softmax`; CNN size (`build_cnn`); epochs (may be fractional; steps =
    ceil(epochs * n_train / batch_size)); evals default {"test": test} (pass {"dev": dev} to
    keep the test set out of the curves; evaluating a CNN costs time on 2 cores).
    Output: TrainResult (weights None).
    """
    steps = max(1, int(np.ceil(epochs * len(train.labels) / batch_size)))
    model = build_cnn(filters, dense_units, dropout, seed=seed)
    optimizer = keras.optimizers.Adam(learning_rate)
    loss_of = keras.losses.SparseCategoricalCrossentropy()

    @tf.function(reduce_retracing=True)
    def step_fn(xb: tf.Tensor, yb: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            probs = model(xb, training=True)                 # [b, 10]
            loss = loss_of(yb, probs)                        # scalar, mean over the batch
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        hits = tf.reduce_sum(tf.cast(tf.argmax(probs, 1, output_type=tf.int32) == yb,
                                     tf.float32))
        return loss, hits

    proba_fn = tf.function(lambda t: model(t, training=False), reduce_retracing=True)
    curves, seconds = _fit(step_fn, proba_fn, train, {"test": test} if evals is None else evals,
                           batch_size, steps, eval_every, seed, on_eval)
    return _result(model, test, curves, seconds, steps, batch_size, len(train.labels), None)
