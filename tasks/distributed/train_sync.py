"""Synchronous data parallelism: MultiWorkerMirroredStrategy with a custom training loop.

Params sections: `word2vec` (schedule, checkpoint_every), `distributed` (steps_per_execution).

Every worker holds a full replica of the model and reads its own shard of the training
batches. One step: each replica computes sparse gradients on its batch
(`model.compute_gradients` -> tf.IndexedSlices per variable), the replicas all-reduce them
(SUM: IndexedSlices travel as an all-gather of rows, [n_rows, dims] per variable, never the
dense [V, dims] table) and every replica applies the same update (`model.apply_gradients`,
a scatter_sub), so the replicas stay identical. The per-worker batch is
`word2vec.batch_size / workers`: the global batch, and so the size of the summed update to a
frequent word, is the single-process one.

`steps_per_execution` steps run inside one tf.function call (a tf.range loop around
strategy.run), which saves Python round trips; chunks stop at checkpoint and epoch
boundaries (runtime.Plan.chunks) so all workers save at the same steps.

Checkpoints (tf.train.CheckpointManager): every worker saves, because a save of mirrored
variables is a collective operation; the chief writes into the job's checkpoints/, the others
into temporary folders deleted right after. A restarted job restores the chief's latest
checkpoint on every worker and continues at the saved step, with the same batches (the
input of (epoch, shard) is deterministic).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from tasks.distributed.cluster import Task
from tasks.distributed.runtime import JobDir, Plan, Progress, learning_rate, log

Batch = tuple[np.ndarray, ...]
BatchSource = Callable[[int], Iterator[Batch]]  # epoch -> this worker's batches


def agree_steps_per_epoch(strategy: Any, local_count: int, index: int, workers: int) -> int:
    """The smallest per-worker batch count of all workers (one small all-reduce).

    Worker i contributes a one-hot vector holding its count at i; the SUM is every count.
    """
    import tensorflow as tf

    @tf.function
    def gather() -> Any:
        def replica() -> Any:  # built inside the replica: the reduce needs its device
            mine = tf.one_hot(index, workers, dtype=tf.float64) * float(local_count)
            return tf.distribute.get_replica_context().all_reduce(
                tf.distribute.ReduceOp.SUM, mine)

        return strategy.run(replica)

    counts = strategy.experimental_local_results(gather())[0].numpy()
    return int(counts.min())


def epoch_batches(source: BatchSource, epoch: int, steps: int, skip: int,
                  batch_size: int) -> Iterator[Batch]:
    """Exactly `steps - skip` full batches of `epoch` (the shard cycles if it runs short)."""
    produced, position = 0, 0
    while produced < steps - skip:
        empty = True
        for batch in source(epoch):
            if len(batch[0]) != batch_size:
                continue  # the short last batch: stacking needs one shape
            empty = False
            if position >= skip:
                yield batch
                produced += 1
                if produced >= steps - skip:
                    return
            position += 1
        if empty:
            raise RuntimeError(f"epoch {epoch}: this worker's shard yields no full batch")


def stack(batches: Sequence[Batch]) -> tuple[np.ndarray, ...]:
    """n batches -> one tuple of [n, ...] arrays (the input of one tf.function call)."""
    return tuple(np.stack(parts) for parts in zip(*batches, strict=True))


def train(strategy: Any, model: Any, step: Any, source: BatchSource, plan: Plan,
          batch_size: int, job: JobDir, task: Task, words_per_step: float) -> dict[str, Any]:
    """Run (or resume) the planned steps; return {steps, resumed_from, loss, seconds, ...}.

    `model` and `step` (an int64 tf.Variable) must have been created under strategy.scope().
    """
    import tensorflow as tf

    checkpoint = tf.train.Checkpoint(model=model, step=step)
    manager = tf.train.CheckpointManager(checkpoint, str(job.checkpoint_write_dir(task)),
                                         max_to_keep=2)
    latest = tf.train.latest_checkpoint(str(job.checkpoints))
    if latest:
        checkpoint.restore(latest).expect_partial()
    start = int(step.numpy())
    log.info("%s: %s at step %d of %d", task.name, "resuming" if latest else "starting",
             start, plan.total_steps)

    def replica_step(batch: Any, lr: Any) -> Any:
        loss, grads = model.compute_gradients(batch)
        grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
        model.apply_gradients(grads, lr)
        return loss

    example = next(epoch_batches(source, 0, 1, 0, batch_size))
    signature = [tuple(tf.TensorSpec([None, *a.shape], tf.as_dtype(a.dtype)) for a in example)]

    @tf.function(input_signature=signature)
    def run_steps(stacked: Any) -> Any:
        n = tf.shape(stacked[0])[0]
        total = tf.constant(0.0)
        for i in tf.range(n):
            lr = learning_rate(step, plan)
            per_replica = strategy.run(replica_step, args=(tuple(x[i] for x in stacked), lr))
            total += tf.cast(strategy.experimental_local_results(per_replica)[0], tf.float32)
            step.assign_add(1)
        return total / tf.cast(n, tf.float32)

    progress = Progress(plan, words_per_step, job.tensorboard if task.is_chief else None)
    history = job.history(plan.position(start)[0])
    started, loss = time.perf_counter(), float("nan")
    streams: dict[int, Iterator[Batch]] = {}
    for epoch, first, n in plan.chunks(start):
        if epoch not in streams:
            streams = {epoch: epoch_batches(source, epoch, plan.steps_per_epoch,
                                            first - epoch * plan.steps_per_epoch, batch_size)}
        chunk = [next(streams[epoch]) for _ in range(n)]
        loss = float(run_steps(stack(chunk)))
        done = first + n
        if not np.isfinite(loss):
            raise FloatingPointError(f"loss is {loss} at step {done}: lower the learning rate "
                                     f"or word2vec.batch_size")
        if task.is_chief:
            progress.update(done, loss, float(learning_rate(done, plan)),
                            force=done == plan.total_steps)
        if plan.at_checkpoint(done):
            manager.save(checkpoint_number=done)
            job.drop_temp(task)
        if task.is_chief and done % plan.steps_per_epoch == 0:
            history.append({"epoch": done // plan.steps_per_epoch, "loss": loss})
            job.save_history(history)
    seconds = time.perf_counter() - started
    progress.close()
    log.info("%s: %d steps in %.1f s", task.name, int(step.numpy()) - start, seconds)
    steps = int(step.numpy())
    return {"history": history, "steps": steps, "resumed_from_step": start,
            # nothing left to train (a re-run after the end): the last epoch's loss
            "final_loss": loss if np.isfinite(loss) or not history else history[-1]["loss"],
            "train_seconds": round(seconds, 3),
            "words_per_sec": round((steps - start) * words_per_step / seconds, 1)
            if seconds > 0 else 0.0}
