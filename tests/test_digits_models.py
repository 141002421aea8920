"""tasks.digits.models / train / plots with real TensorFlow on tiny synthetic digits."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from digits_fixtures import synthetic_digits

from tasks.digits import DigitsError, plots, split
from tasks.digits.models import (
    SoftmaxRegression,
    build_cnn,
    count_params,
    cross_entropy,
    softmax_to_keras,
    to_inputs,
)
from tasks.digits.train import (
    batch_indices,
    confusion_matrix,
    per_class_accuracy,
    train_cnn,
    train_softmax,
)

TINY_CNN = {"filters": (4, 8), "dense_units": 32, "batch_size": 32, "learning_rate": 3e-3}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def splits() -> split.Splits:
    images, labels = synthetic_digits(60, seed=0)  # 600 images
    return split.split_test_set(images, labels, dev_fraction=0.1, test_fraction=0.3, seed=0)


@pytest.fixture(scope="module")
def softmax_run(splits):
    seen: list[tuple[int, dict]] = []
    result = train_softmax(splits.train, splits.test, {"dev": splits.dev}, steps=300,
                           eval_every=100, seed=0, on_eval=lambda s, m: seen.append((s, m)))
    return result, seen


def without_time(curves: list[dict]) -> list[dict]:
    return [{k: v for k, v in point.items() if k != "seconds"} for point in curves]


def test_softmax_module_starts_at_zero_and_uniform() -> None:
    model = SoftmaxRegression()
    assert model.W.shape == (784, 10) and model.b.shape == (10,)
    assert not np.any(model.W.numpy()) and not np.any(model.b.numpy())
    x = to_inputs(synthetic_digits(1)[0])                         # [10, 28, 28] in [0, 1]
    assert x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1
    probs = model(x).numpy()                                      # [10, 10]
    np.testing.assert_allclose(probs, 0.1, rtol=1e-6)
    labels = tf.range(10)
    assert math.isclose(float(cross_entropy(labels, model.logits(x), "sum")),
                        10 * math.log(10), rel_tol=1e-5)
    assert math.isclose(float(cross_entropy(labels, model.logits(x), "mean")),
                        math.log(10), rel_tol=1e-5)
    with pytest.raises(DigitsError, match="unknown loss reduction"):
        cross_entropy(labels, model.logits(x), "max")


def test_cross_entropy_is_the_workshop_formula() -> None:
    logits = tf.constant(np.random.default_rng(0).normal(size=(5, 10)), tf.float32)
    labels = tf.constant([3, 0, 9, 1, 1])
    onehot = tf.one_hot(labels, 10)
    workshop = -tf.reduce_sum(onehot * tf.math.log(tf.nn.softmax(logits)))  # -sum(Y_ log Y)
    np.testing.assert_allclose(float(cross_entropy(labels, logits, "sum")), float(workshop),
                               rtol=1e-5)


def test_softmax_learns_synthetic_digits(softmax_run, splits) -> None:
    result, seen = softmax_run
    assert result.metrics["test_accuracy"] >= 0.97
    assert result.metrics["steps"] == 300 and result.metrics["params"] == 7850
    assert result.metrics["epochs"] == pytest.approx(300 * 100 / 360)
    assert set(result.metrics["per_class_accuracy"]) == {str(k) for k in range(10)}
    assert min(result.metrics["per_class_accuracy"].values()) >= 0.8
    assert [p["step"] for p in result.curves] == [100, 200, 300]
    assert set(result.curves[0]) == {"step", "epoch", "seconds", "train_loss", "train_accuracy",
                                     "dev_loss", "dev_accuracy"}
    assert [s for s, _ in seen] == [100, 200, 300]
    assert seen[-1][1] == {k: v for k, v in result.curves[-1].items() if k != "step"}
    assert result.curves[-1]["train_loss"] < result.curves[0]["train_loss"] < math.log(10)
    assert result.confusion.shape == (10, 10) and result.confusion.sum() == 180
    assert np.trace(result.confusion) / 180 == pytest.approx(result.metrics["test_accuracy"])
    assert result.weights.shape == (784, 10)
    assert result.probabilities.shape == (180, 10)
    np.testing.assert_array_equal(result.predictions, result.probabilities.argmax(1))


def test_softmax_is_deterministic_and_keras_copy_is_equal(softmax_run, splits) -> None:
    result, _ = softmax_run
    again = train_softmax(splits.train, splits.test, {"dev": splits.dev}, steps=300,
                          eval_every=100, seed=0)
    np.testing.assert_array_equal(again.weights, result.weights)
    assert without_time(again.curves) == without_time(result.curves)
    module = SoftmaxRegression()
    module.W.assign(result.weights)
    x = to_inputs(splits.test.images)
    np.testing.assert_allclose(softmax_to_keras(module)(x).numpy(), module(x).numpy(), atol=1e-6)


def test_summed_loss_learns_faster_than_mean_at_workshop_lr(softmax_run, splits) -> None:
    summed, _ = softmax_run
    mean = train_softmax(splits.train, splits.test, {"dev": splits.dev}, steps=300,
                         eval_every=300, reduction="mean", seed=0)
    assert mean.metrics["test_loss"] > summed.metrics["test_loss"] + 0.3


def test_cnn_layer_shapes_and_outputs() -> None:
    model = build_cnn(filters=(32, 64), dense_units=1024, seed=0)  # the tutorial's sizes
    shapes = {layer.name: tuple(layer.output.shape) for layer in model.layers}
    assert shapes["conv1"] == (None, 28, 28, 32) and shapes["pool1"] == (None, 14, 14, 32)
    assert shapes["conv2"] == (None, 14, 14, 64) and shapes["pool2"] == (None, 7, 7, 64)
    assert shapes["fc1"] == (None, 1024) and shapes["fc2"] == (None, 10)
    assert count_params(model) == (25 * 32 + 32) + (25 * 32 * 64 + 64) + (3136 * 1024 + 1024) \
        + (1024 * 10 + 10)
    probs = model(to_inputs(synthetic_digits(1)[0]), training=False).numpy()  # [10, 10]
    assert probs.shape == (10, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    same = build_cnn(filters=(32, 64), dense_units=1024, seed=0)
    for a, b in zip(model.get_weights(), same.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(DigitsError, match="bad CNN size"):
        build_cnn(filters=(8,))


def test_cnn_trains_and_is_deterministic(splits) -> None:
    first_weights = build_cnn(TINY_CNN["filters"], TINY_CNN["dense_units"], seed=1).get_weights()
    result = train_cnn(splits.train, splits.test, {"dev": splits.dev}, epochs=4,
                       eval_every=15, seed=1, **TINY_CNN)
    assert result.metrics["steps"] == math.ceil(4 * 360 / 32)
    assert result.metrics["test_accuracy"] >= 0.85
    assert result.curves[-1]["dev_loss"] < result.curves[0]["dev_loss"]
    assert any(not np.array_equal(a, b)
               for a, b in zip(first_weights, result.model.get_weights(), strict=True))
    assert result.weights is None and result.confusion.sum() == 180
    again = train_cnn(splits.train, splits.test, {"dev": splits.dev}, epochs=4,
                      eval_every=15, seed=1, **TINY_CNN)
    assert without_time(again.curves) == without_time(result.curves)
    for a, b in zip(result.model.get_weights(), again.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_batch_indices_walk_seeded_epoch_permutations() -> None:
    batches = batch_indices(10, 4, 5, seed=7)                     # 20 = two epochs
    assert batches.shape == (5, 4)
    flat = batches.ravel()
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:]) == list(range(10))
    np.testing.assert_array_equal(batches, batch_indices(10, 4, 5, seed=7))
    assert not np.array_equal(batches, batch_indices(10, 4, 5, seed=8))
    with pytest.raises(DigitsError):
        batch_indices(0, 4, 5, seed=0)


def test_confusion_and_per_class_accuracy() -> None:
    cm = confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2]), classes=3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert per_class_accuracy(cm) == {"0": 0.5, "1": 1.0, "2": pytest.approx(2 / 3)}


def test_plots_are_written_atomically(softmax_run, splits, tmp_path: Path) -> None:
    result, _ = softmax_run
    test = splits.test
    written = [
        plots.plot_weights(result.weights, tmp_path / "out" / "weights.png"),
        plots.plot_confusion(result.confusion, tmp_path / "out" / "confusion.png"),
        plots.plot_misclassified(test.images, test.labels, (test.labels + 1) % 10,
                                 tmp_path / "out" / "wrong.png", max_images=10),
        plots.plot_misclassified(test.images, test.labels, test.labels,
                                 tmp_path / "out" / "none.png"),
    ]
    for path in written:
        data = path.read_bytes()
        assert data.startswith(PNG) and len(data) > 2000
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "confusion.png", "none.png", "weights.png", "wrong.png"]  # no temp files left
    before = written[0].read_bytes()
    with pytest.raises(DigitsError, match=r"must be \[784, 10\]"):
        plots.plot_weights(result.weights[:100], written[0])
    assert written[0].read_bytes() == before
    with pytest.raises(DigitsError, match="counts must agree"):
        plots.plot_misclassified(test.images, test.labels[:-1], test.labels[:-1],
                                 tmp_path / "x.png")
