"""Placements of the word2vec Trainer (tasks/embeddings/placement.py).

The all-reduce itself runs in real jobs (tests/test_distributed_training.py: one sync worker
trains the stage's vectors bit for bit; two workers end identical after a kill and resume).
Here: how a round's calls are shared out, which every worker computes on its own.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.embeddings.placement import Local, SyncWorkers


def test_local_trains_every_call_and_exchanges_nothing():
    place = Local()
    calls = list(range(7))
    assert place.share(calls) == calls
    assert place.exchange(3.5, 10.0) == (3.5, 10.0)
    assert place.is_chief and place.count == 1 and place.rounds_per_exchange == 1


@given(n_calls=st.integers(0, 200), workers=st.integers(1, 16))
def test_sync_workers_share_every_call_exactly_once(n_calls, workers):
    calls = list(range(n_calls))
    shares = [SyncWorkers(None, i, workers, 4).share(calls) for i in range(workers)]
    assert sorted(c for share in shares for c in share) == calls
    # balanced: no worker trains more than one call more than another
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_only_worker_zero_is_chief_and_exchange_needs_start():
    workers = [SyncWorkers(None, i, 3, 0) for i in range(3)]
    assert [w.is_chief for w in workers] == [True, False, False]
    assert workers[0].rounds_per_exchange == 1          # at least one local round
    with pytest.raises(RuntimeError, match="start"):
        workers[1].exchange(1.0, 2.0)
