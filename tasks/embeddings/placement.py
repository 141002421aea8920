"""Where the word2vec trainer runs: one process, or one of several synchronous workers.

Params: `distributed.exchange_every` (sync workers). Used by tasks/embeddings/training.py
(the one training loop) and tasks/distributed/worker.py (which builds a `SyncWorkers`).

The Trainer groups a chunk's compiled calls into rounds. A placement decides which calls of a
round this process trains and what happens after the process has trained (and merged, see
replicas.py) its share:

- `Local` (the word2vec stage): every call, nothing to exchange.
- `SyncWorkers` (MultiWorkerMirroredStrategy, W processes): the stage's `word2vec.threads`
  replicas are spread over the workers (threads // W each, at least 1). A round is
  W x exchange_every x the local round (2 calls per thread); worker w trains calls w, w + W,
  ... of it, local round by local round, on its own replicas (merged after each as in the
  stage), then the workers all-reduce (SUM) their updates since the last exchange, and how
  many workers changed each row, and every worker applies the sum to the state of that
  exchange:

      tables <- anchor + scale_row * sum_w (tables_w - anchor)        anchor <- tables
      scale_row = min(1, MERGE_WIDTH / (workers that changed the row x threads per worker))

  This is periodic model averaging with summed updates, the stage's thread merge across
  processes: a row one worker touched gets exactly its update, and with as many replicas in
  all as the stage has threads (2) the merge is the stage's sum. Summing more replicas
  diverged (4 replicas at the default learning rate: loss inf in epoch 2), so beyond
  MERGE_WIDTH a row's updates are averaged down to two replicas' worth (measured: stable, but
  frequent rows then learn more slowly per word: docs/distributed.md). The workers are
  identical after every exchange and the sums are fixed, so a job is deterministic and a job
  resumed from the chief's checkpoint (taken after an exchange) trains the same rounds.
  Traffic per exchange: the dense [V, d] tables (24 MB at V = 30k, d = 100, both tables),
  ~110 ms over loopback gRPC for 2 workers, bought back by 2 x exchange_every calls of ~65k
  pairs per thread between exchanges; the price is staleness: the larger the round, the staler
  the rows several workers update.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

MERGE_WIDTH = 2.0   # replicas whose updates of one row are summed in full (module docstring)


class Local:
    """The single-process placement: this process trains every call."""

    index, count, is_chief, rounds_per_exchange, needs_exchange = 0, 1, True, 1, False

    def share(self, calls: Sequence[Any]) -> Sequence[Any]:
        return calls

    def local_threads(self, threads: int) -> int:
        """Training threads (replicas) of this process for `word2vec.threads`: all of them."""
        return threads

    def start(self, model: Any, state: Sequence[Any]) -> None:
        """Nothing to agree on: the restored checkpoint is the state."""

    def exchange(self, loss_sum: float, count: float) -> tuple[float, float]:
        return loss_sum, count

    def finish(self, model: Any) -> bool:
        """Nothing to wait for; True would mean the tables changed after the last round."""
        return False


class SyncWorkers:
    """Worker `index` of `count` under a MultiWorkerMirroredStrategy (module docstring).

    The model's variables are ordinary (not mirrored) variables of this process: only the
    all-reduce of `exchange` and the broadcast of `start` talk to the other workers.
    """

    def __init__(self, strategy: Any, index: int, count: int, exchange_every: int,
                 threads: int = 1) -> None:
        self.strategy, self.index, self.count = strategy, index, count
        # word2vec.threads replicas spread over the workers (at least one each)
        self.threads = max(1, int(threads) // count)
        self.is_chief = index == 0
        self.rounds_per_exchange = max(1, int(exchange_every))
        self.needs_exchange = count > 1   # one worker: the stage's loop exactly, no exchange
        self._exchange = None
        self.exchanges, self.exchange_seconds = 0, 0.0   # communication time, for the reports

    def share(self, calls: Sequence[Any]) -> Sequence[Any]:
        return calls[self.index::self.count]

    def local_threads(self, threads: int) -> int:
        return self.threads

    def _all_reduce(self, values: list[Any]) -> list[Any]:
        """SUM over the workers of `values` (tensors computed in the replica function)."""
        import tensorflow as tf

        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM,
                                                              values)

    def start(self, model: Any, state: Sequence[Any]) -> None:
        """Every worker takes the chief's tables and counters (its restored checkpoint, or
        its fresh initialisation): a broadcast as a SUM where the others send zeros."""
        import tensorflow as tf

        tables = list(model.variables_by_name().values())
        device = self.strategy.extended.worker_devices[0]
        own = 1.0 if self.is_chief else 0.0

        @tf.function
        def broadcast() -> None:
            def replica() -> None:
                variables = tables + list(state)
                with tf.device(device):   # placed values: the collective needs a device
                    values = [tf.cast(v, tf.float64) * own for v in variables]
                for var, value in zip(variables, self._all_reduce(values), strict=True):
                    var.assign(tf.cast(value, var.dtype))

            self.strategy.run(replica)

        broadcast()
        self._anchor = [tf.Variable(t, trainable=False) for t in tables]

        @tf.function
        def exchange(totals: Any) -> Any:
            def replica(totals: Any) -> Any:
                with tf.device(device):
                    # [V, d] (or [V]) per table: this worker's update since the last exchange
                    deltas = [tf.identity(t) - tf.identity(a)
                              for t, a in zip(tables, self._anchor, strict=True)]
                    # [V]: 1 where this worker changed the row
                    touched = [tf.cast(tf.reduce_any(tf.reshape(d, [tf.shape(d)[0], -1]) != 0,
                                                     axis=1), d.dtype) for d in deltas]
                    totals = tf.identity(totals)   # [2]: (summed loss, pairs) of this worker
                summed = self._all_reduce([*deltas, *touched, totals])
                n = len(tables)
                for t, a, d, c in zip(tables, self._anchor, summed[:n], summed[n:2 * n],
                                      strict=True):
                    # [V]: the sum, scaled down where more than MERGE_WIDTH replicas changed
                    # the row (c workers x their threads): summing more diverges
                    scale = tf.minimum(1.0, MERGE_WIDTH / tf.maximum(c * self.threads, 1.0))
                    merged = a + d * tf.reshape(scale, [-1] + [1] * (len(d.shape) - 1))
                    t.assign(merged)
                    a.assign(merged)
                return summed[-1]

            return self.strategy.experimental_local_results(
                self.strategy.run(replica, args=(totals,)))[0]

        self._exchange = exchange

    def exchange(self, loss_sum: float, count: float) -> tuple[float, float]:
        import tensorflow as tf

        if self._exchange is None:
            raise RuntimeError("SyncWorkers.start() must run before the first exchange")
        started = time.perf_counter()
        # float32 like the tables: one all-reduce packs values of one dtype
        totals = self._exchange(tf.constant([loss_sum, count], tf.float32)).numpy()
        self.exchanges += 1
        self.exchange_seconds += time.perf_counter() - started
        return float(totals[0]), float(totals[1])

    def finish(self, model: Any) -> bool:
        """The last exchange left every worker with the same tables: nothing to do."""
        return False
