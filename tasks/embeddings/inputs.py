"""word2vec training examples from the encoded corpus, vectorised in NumPy and deterministic.

Inputs: `ids` int32 [N_tokens] and `sentence_starts` int64 [N_sentences] from
`tasks.text.vocabulary.encode_file`, and the vocabulary's `keep_prob` / `noise_prob` arrays.

The corpus is cut into chunks of about `CHUNK_TOKENS` tokens at sentence starts, so memory
stays bounded and a window never needs a neighbouring chunk. Per (seed, epoch, chunk), with a
NumPy generator seeded by exactly those three numbers (so any chunk can be regenerated alone,
which is how a resumed run skips to its saved position):
1. sub-sampling: token t is kept with probability keep_prob[id] (word2vec.c; <pad>/<unk> have
   keep_prob 0, so out-of-vocabulary tokens vanish as in word2vec.c);
2. dynamic window: each kept centre draws its radius b uniformly from 1..window;
3. contexts: the kept tokens at offsets -b..-1, 1..b of the centre, in the same sentence
   (windows never cross sentence boundaries). No per-pair Python loop anywhere.

`chunk_examples` returns the padded form: centres int32 [n], contexts int32 [n, 2W] (columns
are offsets -W..-1, 1..W), mask bool [n, 2W], radius int32 [n]; centres without any context
(one-word sentences) are dropped.

`batches(...)` is the generic batch stream (the distributed trainer uses it): every item is a
`Batch` (a NamedTuple, so also a plain tuple of arrays), a worker reading only its shard
(chunks k with k % num_shards == shard_index):
- skip-gram: centers int32 [B], contexts int32 [B] (one pair per row, B = batch_size pairs),
  context_mask float32 [B] (ones), seed int64 [2];
- CBOW: centers int32 [B], contexts int32 [B, 2W], context_mask float32 [B, 2W] (B =
  batch_size centres), seed int64 [2].
`seed` = [seed, serial of the batch]: the model draws its negatives from it with TF's
stateless RNG, so a batch always gets the same negatives. The last batch may be short.

The single-process stage uses `bucketed_calls` instead: the same examples grouped by radius b
(contexts [n, 2b], no padding columns), in fixed-shape calls of `steps` batches for the
compiled trainer (tasks/embeddings/model.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

CHUNK_TOKENS = 1 << 20  # ~1M tokens: ~40 MB of examples per chunk at window 5


class Batch(NamedTuple):
    centers: np.ndarray
    contexts: np.ndarray
    context_mask: np.ndarray
    seed: np.ndarray


class SentenceIndex:
    """Sentence index of every token, computed per slice from the sentence starts.

    `index[lo:hi]` is int32 [hi - lo], the same as a materialised per-token array would give,
    but only the starts (int64 [N_sentences], ~20x fewer than tokens) are held: at 100M tokens
    a per-token int32 array would cost 400 MB for the whole run.
    """

    def __init__(self, n_tokens: int, sentence_starts: np.ndarray) -> None:
        starts = np.asarray(sentence_starts, np.int64)
        self.n_tokens = int(n_tokens)
        self.starts = starts[(starts > 0) & (starts < n_tokens)]

    def __len__(self) -> int:
        return self.n_tokens

    def __getitem__(self, where: slice) -> np.ndarray:
        lo, hi, step = where.indices(self.n_tokens)
        positions = np.arange(lo, hi, step, dtype=np.int64)
        return np.searchsorted(self.starts, positions, side="right").astype(np.int32)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype)


def sentence_ids(n_tokens: int, sentence_starts: np.ndarray) -> SentenceIndex:
    """Sentence index of every token, as a `SentenceIndex` (slice it: `sent[lo:hi]`)."""
    return SentenceIndex(n_tokens, sentence_starts)


def chunk_bounds(n_tokens: int, sentence_starts: np.ndarray,
                 chunk_tokens: int = CHUNK_TOKENS) -> list[tuple[int, int]]:
    """[lo, hi) token ranges of about chunk_tokens, cut at sentence starts.

    A sentence longer than a quarter chunk past the target (text8 is one 17M-token line) is cut
    mid-sentence, as word2vec.c cuts at MAX_SENTENCE_LENGTH: windows stop at the cut.
    """
    starts = np.asarray(sentence_starts, np.int64)
    cuts = [0]
    while cuts[-1] + chunk_tokens < n_tokens:
        target = cuts[-1] + chunk_tokens
        i = int(np.searchsorted(starts, target))
        nxt = min(int(starts[i]) if i < len(starts) else n_tokens, n_tokens)
        cuts.append(nxt if nxt <= target + chunk_tokens // 4 else target)
    cuts.append(n_tokens)
    return [(lo, hi) for lo, hi in zip(cuts[:-1], cuts[1:], strict=True) if hi > lo]


def offsets(window: int) -> np.ndarray:
    """Column offsets of the padded context matrix: -W..-1, 1..W, int32 [2W]."""
    return np.array([o for o in range(-window, window + 1) if o], np.int32)


def chunk_examples(ids: np.ndarray, sent: np.ndarray, lo: int, hi: int, keep_prob: np.ndarray,
                   window: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Sub-sample tokens [lo, hi) and build the padded windows (see the module docstring)."""
    tokens = ids[lo:hi]
    keep = rng.random(hi - lo, dtype=np.float32) < keep_prob[tokens]
    kept, ksent = tokens[keep], sent[lo:hi][keep]
    n = len(kept)
    radius = rng.integers(1, window + 1, n, dtype=np.int32)
    off = offsets(window)
    pos = np.arange(n, dtype=np.int32)[:, None] + off            # [n, 2W]
    inside = (pos >= 0) & (pos < n)
    pos = np.clip(pos, 0, max(n - 1, 0))
    mask = inside & (np.abs(off) <= radius[:, None]) & (ksent[pos] == ksent[:, None])
    has = mask.any(axis=1)
    contexts = np.where(mask, kept[pos], 0).astype(np.int32)
    return kept[has], contexts[has], mask[has], radius[has]


def chunk_rng(seed: int, epoch: int, chunk: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, chunk])


def batches(ids: np.ndarray, sentence_starts: np.ndarray, vocab: Any, spec: Any,
            batch_size: int, epoch: int, seed: int, shard_index: int = 0,
            num_shards: int = 1, chunk_tokens: int = CHUNK_TOKENS) -> Iterator[Batch]:
    """This shard's batches of one epoch (see the module docstring for the layouts)."""
    sent = sentence_ids(len(ids), sentence_starts)
    keep_prob = np.asarray(vocab.keep_prob, np.float32)
    serial = 0
    for k, (lo, hi) in enumerate(chunk_bounds(len(ids), sentence_starts, chunk_tokens)):
        if k % num_shards != shard_index:
            continue
        centers, contexts, mask, _ = chunk_examples(ids, sent, lo, hi, keep_prob, spec.window,
                                                    chunk_rng(seed, epoch, k))
        if spec.model == "skipgram":
            rows, cols = np.nonzero(mask)                  # corpus order, left to right
            centers, contexts = centers[rows], contexts[rows, cols]
            mask = np.ones(len(rows), np.float32)
        else:
            mask = mask.astype(np.float32)
        for start in range(0, len(centers), batch_size):
            stop = start + batch_size
            tag = ((epoch * num_shards + shard_index) << 32) + serial
            serial += 1
            yield Batch(centers[start:stop], contexts[start:stop], mask[start:stop],
                        np.array([seed, tag], np.int64))


class Call(NamedTuple):
    """One compiled-trainer call: `steps` batches of one radius bucket, stacked."""

    width: int              # 2b context columns
    real: int               # real (unpadded) centres in this call
    batch: Batch            # centers [S, B], contexts [S, B, 2b], mask [S, B, 2b], seed [S, 2]


NCE_MAX_ROWS = 128  # word2vec_basic's batch: nce_loss shares its noise words across a step


def centres_per_step(spec: Any, batch_size: int, radius: int) -> int:
    """Skip-gram: ~batch_size pairs per step (2b per centre); CBOW: batch_size centres.

    With loss nce at most NCE_MAX_ROWS pairs (centres) per step: tf.nn.nce_loss shares its
    noise words across the step, so their summed update grows with the step (and diverges at
    thousands of pairs, measured).
    """
    if spec.loss == "nce":
        batch_size = min(batch_size, NCE_MAX_ROWS)
    if spec.model == "skipgram":
        return max(1, batch_size // (2 * radius))
    return batch_size


def bucketed_calls(ids: np.ndarray, sent: np.ndarray, lo: int, hi: int, keep_prob: np.ndarray,
                   spec: Any, batch_size: int, steps: int | Mapping[int, int], seed: int,
                   epoch: int, chunk: int) -> list[Call]:
    """A chunk's examples grouped by radius, as fixed-shape calls interleaved round-robin.

    `steps`: batches per call, one number or one per radius b (1..window).
    Interleaving keeps the training order mixed across radii at the granularity of one call.
    The last call of a bucket is padded with centre 0 and an all-zero mask (no update).
    """
    centers, contexts, mask, radius = chunk_examples(ids, sent, lo, hi, keep_prob, spec.window,
                                                     chunk_rng(seed, epoch, chunk))
    w = spec.window
    per_bucket: list[list[Call]] = []
    for b in range(1, w + 1):
        sel = radius == b
        if not sel.any():
            continue
        cols = slice(w - b, w + b)                             # offsets -b..-1, 1..b
        c, x, m = centers[sel], contexts[sel, cols], mask[sel, cols].astype(np.float32)
        rows = centres_per_step(spec, batch_size, b)
        n_steps = steps[b] if isinstance(steps, Mapping) else steps
        per_call = rows * n_steps
        calls = []
        for start in range(0, len(c), per_call):
            cc, xx, mm = c[start:start + per_call], x[start:start + per_call], \
                m[start:start + per_call]
            pad = per_call - len(cc)
            if pad:
                cc = np.pad(cc, (0, pad))
                xx, mm = np.pad(xx, ((0, pad), (0, 0))), np.pad(mm, ((0, pad), (0, 0)))
            calls.append((2 * b, len(c[start:start + per_call]), cc.reshape(n_steps, rows),
                          xx.reshape(n_steps, rows, 2 * b), mm.reshape(n_steps, rows, 2 * b)))
        per_bucket.append(calls)
    ordered: list[Call] = []
    for r in range(max((len(calls) for calls in per_bucket), default=0)):
        for calls in per_bucket:
            if r < len(calls):
                width, real, cc, xx, mm = calls[r]
                # unique per (epoch, chunk, call, step): the stateless seed of the negatives
                base = ((epoch << 20) + chunk) << 32
                n_steps = len(cc)
                tags = base + (len(ordered) << 16) + np.arange(n_steps, dtype=np.int64)
                seeds = np.stack([np.full(n_steps, seed, np.int64), tags], axis=1)
                ordered.append(Call(width, real, Batch(cc, xx, mm, seeds)))
    return ordered
