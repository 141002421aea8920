"""Asynchronous placement of the word2vec trainer: the tables live on parameter servers.

Params: `distributed.push_every`, `distributed.timeout`, `word2vec.threads`. Used by
tasks/distributed/worker.py (an async job: `ps` tasks running a tf.distribute.Server, and
`workers` tasks each running the word2vec stage's Trainer with an `AsyncWorkers`).

- The parameter servers hold the job's tables, row-sharded: with P servers each [V, d] (or
  [V]) table is split into P contiguous row blocks, block p on /job:ps/task:p. Server 0 also
  holds the bookkeeping: `generation` (initialised once the chief wrote the tables), `positions`
  [W, 4] int64 (each worker's step, epoch, chunk, call at its last exchange) and `finished` [W].
- Every worker trains its own copy with the stage's compiled calls and thread replicas, on its
  share of every round (calls w, w + W, ... as the sync workers), and after `push_every`
  local rounds pushes its update since its last pull and pulls the current tables, in one
  request. No barrier: a worker never waits for another. The price is staleness: a pushed
  update was computed on tables up to one exchange interval old, and is added to whatever the
  other workers pushed meanwhile (Downpour-style asynchronous SGD with local steps). Updates
  are summed as the stage sums its thread replicas: in full for up to MERGE_WIDTH replicas in
  all, scaled down to that many replicas' worth beyond (placement.py explains why).
- Transport: TensorFlow's between-graph replication. Each worker opens a tf.compat.v1.Session
  on server 0 (device_filters: the ps job only, so no worker needs a server of its own); a
  variable of the same name on the same server is one resource for every session. A push +
  pull of the two [30k, 100] tables takes 50-100 ms on loopback (measured).
- Start: the chief (worker 0) writes its tables (restored checkpoint or fresh initialisation)
  and its position for every worker, then initialises `generation`; the others wait for it, then
  take the tables and their own position row. A worker restarted alone (the launcher does that
  for workers other than the chief) resumes at its last exchange's position with the current
  tables: it repeats at most one round of its share. A restarted server or chief restarts the
  whole job from the chief's checkpoint.
- End: every worker marks itself finished after its last exchange; the chief waits for all,
  then pulls the final tables (the Trainer saves them as its last checkpoint).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from tasks.core.errors import PipelineError
from tasks.embeddings.placement import MERGE_WIDTH

POLL_SECONDS = 0.2
# Updates and pulls cross the network as float16: half the bytes, and half the server's CPU
# per exchange (measured: ~57 ms vs ~106 ms with float32 for 2 x [30k, 100] tables; that CPU
# is what a job loses on a shared machine). The servers keep and add in float32, and
# a worker's update is taken against the float16 tables it pulled, so rounding never
# accumulates on the servers: a worker only trains from tables rounded to ~5e-4 relative.
WIRE_DTYPE = "float16"


class AsyncWorkers:
    """Worker `index` of `count`, pushing to and pulling from `servers` (host:port, ps order)."""

    needs_exchange = True

    def __init__(self, servers: Sequence[str], index: int, count: int, push_every: int,
                 threads: int = 1, timeout: float = 3600.0) -> None:
        self.servers, self.index, self.count = list(servers), index, count
        self.threads = max(1, int(threads) // count)   # word2vec.threads spread over workers
        self.is_chief = index == 0
        self.rounds_per_exchange = max(1, int(push_every))
        self.timeout = timeout
        # every replica's update in full up to MERGE_WIDTH replicas in all, averaged beyond
        self.scale = min(1.0, MERGE_WIDTH / (count * self.threads))
        self.exchanges, self.exchange_seconds = 0, 0.0

    def share(self, calls: Sequence[Any]) -> Sequence[Any]:
        return calls[self.index::self.count]

    def local_threads(self, threads: int) -> int:
        return self.threads

    # -- the graph on the servers ----------------------------------------------------------
    def _build(self, tables: dict[str, Any]) -> None:
        import tensorflow as tf

        v1 = tf.compat.v1
        graph = tf.Graph()
        servers = len(self.servers)
        self._bounds = {}
        with graph.as_default():
            blocks: list[Any] = []
            # Per block, on its server (so the casts run there and float16 crosses the wire):
            # the exact initial value, the float16 update, the float16 pull after it.
            self._init_feeds, self._feeds, adds, pulls = [], [], [], []
            for name, table in tables.items():
                rows = int(table.shape[0])
                bounds = np.linspace(0, rows, servers + 1).astype(int)   # row blocks per server
                self._bounds[name] = bounds
                for p in range(servers):
                    with tf.device(f"/job:ps/task:{p}"):
                        block = v1.get_variable(
                            f"w2v/{name}/{p}", [bounds[p + 1] - bounds[p], *table.shape[1:]],
                            table.dtype, v1.zeros_initializer(), trainable=False,
                            use_resource=True)
                        blocks.append(block)
                        self._init_feeds.append(v1.placeholder(table.dtype, block.shape))
                        self._feeds.append(v1.placeholder(WIRE_DTYPE, block.shape))
                        adds.append(block.assign_add(tf.cast(self._feeds[-1], block.dtype),
                                                     read_value=False))
                        with tf.control_dependencies(adds[-1:]):   # the pull sees the push
                            pulls.append(tf.cast(block.read_value(), WIRE_DTYPE))
            with tf.device("/job:ps/task:0"):
                generation = v1.get_variable("w2v/generation", [], tf.int64,
                                             v1.zeros_initializer(), use_resource=True)
                positions = v1.get_variable("w2v/positions", [self.count, 4], tf.int64,
                                            v1.zeros_initializer(), use_resource=True)
                finished = v1.get_variable("w2v/finished", [self.count], tf.int64,
                                           v1.zeros_initializer(), use_resource=True)
                self._position = v1.placeholder(tf.int64, [4])
                self._all_positions = v1.placeholder(tf.int64, [self.count, 4])
                writes = [b.assign(f, read_value=False) for b, f in zip(
                    blocks, self._init_feeds, strict=True)]
                writes += [positions.assign(self._all_positions, read_value=False),
                           finished.assign(tf.zeros([self.count], tf.int64), read_value=False)]
                with tf.control_dependencies(writes):   # visible only once everything is there
                    self._init = generation.assign(tf.constant(1, tf.int64), read_value=False)
                self._ready = tf.raw_ops.VarIsInitializedOp(resource=generation.handle)
                self._reads = [b.read_value() for b in blocks]   # exact (start and end)
                self._own_position = positions[self.index]
                moved = positions.scatter_update(
                    tf.IndexedSlices(self._position[None], tf.constant([self.index])))
                self._push_pull = [pulls, moved]
                self._mark_finished = finished.scatter_update(
                    tf.IndexedSlices(tf.constant([1], tf.int64), tf.constant([self.index])))
                self._all_finished = tf.reduce_min(finished) > 0
        config = v1.ConfigProto(device_filters=["/job:ps"])
        self._session = v1.Session(f"grpc://{self.servers[0]}", graph=graph, config=config)
        self._tables = list(tables.values())

    def _split(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Local tables -> the server blocks, in the order of _feeds."""
        return [a[b[p]:b[p + 1]] for a, b in zip(arrays, self._bounds.values(), strict=True)
                for p in range(len(self.servers))]

    def _set_tables(self, blocks: Sequence[np.ndarray]) -> None:
        """Server blocks -> the local tables (and the anchor of the next push)."""
        parts = len(self.servers)
        self._anchor = [np.concatenate(blocks[i * parts:(i + 1) * parts])
                        for i in range(len(self._tables))]
        for table, value in zip(self._tables, self._anchor, strict=True):
            table.assign(value)

    def _run(self, fetches: Any, feeds: Any = None, what: str = "the parameter servers") -> Any:
        """session.run, retried while the servers are still starting (or restarting)."""
        import tensorflow as tf

        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return self._session.run(fetches, feeds)
            except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError):
                if time.monotonic() > deadline:
                    raise PipelineError(f"distributed: {what} unreachable for "
                                        f"{self.timeout:.0f} s ({self.servers})") from None
                time.sleep(POLL_SECONDS)

    def _wait(self, ready: Any, what: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not self._run(ready):
            if time.monotonic() > deadline:
                raise PipelineError(f"distributed: timed out after {self.timeout:.0f} s "
                                    f"waiting for {what}")
            time.sleep(POLL_SECONDS)

    # -- the placement -----------------------------------------------------------------------
    def start(self, model: Any, state: Sequence[Any]) -> None:
        """The chief publishes its state; the others take it (and their own position)."""
        self._build(model.variables_by_name())
        self._state = list(state)[:4]      # step, epoch, chunk, call
        if self.is_chief:
            feeds = dict(zip(self._init_feeds, self._split([t.numpy() for t in self._tables]),
                             strict=True))
            position = [int(v.numpy()) for v in self._state]
            feeds[self._all_positions] = np.tile(position, (self.count, 1))
            self._run(self._init, feeds)
            self._anchor = [t.numpy() for t in self._tables]
            return
        self._wait(self._ready, "the chief to write the tables to the parameter servers")
        blocks, position = self._run([self._reads, self._own_position])
        self._set_tables(blocks)
        for var, value in zip(self._state, position, strict=True):
            var.assign(int(value))

    def exchange(self, loss_sum: float, count: float) -> tuple[float, float]:
        """Push this worker's update since its last pull, pull the current tables."""
        started = time.perf_counter()
        deltas = [((t.numpy() - a) * self.scale).astype(WIRE_DTYPE)
                  for t, a in zip(self._tables, self._anchor, strict=True)]
        feeds = dict(zip(self._feeds, self._split(deltas), strict=True))
        feeds[self._position] = [int(v.numpy()) for v in self._state]
        pulled, _ = self._run(self._push_pull, feeds)
        self._set_tables([b.astype(np.float32) for b in pulled])
        self.exchanges += 1
        self.exchange_seconds += time.perf_counter() - started
        return loss_sum, count   # this worker's own: nobody waits to add them up

    def finish(self, model: Any) -> bool:
        """Mark this worker done; the chief waits for all and takes the final tables."""
        self._run(self._mark_finished)
        if not self.is_chief:
            return False
        self._wait(self._all_finished, "every worker to finish")
        self._set_tables(self._run(self._reads))
        return True
