"""Asynchronous data parallelism: ParameterServerStrategy + ClusterCoordinator (no Keras fit).

Params sections: `word2vec` (schedule, batch_size, checkpoint_every), `distributed`
(steps_per_execution).

The chief builds the model under `strategy.scope()`: with a `variable_partitioner` each
[V, dims] table becomes a ShardedVariable whose row blocks live on the parameter servers
(FixedShardsPartitioner: `ps` blocks). It then schedules closures: each runs
`steps_per_execution` steps on whichever worker is free; one step reads the batch from that
worker's own shard dataset (shards.py), computes sparse gradients for the shard variables it
touched and applies them on the parameter servers at once (scatter_sub): no barrier, workers
never wait for each other (Hogwild-style staleness of a few steps).

A global `step` variable (on a parameter server) drives the learning-rate schedule; the
chief joins the coordinator at every checkpoint boundary and epoch end, resets `step` to the
scheduled count (a closure re-run after a worker failure may have counted twice), saves with
tf.train.CheckpointManager and logs progress.

Failures: a worker that dies is handled by the ClusterCoordinator: its closures go back to
the queue and run on the other workers, and when the worker process comes back (the local
launcher or Kubernetes restarts it at the same address) the coordinator re-creates its
dataset and uses it again. A parameter server or chief failure loses state the coordinator
cannot rebuild: the whole job restarts and the chief restores the last checkpoint.
"""

from __future__ import annotations

import concurrent.futures
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from tasks.distributed import shards
from tasks.distributed.cluster import Task
from tasks.distributed.runtime import JobDir, Plan, Progress, learning_rate, log

Batch = tuple[np.ndarray, ...]
ShardSource = Callable[[int, int], Iterator[Batch]]  # (epoch, shard) -> batches


class ShardWriter:
    """Writes every worker's shard of an epoch, one epoch ahead, in a background thread."""

    def __init__(self, job: JobDir, source: ShardSource, workers: int, batch_size: int) -> None:
        self.job, self.source, self.workers, self.batch_size = job, source, workers, batch_size
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="shards")
        self.pending: dict[int, concurrent.futures.Future] = {}

    def _write(self, epoch: int) -> dict[str, Any]:
        metas = [shards.write_shard(self.job.shard_dir(epoch, k), self.source(epoch, k),
                                    self.batch_size) for k in range(self.workers)]
        return {"count": sum(m["count"] for m in metas), "meta": metas[0]}

    def prefetch(self, epoch: int) -> None:
        if epoch not in self.pending:
            self.pending[epoch] = self.pool.submit(self._write, epoch)

    def get(self, epoch: int) -> dict[str, Any]:
        self.prefetch(epoch)
        return self.pending[epoch].result()

    def drop(self, epoch: int) -> None:
        shutil.rmtree(self.job.shard_dir(epoch, 0).parent, ignore_errors=True)

    def close(self, drop_all: bool = False) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        if drop_all:  # training is over: the job folder keeps only checkpoints and logs
            shutil.rmtree(self.job.root / "shards", ignore_errors=True)


def train(strategy: Any, coordinator: Any, model: Any, step: Any, writer: ShardWriter,
          plan: Plan, job: JobDir, task: Task, words_per_step: float) -> dict[str, Any]:
    """Run (or resume) the planned steps from the chief; return the loop's metrics.

    `model` and `step` must have been created under strategy.scope().
    """
    import tensorflow as tf

    checkpoint = tf.train.Checkpoint(model=model, step=step)
    manager = tf.train.CheckpointManager(checkpoint, str(job.checkpoints), max_to_keep=2)
    latest = tf.train.latest_checkpoint(str(job.checkpoints))
    if latest:
        checkpoint.restore(latest).expect_partial()
    start = int(step.numpy())
    log.info("chief: %s at step %d of %d", "resuming" if latest else "starting", start,
             plan.total_steps)

    def replica_step(batch: Any) -> Any:
        lr = learning_rate(step.read_value(), plan)
        loss, grads = model.compute_gradients(batch)
        model.apply_gradients(grads, lr)
        step.assign_add(1)
        return loss

    @tf.function
    def worker_fn(iterator: Any, n: int) -> Any:
        total = tf.constant(0.0)
        for _ in tf.range(n):
            total += tf.cast(strategy.run(replica_step, args=(next(iterator),)), tf.float32)
        return total / float(n)

    progress = Progress(plan, words_per_step, job.tensorboard)
    history = job.history(plan.position(start)[0])
    started, losses, loss = time.perf_counter(), [], float("nan")
    current, iterator = None, None
    for epoch, first, n in plan.chunks(start):
        if epoch != current:
            info = writer.get(epoch)          # this epoch's shards exist from here on
            if epoch + 1 < plan.epochs:
                writer.prefetch(epoch + 1)    # written while this epoch trains
            epoch_dir = job.shard_dir(epoch, 0).parent
            dataset = coordinator.create_per_worker_dataset(
                shards.dataset_fn(epoch_dir, info["meta"]))
            iterator, current = iter(dataset), epoch
            if epoch > 0:
                writer.drop(epoch - 1)        # joined at the epoch end: nobody reads it now
        losses.append(coordinator.schedule(worker_fn, args=(iterator, n)))
        done = first + n
        if plan.at_checkpoint(done):
            coordinator.join()                # raises if a closure failed for good
            step.assign(done)
            values = [float(v.fetch()) for v in losses]
            losses = []
            loss = float(np.mean(values)) if values else loss
            if not np.isfinite(loss):
                raise FloatingPointError(f"loss is {loss} at step {done}: lower the "
                                         f"learning rate or word2vec.batch_size")
            manager.save(checkpoint_number=done)
            if done % plan.steps_per_epoch == 0:
                history.append({"epoch": done // plan.steps_per_epoch, "loss": loss})
                job.save_history(history)
            progress.update(done, loss, float(learning_rate(done, plan)),
                            force=done == plan.total_steps)
    coordinator.join()
    seconds = time.perf_counter() - started
    progress.close()
    steps = int(step.numpy())
    return {"history": history, "steps": steps, "resumed_from_step": start,
            # nothing left to train (a re-run after the end): the last epoch's loss
            "final_loss": loss if np.isfinite(loss) or not history else history[-1]["loss"],
            "train_seconds": round(seconds, 3),
            "words_per_sec": round((steps - start) * words_per_step / seconds, 1)
            if seconds > 0 else 0.0}
