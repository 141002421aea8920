"""The job folder of every strategy, and the async loop's plan, schedule and progress logs.

Params sections: `word2vec` (epochs, learning_rate, min_learning_rate, checkpoint_every) and
`distributed` (shared_path, steps_per_execution).

The job folder `<distributed.shared_path>/<job>/` is on storage every task sees (the local
disk, or the Kubernetes PVC):
- checkpoints/            the chief's tf.train.CheckpointManager folder (what a restart reads;
                          sync: the word2vec stage's Trainer format, with its history.json);
- shards/epoch-<e>/       async only: the training batches of epoch e, one folder per worker;
- tensorboard/            the chief's loss / learning-rate / words-per-second summaries;
- history.json            async: the chief's per-epoch loss (the stage's word2vec_loss.json);
- result.json             the chief's metrics once the outputs are written.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.core.atomic import write_json
from tasks.core.params import Config

log = logging.getLogger("tasks.distributed")


@dataclass(frozen=True)
class JobDir:
    root: Path

    @classmethod
    def of(cls, cfg: Config, job: str) -> JobDir:
        return cls(cfg.resolve(cfg.distributed.shared_path) / job)

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def shard_dir(self, epoch: int, shard: int) -> Path:
        return self.root / "shards" / f"epoch-{epoch:03d}" / f"shard-{shard:03d}"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def result(self) -> Path:
        return self.root / "result.json"

    def history(self, before_epoch: int) -> list[dict[str, Any]]:
        """Per-epoch loss records of earlier runs of this job, up to `before_epoch`."""
        path = self.root / "history.json"
        records = json.loads(path.read_text()) if path.is_file() else []
        return [r for r in records if r["epoch"] <= before_epoch]

    def save_history(self, records: list[dict[str, Any]]) -> None:
        write_json(self.root / "history.json", records)

    def write_result(self, metrics: dict[str, Any]) -> None:
        write_json(self.result, metrics)


@dataclass(frozen=True)
class Plan:
    """The step arithmetic every task derives identically (so sync workers stay in lockstep).

    A step is one batch on one replica (async) or one batch on every replica (sync).
    """

    steps_per_epoch: int
    epochs: int
    steps_per_execution: int
    checkpoint_every: int
    learning_rate: float
    min_learning_rate: float

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    def position(self, step: int) -> tuple[int, int]:
        """Global step -> (epoch, steps already done in that epoch)."""
        return divmod(step, self.steps_per_epoch)

    def chunks(self, start: int) -> Iterator[tuple[int, int, int]]:
        """(epoch, first step, n steps) per call from `start` to the end.

        A chunk never crosses an epoch end or a checkpoint boundary, so every sync worker
        makes the same calls and every save happens at the same step on all of them.
        """
        step = start
        while step < self.total_steps:
            epoch, _ = self.position(step)
            limit = min((epoch + 1) * self.steps_per_epoch,
                        (step // self.checkpoint_every + 1) * self.checkpoint_every,
                        self.total_steps)
            n = min(self.steps_per_execution, limit - step)
            yield epoch, step, n
            step += n

    def at_checkpoint(self, step: int) -> bool:
        return step % self.checkpoint_every == 0 or step % self.steps_per_epoch == 0


def plan_for(cfg: Config, steps_per_epoch: int) -> Plan:
    w = cfg.word2vec
    return Plan(max(1, steps_per_epoch), w.epochs, cfg.distributed.steps_per_execution,
                w.checkpoint_every, w.learning_rate, w.min_learning_rate)


def learning_rate(step: Any, plan: Plan) -> Any:
    """Linear decay from learning_rate to min_learning_rate over the planned steps (tensor)."""
    import tensorflow as tf

    done = tf.cast(step, tf.float32) / float(plan.total_steps)
    lr = plan.learning_rate * (1.0 - done)
    return tf.maximum(lr, plan.min_learning_rate)


class Progress:
    """Chief-side progress lines and TensorBoard summaries (every `every` seconds)."""

    def __init__(self, plan: Plan, words_per_step: float, logdir: Path | None,
                 every: float = 10.0) -> None:
        self.plan, self.words_per_step, self.every = plan, words_per_step, every
        self.started = self.last = time.perf_counter()
        self.first_step: int | None = None
        self.writer = None
        if logdir is not None:
            import tensorflow as tf

            self.writer = tf.summary.create_file_writer(str(logdir))

    def update(self, step: int, loss: float, lr: float, force: bool = False) -> None:
        now = time.perf_counter()
        if self.first_step is None:
            self.first_step, self.started = step, now
            return
        if not force and now - self.last < self.every:
            return
        self.last = now
        wps = self.words_per_sec(step)
        log.info("step %d/%d (%.1f%%) loss %.4f lr %.5f words/s %.0f", step,
                 self.plan.total_steps, 100 * step / self.plan.total_steps, loss, lr, wps)
        if self.writer is not None and math.isfinite(loss):
            import tensorflow as tf

            with self.writer.as_default(step=step):
                tf.summary.scalar("loss", loss)
                tf.summary.scalar("learning_rate", lr)
                tf.summary.scalar("words_per_sec", wps)

    def words_per_sec(self, step: int) -> float:
        elapsed = time.perf_counter() - self.started
        done = step - (self.first_step or 0)
        return done * self.words_per_step / elapsed if elapsed > 0 else 0.0

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
