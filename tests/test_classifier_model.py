"""tasks.classifier.model: Kim's architecture, the embedding variants and their initialisation."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from cnn_fixtures import NEGATIVE, POSITIVE, read_vocab_words, sentence, write_inputs

from tasks.classifier.data import SentenceVectorizer, load_embeddings, vectorize
from tasks.classifier.model import (
    KimCNNConfig,
    build_kim_cnn,
    compile_kim_cnn,
    pretrained_matrix,
    random_matrix,
)

DIMS = 8


def tiny_data(n: int = 24, seed: int = 0):
    """[n, 10] ids of two-class sentences and their labels, plus the vocabulary."""
    rng = np.random.default_rng(seed)
    labels = np.array([i % 2 for i in range(n)], dtype=np.int32)
    texts = [sentence(rng, "pos" if y else "neg") for y in labels]
    words = ["<pad>", "<unk>", *sorted({w for t in texts for w in t.split()})]
    ids = vectorize(SentenceVectorizer(words, 10), texts)
    return ids, labels, words


def config(words, init: str, **kw) -> KimCNNConfig:
    base = {"vocab_size": len(words), "num_classes": 2, "embedding_init": init,
            "embedding_dims": DIMS, "filter_windows": (2, 3), "feature_maps": 6,
            "dropout": 0.0, "max_length": 10}
    return KimCNNConfig(**{**base, **kw})


def fit(init: str, matrix=None, epochs: int = 15, lr: float = 0.02, **kw):
    ids, labels, words = tiny_data()
    keras.utils.set_random_seed(0)
    matrix = random_matrix(len(words), DIMS, 0) if matrix is None else matrix
    model = build_kim_cnn(config(words, init, **kw), matrix)
    compile_kim_cnn(model, "adam", lr)
    model.fit(ids, labels, batch_size=8, epochs=epochs, verbose=0)
    return model, ids, labels, matrix


def test_architecture_follows_kim():
    _, _, words = tiny_data()
    model = build_kim_cnn(config(words, "rand", dropout=0.5), random_matrix(len(words), DIMS, 0))
    assert model.input_shape == (None, 10) and model.output_shape == (None, 2)
    assert model.get_layer("conv_2").kernel.shape == (2, DIMS, 6)  # [h, d, maps]
    assert model.get_layer("conv_3").activation.__name__ == "relu"
    assert model.get_layer("features").output.shape == (None, 12)  # 2 windows x 6 maps
    assert model.get_layer("dropout").rate == 0.5
    assert model.get_layer("output").kernel_constraint.max_value == 3.0


def test_front_padding_puts_the_first_word_under_every_filter_position():
    # Kim's H-1 zero rows before the sentence (H = 3 here): conv_h slides over T+H-1 = 12
    # rows, so the first word is in h windows, as every other word is.
    ids, _, words = tiny_data()
    matrix = random_matrix(len(words), DIMS, 0)
    model = build_kim_cnn(config(words, "rand"), matrix)
    pad_front = keras.Model(model.input, model.get_layer("front_padding").output)
    padded = pad_front(ids[:4])
    assert padded.shape == (4, 12, DIMS)
    np.testing.assert_array_equal(padded[:, :2], 0.0)
    np.testing.assert_allclose(padded[:, 2:], matrix[ids[:4]])
    assert model.get_layer("conv_2").output.shape == (None, 11, 6)   # T+H-h positions
    assert model.get_layer("conv_3").output.shape == (None, 10, 6)
    # Another first word changes exactly h positions of conv_h (the convolution itself,
    # without the ReLU, which could zero a changed position).
    changed = ids[:4].copy()
    changed[:, 0] = (changed[:, 0] - 1) % (len(words) - 2) + 2  # another real word, in [2, V)
    padded_changed = pad_front(changed)
    for h in (2, 3):
        kernel = model.get_layer(f"conv_{h}").kernel
        before = np.asarray(keras.ops.conv(padded, kernel, padding="valid"))  # [4, T+H-h, m]
        after = np.asarray(keras.ops.conv(padded_changed, kernel, padding="valid"))
        moved = np.any(np.abs(after - before) > 1e-6, axis=2)
        assert moved.sum(axis=1).tolist() == [h] * 4 and moved[:, 3 - h:3].all()  # H = 3


def test_rand_overfits_a_tiny_two_class_dataset():
    model, ids, labels, _ = fit("rand")
    loss, accuracy = model.evaluate(ids, labels, verbose=0)
    assert accuracy == 1.0 and loss < 0.1
    # ... by learning the cue words, not the sentences: new word mixes are classified too.
    vec = SentenceVectorizer(tiny_data()[2], 10)
    probs = model.predict(vectorize(vec, [" ".join(POSITIVE[:3]), " ".join(NEGATIVE[:3])]),
                          verbose=0)
    assert probs[0].argmax() == 1 and probs[1].argmax() == 0


def test_pretrained_matrix_copies_vectors_and_randomises_the_rest(tmp_path):
    paths = write_inputs(tmp_path)
    words = read_vocab_words(paths["vocab"])
    source_words, vectors = load_embeddings(paths["export"], DIMS)
    matrix, hits = pretrained_matrix(words, source_words, vectors, seed=1)
    assert hits == len(words) - 2 - 2  # all but <pad>, <unk> and the two MISSING words
    for word in ("good", "awful", "the"):
        np.testing.assert_array_equal(matrix[words.index(word)],
                                      vectors[source_words.index(word)])
    assert not matrix[0].any()  # <pad>
    scale = np.sqrt(3 * vectors[2:].var())  # U[-a, a] with the embeddings' variance
    for word in ("<unk>", "story", "really"):
        row = matrix[words.index(word)]
        assert row.any() and np.abs(row).max() <= scale
        assert not any(np.array_equal(row, v) for v in vectors)


def test_static_stays_frozen_and_non_static_is_tuned():
    _, _, words = tiny_data()
    rng = np.random.default_rng(3)
    matrix = rng.normal(0, 0.5, size=(len(words), DIMS)).astype(np.float32)
    matrix[0] = 0
    for init, changes in (("static", False), ("non-static", True)):
        model, *_ = fit(init, matrix.copy(), epochs=1)
        table = model.get_layer("embedding")
        assert table.trainable is not (init == "static")
        after = table.get_weights()[0]
        assert np.array_equal(after, matrix) is not changes, init
    model = build_kim_cnn(config(words, "static"), matrix)
    np.testing.assert_array_equal(model.get_layer("embedding").get_weights()[0], matrix)


def test_multichannel_has_a_frozen_and_a_tuned_copy():
    _, _, words = tiny_data()
    matrix = random_matrix(len(words), DIMS, 5, scale=0.5)
    model, *_ = fit("multichannel", matrix.copy(), epochs=1)
    static, tuned = model.get_layer("embedding_static"), model.get_layer("embedding_tuned")
    assert not static.trainable and tuned.trainable
    np.testing.assert_array_equal(static.get_weights()[0], matrix)
    assert not np.array_equal(tuned.get_weights()[0], matrix)
    assert model.get_layer("conv_2").kernel.shape == (2, 2 * DIMS, 6)  # both channels


def test_max_norm_bounds_the_output_weights():
    model, *_ = fit("rand", epochs=2, lr=1.0, max_norm=0.5)
    kernel = model.get_layer("output").kernel.numpy()  # [features, C]
    assert np.linalg.norm(kernel, axis=0).max() <= 0.5 + 1e-5


def test_matrix_shape_must_match_the_config():
    _, _, words = tiny_data()
    with pytest.raises(ValueError, match="embedding matrix"):
        build_kim_cnn(config(words, "static"), np.zeros((len(words), DIMS + 1), np.float32))
