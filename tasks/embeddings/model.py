"""word2vec in TensorFlow: skip-gram / CBOW, negative sampling or NCE, sparse SGD updates.

    spec = Word2VecSpec(vocab_size=V, dims=100, model="skipgram", loss="neg", negatives=5,
                        window=5, seed=42)
    model = Word2VecModel(spec, vocab.noise_prob)   # under strategy.scope() if distributed
    loss, grads = model.compute_gradients(batch)    # grads: {variable name: tf.IndexedSlices}
    model.apply_gradients(grads, learning_rate)     # var.scatter_sub(lr * grad), rows only
    loss = model.train_step(batch, learning_rate)   # the two above
    trainer = model.compiled_trainer()              # XLA, many steps per call (the stage's path)

Variables (all created in __init__): input_embeddings [V, d] (U[-0.5/d, 0.5/d], word2vec.c),
output_embeddings [V, d] (zeros), and for NCE output_bias [V] (zeros). Gradients are never
dense: rows are gathered with tf.nn.embedding_lookup (works on ShardedVariable too), the
gradients of those rows are computed in closed form (NCE: a tape over the gathered rows), and
returned as tf.IndexedSlices of the *summed* per-pair loss (word2vec's SGD convention: every
pair takes a full learning-rate step); `loss` is the mean per pair (per centre for CBOW).

Batch (tuple or mapping, see tasks/embeddings/inputs.py): centers int32 [B]; contexts int32 [B]
(skip-gram pairs) or [B, C] (a group of C context slots per centre); context_mask float32 of
the contexts' shape; seed int64 [2]. Negatives come from the vocabulary's noise_prob
(unigram^0.75) through an alias table, drawn with TF's stateless RNG from `seed`, so a batch
always trains identically.

Roles and the one deviation from word2vec.c (documented in docs/word2vec.md):
- skip-gram: the centre's input vector predicts each context's output vector
  (word2vec_basic's orientation; word2vec.c predicts the centre from each context, the same
  pairs seen from the other side). With C context slots per centre the group shares
  K * ceil(C/2) negatives, each weighted so that every pair still counts K negatives
  (weight = valid pairs / ceil(C/2), excluding a negative that equals a pair's context, as
  word2vec.c skips a negative equal to its target). Pairs (C = 1) are exactly word2vec.c's
  SGNS. Sharing cuts the gathered/scattered rows per pair ~3x; quality in docs/word2vec.md.
- CBOW: the mean of the context input vectors predicts the centre against K negatives; each
  context row receives the full hidden-layer gradient (word2vec.c and gensim cbow_mean=1).
- loss nce: tf.nn.nce_loss (word2vec_basic) on the batch's pairs, its `negatives` noise words
  shared across the batch (nce_loss's own convention), with a bias per output word.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

if TYPE_CHECKING:
    from tasks.core.params import Word2Vec

VARIABLES = ("input_embeddings", "output_embeddings", "output_bias")


@dataclass(frozen=True)
class Word2VecSpec:
    vocab_size: int
    dims: int
    model: str = "skipgram"   # skipgram | cbow
    loss: str = "neg"         # neg | nce
    negatives: int = 5
    window: int = 5
    seed: int = 0

    @classmethod
    def from_params(cls, params: Word2Vec, vocab_size: int, seed: int) -> Word2VecSpec:
        """The spec the `word2vec` params section describes, for a vocabulary of that size."""
        return cls(vocab_size=vocab_size, dims=params.dims, model=params.model, loss=params.loss,
                   negatives=params.negatives, window=params.window, seed=seed)


def alias_table(prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vose's alias method: (accept float32 [V], alias int32 [V]) for O(1) exact sampling.

    Draw j ~ U{0..V-1}, u ~ U[0,1): the sample is j if u < accept[j] else alias[j]. Words of
    probability 0 (<pad>, <unk>) have accept 0 and are never drawn.
    """
    p = np.asarray(prob, np.float64)
    n = len(p)
    q = p / p.sum() * n
    accept, alias = np.ones(n, np.float64), np.arange(n, dtype=np.int64)
    small, large = list(np.nonzero(q < 1)[0]), list(np.nonzero(q >= 1)[0])
    while small and large:
        s, big = small.pop(), large.pop()
        accept[s], alias[s] = q[s], big
        q[big] -= 1.0 - q[s]
        (small if q[big] < 1 else large).append(big)
    return accept.astype(np.float32), alias.astype(np.int32)


def _unpack(batch: Any) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    if isinstance(batch, Mapping):
        parts = [batch["centers"], batch["contexts"], batch["context_mask"], batch["seed"]]
    else:
        parts = list(batch)
    centers, contexts, mask, seed = parts
    return (tf.cast(centers, tf.int32), tf.cast(contexts, tf.int32),
            tf.cast(mask, tf.float32), tf.cast(seed, tf.int64))


class Word2VecModel(tf.Module):
    """The embeddings and the sparse SGD step; see the module docstring."""

    def __init__(self, spec: Word2VecSpec, noise_prob: np.ndarray) -> None:
        super().__init__(name="word2vec")
        self.spec = spec
        v, d = spec.vocab_size, spec.dims
        init = tf.random.stateless_uniform([v, d], [spec.seed, 0], -0.5 / d, 0.5 / d)
        self.input_embeddings = tf.Variable(init, name="input_embeddings")
        self.output_embeddings = tf.Variable(tf.zeros([v, d]), name="output_embeddings")
        self.output_bias = (tf.Variable(tf.zeros([v]), name="output_bias")
                            if spec.loss == "nce" else None)
        accept, alias = alias_table(noise_prob)
        self._accept, self._alias = tf.constant(accept), tf.constant(alias)
        self._noise = tf.constant(np.asarray(noise_prob, np.float32))
        # compiled_trainer's tf.functions by jit; set past tf.Module's tracking so that
        # checkpoints hold the variables only
        object.__setattr__(self, "_trainers", {})

    # -- sampling -------------------------------------------------------------------------
    def sample_negatives(self, seed: tf.Tensor, shape: list[Any]) -> tf.Tensor:
        """int32 `shape` draws from noise_prob (stateless: same seed, same draws)."""
        seeds = tf.random.experimental.stateless_split(seed, 2)
        j = tf.random.stateless_uniform(shape, seeds[0], 0, self.spec.vocab_size, tf.int32)
        u = tf.random.stateless_uniform(shape, seeds[1])
        return tf.where(u < tf.gather(self._accept, j), j, tf.gather(self._alias, j))

    # -- gradients ------------------------------------------------------------------------
    def compute_gradients(self, batch: Any) -> tuple[tf.Tensor, dict[str, tf.IndexedSlices]]:
        """(mean loss, {variable name: IndexedSlices of the summed loss}); pure TF."""
        loss_sum, count, grads = self.forward(batch)
        return loss_sum / tf.maximum(count, 1.0), grads

    def forward(self, batch: Any) -> tuple[tf.Tensor, tf.Tensor, dict[str, tf.IndexedSlices]]:
        """(summed loss, number of pairs or centres, gradients)."""
        centers, contexts, mask, seed = _unpack(batch)
        if self.spec.model == "cbow":
            return self._cbow(centers, contexts, mask, seed)
        if contexts.shape.rank == 1:                 # pairs: one context slot per row
            contexts, mask = contexts[:, None], mask[:, None]
        return self._skipgram(centers, contexts, mask, seed)

    def _skipgram(self, centers, contexts, mask, seed):
        k, c = self.spec.negatives, tf.shape(contexts)[1]
        u = tf.nn.embedding_lookup(self.input_embeddings, centers)          # [B, d]
        if self.spec.loss == "nce":
            b, d = tf.shape(u)[0], tf.shape(u)[1]
            inputs = tf.reshape(tf.broadcast_to(u[:, None, :], [b, c, d]), [-1, d])
            return self._nce(inputs, tf.reshape(contexts, [-1]), tf.reshape(mask, [-1]), seed,
                             centers=centers, input_rows=c)
        share = (c + 1) // 2                                                 # ceil(C/2)
        neg = self.sample_negatives(seed, [tf.shape(centers)[0], k * share])  # [B, KN]
        # A negative stands for `k / KN` of a negative for every valid pair whose context
        # it is not (word2vec.c skips a negative equal to the target).
        hits = tf.cast(neg[:, None, :] == contexts[:, :, None], tf.float32)   # [B, C, KN]
        neg_weight = (tf.reduce_sum(mask, 1, keepdims=True)
                      - tf.einsum("bc,bck->bk", mask, hits)) / tf.cast(share, tf.float32)
        targets = tf.concat([contexts, neg], 1)                               # [B, C+KN]
        weights = tf.concat([mask, neg_weight], 1)
        labels = tf.concat([tf.ones_like(mask), tf.zeros_like(neg_weight)], 1)
        return self._sgns(u, centers, targets, labels, weights, tf.reduce_sum(mask), None)

    def _cbow(self, centers, contexts, mask, seed):
        count = tf.reduce_sum(mask, 1, keepdims=True)                         # [B, 1]
        rows = tf.nn.embedding_lookup(self.input_embeddings, contexts)       # [B, C, d]
        h = tf.reduce_sum(rows * mask[:, :, None], 1) / tf.maximum(count, 1.0)
        valid = tf.cast(count > 0, tf.float32)                               # [B, 1]
        if self.spec.loss == "nce":
            return self._nce(h, centers, valid[:, 0], seed, context=(contexts, mask))
        neg = self.sample_negatives(seed, [tf.shape(centers)[0], self.spec.negatives])
        targets = tf.concat([centers[:, None], neg], 1)                       # [B, 1+K]
        weights = tf.concat([valid, tf.cast(neg != centers[:, None], tf.float32) * valid], 1)
        labels = tf.concat([tf.ones_like(valid), tf.zeros_like(weights[:, 1:])], 1)
        return self._sgns(h, None, targets, labels, weights, tf.reduce_sum(valid),
                          (contexts, mask))

    def _sgns(self, h, centers, targets, labels, weights, count, context):
        """Negative-sampling loss of inputs h [B, d] against output rows `targets` [B, T]."""
        v = tf.nn.embedding_lookup(self.output_embeddings, targets)          # [B, T, d]
        logits = tf.einsum("bd,btd->bt", h, v)
        signed = tf.where(labels > 0, logits, -logits)
        loss_sum = -tf.reduce_sum(weights * tf.math.log_sigmoid(signed))
        g = (tf.sigmoid(logits) - labels) * weights                           # dL/dlogit
        grad_h = tf.einsum("bt,btd->bd", g, v)                                # [B, d]
        grad_v = g[:, :, None] * h[:, None, :]                                # [B, T, d]
        grads = {"output_embeddings": self._slices(grad_v, targets, self.output_embeddings)}
        grads["input_embeddings"] = self._input_grads(grad_h, centers, context)
        return loss_sum, count, grads

    def _nce(self, inputs, labels, weights, seed, centers=None, input_rows=1, context=None):
        """tf.nn.nce_loss over P rows: inputs [P, d], labels [P], per-row weights [P]."""
        k = self.spec.negatives
        sampled = self.sample_negatives(seed, [k])                            # [K]
        rows = tf.concat([labels, sampled], 0)                                # [P+K]
        w = tf.nn.embedding_lookup(self.output_embeddings, rows)
        b = tf.nn.embedding_lookup(self.output_bias, rows)
        p = tf.shape(labels)[0]
        # Expected counts under the noise distribution; floor keeps log() finite on pad rows.
        expected = tf.maximum(float(k) * tf.gather(self._noise, rows), 1e-12)
        sampled_values = (tf.range(p, p + k, dtype=tf.int64), expected[:p, None], expected[p:])
        with tf.GradientTape() as tape:
            tape.watch([inputs, w, b])
            per_row = tf.nn.nce_loss(w, b, tf.range(p, dtype=tf.int64)[:, None], inputs,
                                     num_sampled=k, num_classes=p + k,
                                     sampled_values=sampled_values)
            loss_sum = tf.reduce_sum(per_row * weights)
        g_in, g_w, g_b = tape.gradient(loss_sum, [inputs, w, b])
        grads = {"output_embeddings": self._slices(g_w, rows, self.output_embeddings),
                 "output_bias": self._slices(g_b, rows, self.output_bias)}
        if context is None:                                                   # skip-gram
            d = tf.shape(inputs)[1]
            g_u = tf.reduce_sum(tf.reshape(g_in, [-1, input_rows, d]), 1)
            grads["input_embeddings"] = self._slices(g_u, centers, self.input_embeddings)
        else:
            grads["input_embeddings"] = self._input_grads(g_in, None, context)
        return loss_sum, tf.reduce_sum(weights), grads

    def _input_grads(self, grad_h, centers, context):
        if context is None:
            return self._slices(grad_h, centers, self.input_embeddings)
        contexts, mask = context                      # CBOW: the full gradient to each context
        per_row = mask[:, :, None] * grad_h[:, None, :]                       # [B, C, d]
        return self._slices(per_row, contexts, self.input_embeddings)

    @staticmethod
    def _slices(values: tf.Tensor, indices: tf.Tensor, var: Any) -> tf.IndexedSlices:
        flat = tf.reshape(indices, [-1])
        rows = tf.reshape(values, [-1, *values.shape[indices.shape.rank:]])
        return tf.IndexedSlices(rows, flat, dense_shape=tf.constant(var.shape.as_list()))

    # -- updates --------------------------------------------------------------------------
    def apply_gradients(self, grads: Mapping[str, tf.IndexedSlices], learning_rate: Any) -> None:
        """Sparse SGD: var.scatter_sub(lr * grad) per variable (duplicate rows add up)."""
        lr = tf.cast(learning_rate, tf.float32)
        for name in VARIABLES:
            if name in grads and getattr(self, name) is not None:
                g = grads[name]
                getattr(self, name).scatter_sub(
                    tf.IndexedSlices(g.values * lr, g.indices, g.dense_shape))

    def train_step(self, batch: Any, learning_rate: Any) -> tf.Tensor:
        loss, grads = self.compute_gradients(batch)
        self.apply_gradients(grads, learning_rate)
        return loss

    def compiled_trainer(self, jit: bool = True, tables: Sequence[tf.Variable] | None = None
                         ) -> Any:
        """tf.function (centers [S,B], contexts [S,B,C], mask [S,B,C], seeds [S,2], lr0, lr1)
        -> (summed loss, pairs) running the S stacked batches in one in-graph loop.

        One Python call and one XLA launch per S steps; the learning rate goes linearly from
        lr0 (first step) towards lr1 (after the last). `pairs` counts pairs (CBOW: centres).
        XLA compiles once per concrete shape (the stage feeds one shape per window radius).
        `tables`: train these variables (same shapes, `variables_by_name` order) instead of
        the model's own, e.g. a replica's (tasks/embeddings/replicas.py); every set of tables
        shares this model's one trace and one compilation per shape.
        """
        if jit not in self._trainers:
            self._trainers[jit] = self._table_trainer(jit)
        own = tuple(self.variables_by_name().values())
        return functools.partial(self._trainers[jit], own if tables is None else tuple(tables))

    def _table_trainer(self, jit: bool) -> Any:
        # Tables are arguments, not captures: XLA locks the variables of a running call, so
        # replicas need their own variables, and as arguments they reuse one compilation.
        @tf.function(jit_compile=jit, reduce_retracing=True)
        def run(tables, centers, contexts, mask, seeds, lr0, lr1):
            model = self._over(tables)
            n = tf.shape(centers)[0]
            total, count = tf.constant(0.0), tf.constant(0.0)
            for i in tf.range(n):
                frac = tf.cast(i, tf.float32) / tf.cast(n, tf.float32)
                loss_sum, pairs, grads = model.forward((centers[i], contexts[i], mask[i],
                                                        seeds[i]))
                model.apply_gradients(grads, lr0 + (lr1 - lr0) * frac)
                total, count = total + loss_sum, count + pairs
            return total, count

        return run

    def _over(self, tables: Sequence[tf.Variable]) -> Word2VecModel:
        """This model's computations over `tables` (a shallow copy holding them)."""
        names = list(self.variables_by_name())
        if all(t is getattr(self, n) for n, t in zip(names, tables, strict=True)):
            return self
        view = copy.copy(self)
        for name, table in zip(names, tables, strict=True):
            object.__setattr__(view, name, table)
        return view

    def variables_by_name(self) -> dict[str, tf.Variable]:
        return {n: getattr(self, n) for n in VARIABLES if getattr(self, n) is not None}
