"""One resumable Kim-CNN training run: per-epoch model.fit, early stopping, checkpoints.

Used by `tasks.cnn` (params section `cnn`, plus `seed`). For one fold it writes
- <ckpt>/state.json: fingerprint, epochs done, per-epoch history, early-stopping state;
- <ckpt>/latest.weights.h5 (weights + optimizer state after the last finished epoch) and
  <ckpt>/best.weights.h5 (best dev accuracy so far), both replaced atomically;
- <tb>/train and <tb>/dev: TensorBoard scalars loss and accuracy per epoch.

A run killed at any point restarts from the last finished epoch when the fingerprint (params
and input hashes, without `epochs`/`patience`) matches; otherwise the checkpoints are wiped.
Epoch k always sees the same shuffle (seed + k), interrupted or not. Epochs count from 1.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tasks.classifier.data import make_dataset
from tasks.classifier.model import ARCHITECTURE
from tasks.core import tracking
from tasks.core.atomic import write_json
from tasks.core.hashing import file_md5
from tasks.core.params import Config

log = logging.getLogger(__name__)
WEIGHTS = ("latest.weights.h5", "best.weights.h5")


def fingerprint(parts: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class TrainState:
    fingerprint: str
    epoch: int = 0                      # finished epochs
    best_epoch: int = 0                 # 1-based; 0 = none yet
    best_dev_accuracy: float = -1.0
    wait: int = 0                       # epochs since the best one
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def finished(self, epochs: int, patience: int) -> bool:
        stalled = self.epoch > self.best_epoch and self.wait >= patience
        return self.epoch >= epochs or (self.epoch > 0 and stalled)


def load_state(ckpt: Path, fp: str, epochs: int) -> TrainState:
    """The saved state if it belongs to this run, else a fresh one (old checkpoints wiped)."""
    path = ckpt / "state.json"
    if path.exists():
        try:
            saved = TrainState(**json.loads(path.read_text()))
        except (ValueError, TypeError):
            saved = None
        usable = (saved is not None and saved.fingerprint == fp and saved.epoch <= epochs
                  and (saved.epoch == 0 or all((ckpt / f).exists() for f in WEIGHTS)))
        if usable:
            return saved
        log.info("%s: checkpoints belong to other params or inputs; starting fresh", ckpt)
    shutil.rmtree(ckpt, ignore_errors=True)
    ckpt.mkdir(parents=True, exist_ok=True)
    return TrainState(fingerprint=fp)


def save_weights(model: keras.Model, path: Path) -> None:
    tmp = path.with_name(f".{os.getpid()}.{path.name}")  # Keras wants the .weights.h5 suffix
    model.save_weights(tmp)
    os.replace(tmp, path)


def train(model: keras.Model, data: Mapping[str, tuple[np.ndarray, np.ndarray]], *,
          epochs: int, patience: int, batch_size: int, seed: int, ckpt: Path, tb: Path,
          fp: str, prefix: str = "",
          on_epoch: Callable[[TrainState], None] | None = None) -> TrainState:
    """Fit `model` (compiled) on data["train"], early-stopping on data["dev"] accuracy.

    Returns the final state; the model holds the best epoch's weights.
    """
    state = load_state(ckpt, fp, epochs)
    if state.epoch:
        model.optimizer.build(model.trainable_variables)  # so its slots load too
        model.load_weights(ckpt / "latest.weights.h5")
        log.info("%sresuming after epoch %d (best %d, dev accuracy %.4f)", prefix or "",
                 state.epoch, state.best_epoch, state.best_dev_accuracy)
    dev = make_dataset(*data["dev"], batch_size=max(batch_size, 256))
    writers = {s: tf.summary.create_file_writer(str(tb / s)) for s in ("train", "dev")}
    while not state.finished(epochs, patience):
        epoch = state.epoch  # 0-based index of the epoch about to run
        started = time.perf_counter()
        train_ds = make_dataset(*data["train"], batch_size=batch_size, shuffle_seed=seed + epoch)
        h = model.fit(train_ds, validation_data=dev, initial_epoch=epoch, epochs=epoch + 1,
                      shuffle=False, verbose=0).history  # make_dataset shuffled already
        seconds = time.perf_counter() - started
        row = {"epoch": epoch + 1, "train_loss": h["loss"][-1],
               "train_accuracy": h["accuracy"][-1], "dev_loss": h["val_loss"][-1],
               "dev_accuracy": h["val_accuracy"][-1]}
        row = {k: (int(v) if k == "epoch" else round(float(v), 6)) for k, v in row.items()}
        if row["dev_accuracy"] > state.best_dev_accuracy:
            state.best_epoch, state.best_dev_accuracy, state.wait = epoch + 1, row["dev_accuracy"], 0
            save_weights(model, ckpt / "best.weights.h5")
        else:
            state.wait += 1
        state.epoch = epoch + 1
        state.history.append(row)
        state.seconds.append(round(seconds, 3))
        save_weights(model, ckpt / "latest.weights.h5")
        write_json(ckpt / "state.json", asdict(state))  # last: it vouches for the weights
        for split, writer in writers.items():
            with writer.as_default(step=epoch + 1):
                tf.summary.scalar("loss", row[f"{split}_loss"])
                tf.summary.scalar("accuracy", row[f"{split}_accuracy"])
            writer.flush()
        # "epoch/..." keeps the curves apart from the final summary metrics of the same name.
        tracking.log_metrics({f"{prefix}epoch/{k}": v for k, v in row.items() if k != "epoch"},
                             step=epoch + 1)
        # ETA at most: early stopping (cnn.patience) may end the run sooner.
        eta = (epochs - epoch - 1) * sum(state.seconds) / len(state.seconds)
        log.info("%sepoch %d/%d: loss %.4f acc %.4f | dev loss %.4f acc %.4f | %.1f s, "
                 "ETA <= %.0f s", prefix, epoch + 1, epochs, row["train_loss"],
                 row["train_accuracy"], row["dev_loss"], row["dev_accuracy"], seconds, eta)
        if on_epoch is not None:
            on_epoch(state)
    for writer in writers.values():
        writer.close()
    model.load_weights(ckpt / "best.weights.h5")  # early stopping restores the best epoch
    return state


def evaluate(model: keras.Model, ids: np.ndarray, labels: np.ndarray,
             num_classes: int) -> dict[str, Any]:
    """Accuracy, macro F1 and the confusion matrix [true, predicted] on one split."""
    probs = model.predict(make_dataset(ids, labels, batch_size=512), verbose=0)  # [N, C]
    predicted = probs.argmax(axis=1)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    tp = np.diag(confusion).astype(np.float64)
    precision = np.divide(tp, confusion.sum(0), out=np.zeros_like(tp), where=confusion.sum(0) > 0)
    recall = np.divide(tp, confusion.sum(1), out=np.zeros_like(tp), where=confusion.sum(1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp),
                   where=(precision + recall) > 0)
    present = confusion.sum(1) > 0  # macro over the classes that occur in this split
    return {"accuracy": float(tp.sum() / max(len(labels), 1)),
            "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
            "confusion": confusion}


def input_parts(cfg: Config) -> dict[str, Any]:
    """Everything a trained model depends on (hashed into the checkpoint fingerprint)."""
    prepared, export = cfg.path("prepared"), cfg.path("export")
    files = [prepared / "labels.txt", *(cfg.path("vocab").glob("vocab.*")),
             *(prepared / f for f in (["train.tsv", "dev.tsv", "test.tsv"]
                                      if cfg.cnn.protocol == "split" else ["all.tsv"]))]
    files += [export / "embeddings.npy", export / "vocab.tsv"]
    params = {k: v for k, v in cfg.flat().items() if k.startswith("cnn.")}
    return {"params": params, "architecture": ARCHITECTURE, "seed": cfg.seed,
            "lowercase": cfg.prepare.lowercase,
            "folds": cfg.prepare.folds, "dev_fraction": cfg.prepare.dev_fraction,
            "files": {f.name: file_md5(f) for f in sorted(files) if f.exists()}}


COMPARED = ("cnn.embedding_init", "cnn.optimizer", "cnn.learning_rate", "cnn.fold")


def fingerprints(cfg: Config) -> tuple[str, str]:
    """(checkpoint fingerprint, comparison id); neither covers epochs/patience, and the
    comparison id leaves out `COMPARED` and `seed`, so every run of one comparison shares it."""
    parts = input_parts(cfg)
    for key in ("cnn.epochs", "cnn.patience"):
        parts["params"].pop(key)
    run_fp = fingerprint(parts)
    # What a comparison varies (tasks.compare): the variant, its optimiser, the seed, the fold.
    for key in COMPARED:
        parts["params"].pop(key, None)
    parts.pop("seed")
    return run_fp, fingerprint(parts)[:12]
