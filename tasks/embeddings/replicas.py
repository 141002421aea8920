"""Training threads for the word2vec stage: model replicas trained side by side, merged often.

Params: `word2vec.threads` (R). Used by tasks/embeddings/training.py.

word2vec.c and gensim train with lock-free (Hogwild) threads on one pair of tables. TensorFlow
cannot do that with compiled calls: an XLA call locks every variable it touches for its
whole run, so two threads calling the trainer on one model take turns (measured: 2 threads
5.25 s vs 1 thread 5.47 s on the same 145 calls). Instead each of R threads trains its own
replica of the tables on its share of a round's calls, and after every round the replicas are
merged by summing their updates:

    master <- master + sum_i (replica_i - master)        then replica_i <- master

- A row only one replica touched gets exactly that replica's updates; a row several touched
  gets all of them, computed against a state at most one round old. That is the staleness
  Hogwild threads accept too, here bounded (one round) and deterministic: calls go to
  replicas in a fixed order and the merge is one fixed sum, so a run, and a run resumed from
  a checkpoint (always taken after a merge), give the same tables bit for bit.
- `master` is the checkpointed model; with R = 1 there are no copies and no merge (the
  master is trained directly, the single-thread trajectory of earlier versions).
- Memory: R + 1 copies of the tables ([V, d] each, 12 MB at V = 30k, d = 100).

Runtime settings, made before the first TensorFlow op (`configure_runtime`):
- each replica's XLA call runs on one core: TensorFlow's default intra-op pool made a single
  call slower, not faster, on this 2-core machine (5.74 s at 1.46 cores vs 4.78 s at 1.0
  core, same calls), and R calls need the cores to themselves;
- XLA's persistent compilation cache (TensorFlow's `--tf_xla_persistent_cache_directory`) in
  $PIPELINE_XLA_CACHE (default ~/.cache/w2v-cnn/xla, kept under 256 MB; empty = off): one
  compilation per window radius costs ~1.3 s, ~7 s per run; ~3 s when a new process (a
  re-run of the stage) finds the programs there.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CALLS_PER_REPLICA = 2   # calls each replica trains between merges (see docs/word2vec.md)
CACHE_MAX_BYTES = 256 << 20   # XLA compilation cache size kept by prune_cache


def configure_runtime() -> None:
    """One intra-op thread per TF call and the XLA compilation cache (module docstring).

    Only possible before TensorFlow's runtime starts; in a process that already ran TF ops
    (a test session) nothing changes: training is the same, only slower.
    """
    import tensorflow as tf

    cache = cache_folder()
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if cache and "tf_xla_persistent_cache_directory" not in flags:   # the user's choice wins
        try:
            Path(cache).mkdir(parents=True, exist_ok=True)
            prune_cache(Path(cache))
        except OSError as exc:        # e.g. a read-only home in a container: compile each run
            log.info("XLA compilation cache off (%s: %s)", cache, exc.strerror or exc)
        else:
            os.environ["TF_XLA_FLAGS"] = f"{flags} --tf_xla_persistent_cache_directory={cache}"
    if tf.config.threading.get_intra_op_parallelism_threads() == 1:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
    except RuntimeError:
        log.debug("TensorFlow already initialised: intra-op threads left as they are")


def cache_folder() -> str:
    """$PIPELINE_XLA_CACHE, default ~/.cache/w2v-cnn/xla ("" = no cache)."""
    return os.environ.get("PIPELINE_XLA_CACHE", str(Path.home() / ".cache/w2v-cnn/xla"))


def prune_cache(folder: Path, max_bytes: int = CACHE_MAX_BYTES) -> None:
    """Delete the least recently written programs until the cache holds <= max_bytes
    (every new shape, e.g. another corpus, adds ~0.8 MB per window radius)."""
    if not folder.is_dir():
        return
    sizes = {}
    for f in folder.glob("*.pb"):
        try:
            stat = f.stat()
        except FileNotFoundError:     # pruned by another process meanwhile
            continue
        sizes[f] = (stat.st_mtime, stat.st_size)
    total = 0
    for f in sorted(sizes, key=lambda f: sizes[f][0], reverse=True):   # newest first
        total += sizes[f][1]
        if total > max_bytes:
            f.unlink(missing_ok=True)


class Replicas:
    """R trainers over R copies of `master`'s tables; `train_round` runs and merges a round.

    The copies are taken at construction: create it after restoring a checkpoint.
    """

    def __init__(self, master: Any, threads: int) -> None:
        import tensorflow as tf

        self.master, self.threads = master, max(1, int(threads))
        base = list(master.variables_by_name().values())
        # R copies of every table (R = 1: none, the master is trained directly)
        tables = ([[tf.Variable(t, name=f"replica{r}_{t.name.split(':')[0]}") for t in base]
                   for r in range(self.threads)] if self.threads > 1 else [])
        self.trainers = ([master.compiled_trainer(tables=t) for t in tables] if tables
                         else [master.compiled_trainer()])
        self.round_size = self.threads * CALLS_PER_REPLICA if self.threads > 1 else 1
        self._pool = (ThreadPoolExecutor(self.threads, thread_name_prefix="w2v-replica")
                      if self.threads > 1 else None)

        @tf.function(jit_compile=True)
        def merge() -> None:
            for j, table in enumerate(base):
                # [V, d] (or [V] for the NCE bias): master + sum of the replicas' updates
                merged = table + tf.add_n([t[j] - table for t in tables])
                table.assign(merged)
                for t in tables:
                    t[j].assign(merged)

        self._merge = merge

        @tf.function
        def refresh() -> None:
            for j, table in enumerate(base):
                for t in tables:
                    t[j].assign(table)

        self._refresh = refresh

    def train_round(self, calls: Sequence[tuple[Any, float, float]]) -> tuple[float, float]:
        """Train `calls` ((batch, lr0, lr1), at most `round_size`), call i on replica
        i mod R, then merge. Returns (summed loss, pairs) over the round."""
        import tensorflow as tf

        def work(r: int) -> tuple[float, float]:
            loss_sum, count = 0.0, 0.0
            for batch, lr0, lr1 in calls[r::self.threads]:
                out = self.trainers[r](batch.centers, batch.contexts, batch.context_mask,
                                       batch.seed, tf.constant(lr0, tf.float32),
                                       tf.constant(lr1, tf.float32))
                loss_sum, count = loss_sum + float(out[0]), count + float(out[1])
            return loss_sum, count

        if self._pool is None:
            return work(0)
        results = list(self._pool.map(work, range(min(self.threads, len(calls)))))
        self._merge()
        return sum(r[0] for r in results), sum(r[1] for r in results)

    def refresh(self) -> None:
        """Copy the master's tables into every replica (after a distributed exchange changed
        the master between rounds; tasks/embeddings/placement.py)."""
        if self._pool is not None:
            self._refresh()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
