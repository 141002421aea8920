"""word2vec batch generation: sentence boundaries, dynamic windows, sub-sampling, determinism,
sharding, chunking and the bucketed calls of the compiled trainer."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from tasks.embeddings import inputs as wi
from tasks.embeddings.model import Word2VecSpec

# Token i has id i + 2 (ids unique per position), so every pair maps back to positions.
LENGTHS = [5, 1, 9, 3, 12, 2, 7, 8, 4, 6] * 3


def corpus() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = sum(LENGTHS)
    ids = np.arange(2, n + 2, dtype=np.int32)
    starts = np.concatenate([[0], np.cumsum(LENGTHS)[:-1]]).astype(np.int64)
    sentence = np.repeat(np.arange(len(LENGTHS)), LENGTHS)
    return ids, starts, sentence


def vocab(n: int, keep: float = 1.0) -> SimpleNamespace:
    keep_prob = np.r_[0.0, 0.0, np.full(n, keep)].astype(np.float32)
    return SimpleNamespace(keep_prob=keep_prob, noise_prob=keep_prob / keep_prob.sum())


def spec(model: str = "skipgram", window: int = 3) -> Word2VecSpec:
    return Word2VecSpec(vocab_size=200, dims=4, model=model, window=window, seed=0)


def pairs_of(batches) -> list[tuple[int, int]]:
    return [(int(c), int(x)) for b in batches for c, x in zip(b.centers, b.contexts, strict=True)]


def test_skipgram_pairs_stay_in_sentence_and_window():
    ids, starts, sentence = corpus()
    pairs = pairs_of(wi.batches(ids, starts, vocab(len(ids)), spec(), 16, epoch=0, seed=1))
    assert pairs
    for c, x in pairs:
        pc, px = c - 2, x - 2
        assert sentence[pc] == sentence[px] and 1 <= abs(pc - px) <= 3
    # One-word sentences give no pairs; every other token is a centre at least once.
    centres = {c - 2 for c, _ in pairs}
    singles = {int(s) for s, n in zip(starts, LENGTHS, strict=True) if n == 1}
    assert centres == set(range(len(ids))) - singles


def test_dynamic_window_draws_every_radius():
    ids, starts, _ = corpus()
    radii = []
    for epoch in range(5):
        _, _, mask, radius = wi.chunk_examples(ids, wi.sentence_ids(len(ids), starts), 0,
                                               len(ids), vocab(len(ids)).keep_prob, 3,
                                               wi.chunk_rng(1, epoch, 0))
        offsets = np.abs(wi.offsets(3))[None, :]
        assert (np.where(mask, offsets, 0) <= radius[:, None]).all()
        radii.extend(radius.tolist())
    counts = np.bincount(radii, minlength=4)[1:]
    assert counts.min() > 0.2 * len(radii)            # ~uniform over 1..3


def test_subsampling_drops_tokens_with_keep_prob_zero():
    ids, starts, _ = corpus()
    v = vocab(len(ids))
    v.keep_prob[2::2] = 0.0                            # every even id never kept
    pairs = pairs_of(wi.batches(ids, starts, v, spec(), 32, epoch=0, seed=3))
    assert pairs and all(c % 2 == 1 and x % 2 == 1 for c, x in pairs)


def test_deterministic_per_seed_and_epoch():
    ids, starts, _ = corpus()
    v = vocab(len(ids), keep=0.7)

    def run(seed, epoch):
        return pairs_of(wi.batches(ids, starts, v, spec(), 8, epoch=epoch, seed=seed))

    assert run(5, 0) == run(5, 0)
    assert run(5, 0) != run(5, 1) and run(5, 0) != run(6, 0)


def test_shards_split_the_chunks_without_overlap():
    ids, starts, _ = corpus()
    v = vocab(len(ids))
    whole = pairs_of(wi.batches(ids, starts, v, spec(), 8, 0, 2, chunk_tokens=20))
    parts = [pairs_of(wi.batches(ids, starts, v, spec(), 8, 0, 2, shard_index=k, num_shards=2,
                                 chunk_tokens=20)) for k in range(2)]
    assert parts[0] and parts[1]
    assert sorted(parts[0] + parts[1]) == sorted(whole)
    assert not set(parts[0]) & set(parts[1])


def test_cbow_batches_and_seeds():
    ids, starts, _ = corpus()
    batches = list(wi.batches(ids, starts, vocab(len(ids)), spec("cbow"), 10, 0, 4))
    first = batches[0]
    assert first.contexts.shape == (10, 6) and first.context_mask.dtype == np.float32
    assert (first.context_mask.sum(axis=1) >= 1).all()
    assert (first.contexts[first.context_mask == 0] == 0).all()
    tags = [int(b.seed[1]) for b in batches]
    assert len(set(tags)) == len(tags) and all(int(b.seed[0]) == 4 for b in batches)
    assert all(len(b.centers) == 10 for b in batches[:-1])


def test_chunks_start_at_sentences_and_cut_very_long_ones():
    ids, starts, _ = corpus()
    bounds = wi.chunk_bounds(len(ids), starts, chunk_tokens=40)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(ids)
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    assert all(lo in set(starts.tolist()) for lo, _ in bounds)
    one_line = wi.chunk_bounds(1000, np.array([0]), chunk_tokens=300)   # text8-like
    assert one_line == [(0, 300), (300, 600), (600, 900), (900, 1000)]


def test_bucketed_calls_cover_the_same_pairs_in_fixed_shapes():
    ids, starts, _ = corpus()
    v, s = vocab(len(ids)), spec()
    sent = wi.sentence_ids(len(ids), starts)
    calls = wi.bucketed_calls(ids, sent, 0, len(ids), v.keep_prob, s, 12, {1: 2, 2: 3, 3: 1},
                              seed=1, epoch=0, chunk=0)
    got = []
    for call in calls:
        b = call.batch
        steps, rows, width = b.contexts.shape
        assert width == call.width and b.centers.shape == (steps, rows)
        assert rows == wi.centres_per_step(s, 12, width // 2) and b.seed.shape == (steps, 2)
        for c, x in zip(b.centers.reshape(-1), b.contexts.reshape(-1, width), strict=True):
            got.extend((int(c), int(ctx)) for ctx in x if ctx)
    c, x, m, _ = wi.chunk_examples(ids, sent, 0, len(ids), v.keep_prob, 3, wi.chunk_rng(1, 0, 0))
    expected = [(int(cc), int(xx)) for cc, row, mm in zip(c, x, m, strict=True)
                for xx, ok in zip(row, mm, strict=True) if ok]
    assert sorted(got) == sorted(expected)
    assert [call.width for call in calls[:3]] == [2, 4, 6]     # radii interleaved


def test_sentence_index_slices_equal_the_per_token_sentence_numbers():
    ids, starts, sentence = corpus()
    sent = wi.sentence_ids(len(ids), starts)
    assert len(sent) == len(ids) and np.asarray(sent).tolist() == sentence.tolist()
    for lo, hi in [(0, 5), (3, 17), (len(ids) - 4, len(ids)), (7, 7)]:
        got = sent[lo:hi]
        assert got.dtype == np.int32 and got.tolist() == sentence[lo:hi].tolist()
