"""tasks.classifier.optimizers: Kim's Adadelta on dense gradients, Adam unchanged.

Real Keras optimisers on tiny variables; the reference is Keras's own Adadelta fed the
dense gradient (the textbook update), against which the sparse path differs.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.classifier.optimizers import (
    KIM_EPSILON,
    KIM_RHO,
    DenseGradientAdadelta,
    make_optimizer,
)

ROWS, DIMS = 6, 3


def step(optimizer: keras.optimizers.Optimizer, gradient, steps: int = 3) -> np.ndarray:
    """The table [ROWS, DIMS] after `steps` updates with `gradient`, from a fixed start."""
    table = keras.Variable(np.arange(ROWS * DIMS, dtype="float32").reshape(ROWS, DIMS) / 10)
    for _ in range(steps):
        optimizer.apply([gradient], [table])
    return np.asarray(table.numpy())


def sparse_gradient(indices: list[int], seed: int = 0) -> tf.IndexedSlices:
    """One row per token: a word that occurs twice in the batch gives two rows."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(len(indices), DIMS)).astype("float32")
    return tf.IndexedSlices(tf.constant(values), tf.constant(indices, dtype=tf.int64),
                            tf.constant([ROWS, DIMS], dtype=tf.int64))


def test_make_optimizer_gives_adam_or_kims_adadelta():
    adam = make_optimizer("adam", 0.001)
    assert type(adam) is keras.optimizers.Adam
    assert float(adam.learning_rate) == pytest.approx(0.001)
    adadelta = make_optimizer("adadelta", 1.0)
    assert isinstance(adadelta, DenseGradientAdadelta)
    assert (adadelta.rho, adadelta.epsilon) == (KIM_RHO, KIM_EPSILON) == (0.95, 1e-6)
    assert float(adadelta.learning_rate) == 1.0


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(0, ROWS - 1), min_size=1, max_size=12), st.integers(0, 2**16))
def test_a_sparse_gradient_updates_like_its_dense_sum(indices, seed):
    """Duplicates summed first: the same table as Keras's Adadelta given the dense gradient."""
    gradient = sparse_gradient(indices, seed)
    ours = step(DenseGradientAdadelta(1.0, rho=KIM_RHO, epsilon=KIM_EPSILON), gradient)
    dense = step(keras.optimizers.Adadelta(1.0, rho=KIM_RHO, epsilon=KIM_EPSILON),
                 tf.convert_to_tensor(gradient))
    np.testing.assert_allclose(ours, dense, rtol=1e-6, atol=1e-7)


def test_keras_sparse_path_differs_when_a_row_repeats():
    """What the dense sum fixes: with a repeated row Keras's sparse Adadelta squares the
    parts, not their sum, so its table moves differently from the textbook update."""
    gradient = sparse_gradient([1, 1, 1, 4])
    sparse = step(keras.optimizers.Adadelta(1.0, rho=KIM_RHO, epsilon=KIM_EPSILON), gradient)
    ours = step(DenseGradientAdadelta(1.0, rho=KIM_RHO, epsilon=KIM_EPSILON), gradient)
    assert not np.allclose(sparse[1], ours[1], rtol=1e-4)
    np.testing.assert_allclose(sparse[4], ours[4], rtol=1e-5)  # a single row: no difference
    np.testing.assert_array_equal(sparse[0], ours[0])  # untouched rows stay put


def test_the_same_updates_give_the_same_bits():
    gradient = sparse_gradient([0, 2, 2, 2, 5, 5, 1, 2] * 50)
    first = step(DenseGradientAdadelta(1.0), gradient, steps=5)
    again = step(DenseGradientAdadelta(1.0), gradient, steps=5)
    np.testing.assert_array_equal(first, again)


def test_a_model_compiled_with_it_saves_and_loads(tmp_path):
    """Registered as serializable: a compiled model's .keras file reloads with it."""
    model = keras.Sequential([keras.Input((4,), dtype="int32"), keras.layers.Embedding(10, 3),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)])
    model.compile(optimizer=make_optimizer("adadelta", 1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(np.array([[1, 2, 2, 3], [4, 4, 5, 0]]), np.array([0, 1]), verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, DenseGradientAdadelta)
    assert loaded.optimizer.rho == KIM_RHO
