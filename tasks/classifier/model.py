"""Kim (2014) "Convolutional Neural Networks for Sentence Classification" as a Keras 3 model.

    ids [B, T] int  (T = max_length, 0 = <pad>, 1 = <unk>)
      -> embedding [B, T, d]                      (multichannel: two, concatenated [B, T, 2d])
      -> H-1 zero vectors in front [B, T+H-1, d]  (H = max(filter_windows), Kim's code)
      -> for h in filter_windows: Conv1D(feature_maps, h) + ReLU [B, T+H-h, m] -> max over time [B, m]
      -> concatenate [B, m * len(filter_windows)] -> dropout -> dense softmax [B, C]
         (the dense kernel's columns are kept at l2 norm <= max_norm, Kim's constraint)

Params section `cnn` (`KimCNNConfig.from_params`). Embedding variants, Kim's names:
rand (uniform random, trained), static (word2vec, frozen), non-static (word2vec, fine-tuned),
multichannel (one frozen and one fine-tuned copy of word2vec).

The matrix for the pretrained variants is built row-for-row over the classifier vocabulary
(the keras-io "pretrained word embeddings" recipe): a word found in the exported embeddings
gets its vector, a missing word gets U[-a, a] with a = sqrt(3 var(E)) so the random rows have
the variance of the real ones (Kim); `<pad>` stays zero.

The front padding is Kim's (`get_idx_from_sent` in his code puts H-1 zero rows before every
sentence): without it the first words of a sentence fall under fewer filter positions than
the others (the first word under one of a 5-window's five). Measured on MR, non-static, seeds
42-46 (docs/cnn.md): 80.06 % mean test accuracy with it, 78.93 % without.
Nothing here runs on import.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tasks.core.params import CNN_VARIANTS

if TYPE_CHECKING:
    import keras

    from tasks.core.params import Cnn

VARIANTS = CNN_VARIANTS  # cnn.embedding_init values, stated once in tasks.core.params
RAND_SCALE = 0.25  # CNN-rand: U[-0.25, 0.25], the value in Kim's code
# Bumped whenever the graph changes (2: the front padding), so that the cnn stage never resumes
# a checkpoint of another architecture whose weights happen to have the same shapes.
ARCHITECTURE = 2


@dataclass(frozen=True)
class KimCNNConfig:
    vocab_size: int                      # V rows, including <pad> (0) and <unk> (1)
    num_classes: int                     # C
    embedding_init: str = "rand"         # one of VARIANTS
    embedding_dims: int = 100            # d
    filter_windows: tuple[int, ...] = (3, 4, 5)
    feature_maps: int = 100              # m per window
    dropout: float = 0.5
    max_norm: float = 3.0                # 0 = unconstrained
    max_length: int = 64                 # T

    @classmethod
    def from_params(cls, p: Cnn, vocab_size: int, num_classes: int) -> KimCNNConfig:
        return cls(vocab_size=vocab_size, num_classes=num_classes,
                   embedding_init=p.embedding_init, embedding_dims=p.embedding_dims,
                   filter_windows=tuple(p.filter_windows), feature_maps=p.feature_maps,
                   dropout=p.dropout, max_norm=p.max_norm, max_length=p.max_length)


def random_matrix(vocab_size: int, dims: int, seed: int, scale: float = RAND_SCALE) -> np.ndarray:
    """[V, d] float32 drawn from U[-scale, scale]; the <pad> row is zero."""
    rng = np.random.default_rng(seed)
    matrix = rng.uniform(-scale, scale, size=(vocab_size, dims)).astype(np.float32)
    matrix[0] = 0.0
    return matrix


def pretrained_matrix(words: Sequence[str], source_words: Sequence[str], vectors: np.ndarray,
                      seed: int) -> tuple[np.ndarray, int]:
    """Align `vectors` ([V', d], row i = `source_words[i]`) to `words`; return ([V, d], hits).

    Rows 0 and 1 (`<pad>`, `<unk>`) of either vocabulary are never copied: `<pad>` is zero,
    `<unk>` is random like any word missing from the source.
    """
    row_of = {w: i for i, w in enumerate(source_words) if i >= 2}
    found = np.array([row_of.get(w, -1) for w in words], dtype=np.int64)  # [V], -1 = missing
    found[:2] = -1
    real = vectors[2:] if len(vectors) > 2 else vectors
    # Kim: "a chosen such that the randomly initialized vectors have the same variance as the
    # pre-trained ones"; Var U[-a, a] = a^2 / 3.
    scale = float(np.sqrt(3.0 * real.var())) if real.size else RAND_SCALE
    matrix = random_matrix(len(words), vectors.shape[1], seed, scale)
    hit = found >= 0
    matrix[hit] = vectors[found[hit]]
    return matrix, int(hit.sum())


def build_kim_cnn(config: KimCNNConfig, matrix: np.ndarray) -> keras.Model:
    """The classifier over token ids, embeddings initialised from `matrix` [V, d]."""
    import keras

    if matrix.shape != (config.vocab_size, config.embedding_dims):
        raise ValueError(f"embedding matrix {matrix.shape} != "
                         f"({config.vocab_size}, {config.embedding_dims})")
    ids = keras.Input(shape=(config.max_length,), dtype="int32", name="ids")  # [B, T]

    def embedding(name: str, trainable: bool) -> keras.layers.Embedding:
        return keras.layers.Embedding(config.vocab_size, config.embedding_dims,
                                      trainable=trainable, name=name)

    if config.embedding_init == "multichannel":
        static, tuned = embedding("embedding_static", False), embedding("embedding_tuned", True)
        # Kim applies every filter to both channels and adds the results. A Conv1D over the
        # channels concatenated on the feature axis does exactly that: its kernel [h, 2d, m]
        # is one [h, d, m] slice per channel, and the products are summed.
        x = keras.layers.Concatenate(name="channels")([static(ids), tuned(ids)])  # [B, T, 2d]
        tables = [static, tuned]
    else:
        layer = embedding("embedding", config.embedding_init != "static")
        x = layer(ids)  # [B, T, d]
        tables = [layer]

    front = max(config.filter_windows) - 1
    x = keras.layers.ZeroPadding1D((front, 0), name="front_padding")(x)  # [B, T+H-1, d]
    pooled = []
    for h in config.filter_windows:
        c = keras.layers.Conv1D(config.feature_maps, h, activation="relu",
                                name=f"conv_{h}")(x)  # [B, T+H-h, m]
        pooled.append(keras.layers.GlobalMaxPooling1D(name=f"maxpool_{h}")(c))  # [B, m]
    z = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name="features")(pooled)
    z = keras.layers.Dropout(config.dropout, name="dropout")(z)  # [B, m * windows]
    constraint = keras.constraints.MaxNorm(config.max_norm) if config.max_norm > 0 else None
    probs = keras.layers.Dense(config.num_classes, activation="softmax", name="output",
                               kernel_constraint=constraint)(z)  # [B, C]
    model = keras.Model(ids, probs, name=f"kim_cnn_{config.embedding_init.replace('-', '_')}")
    for table in tables:  # built by the calls above; copy the initial vectors in
        table.set_weights([matrix])
    return model


def compile_kim_cnn(model: keras.Model, optimizer: str, learning_rate: float) -> keras.Model:
    """Compile with `optimizer` (tasks/classifier/optimizers.py: adam, or Kim's adadelta)."""
    from tasks.classifier.optimizers import make_optimizer

    model.compile(optimizer=make_optimizer(optimizer, learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
