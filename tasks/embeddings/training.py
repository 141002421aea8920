"""The word2vec stage's training loop: compiled calls, checkpoints/resume, NaN guard, logging.

Params: `seed`, `word2vec` (model, loss, dims, window, negatives, epochs, batch_size,
learning_rate, min_learning_rate, checkpoint_every, threads). Used by the word2vec stage
(tasks/word2vec.py) through `build_trainer(cfg)`, and by sync distributed workers
(tasks/distributed/worker.py) with a placement.SyncWorkers.

- Work order: epoch -> corpus chunk (tasks/embeddings/inputs.py) -> rounds -> calls. A call is
  S steps of one window-radius bucket run by one XLA-compiled in-graph loop
  (`Word2VecModel.compiled_trainer`); a round is 2 calls per training thread, run side by side
  on the threads' replicas and merged (tasks/embeddings/replicas.py). A background thread
  builds the next chunk's calls in NumPy while TF trains on the current one.
- Learning rate: linear from learning_rate to min_learning_rate over epochs x corpus tokens,
  by the raw tokens already covered (gensim/word2vec.c), interpolated inside each call.
- Checkpoints (<out>/checkpoints, tf.train.CheckpointManager): the model variables plus the
  position (step, epoch, chunk, next call) and the running epoch loss; saved after the first
  round that crosses a multiple of `checkpoint_every` steps and at every epoch end. A fresh run
  restores the latest one and continues at that position with the same step count and
  schedule; every chunk is regenerated from (seed, epoch, chunk), so a resumed run trains on
  exactly the batches the interrupted one would have. `fingerprint.json` (params + hashes of
  vocab.npz and corpus.txt) guards them: on any mismatch the old checkpoints and TensorBoard
  logs are deleted and training starts fresh.
- NaN guard: a non-finite loss stops training with a PipelineError before anything is saved,
  so the last good checkpoint stays the latest.
- Logging: TensorBoard scalars per round (loss, learning rate, words/sec) and per epoch (loss,
  eval scores); MLflow per epoch via tasks.core.tracking.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from tasks.core import tracking
from tasks.core.atomic import atomic_file
from tasks.core.errors import PipelineError
from tasks.core.hashing import file_md5
from tasks.core.params import Config
from tasks.embeddings import evaluation as w2v_eval
from tasks.embeddings import inputs as w2v_input
from tasks.embeddings.placement import Local
from tasks.embeddings.replicas import Replicas, configure_runtime
from tasks.text.vocabulary import encode_file, load_vocab

log = logging.getLogger(__name__)

TRAINER_VERSION = 1
PAIRS_PER_CALL = 1 << 16   # ~65k pairs per compiled call: Python overhead vs bucket padding
PROGRESS_SECONDS = 30     # one progress line (words/s, ETA) this often while training
_TRAINING_KEYS = ("model", "loss", "dims", "window", "negatives", "epochs", "batch_size",
                  "learning_rate", "min_learning_rate", "threads")


def fingerprint(cfg: Config, vocab_file: Path, corpus_file: Path) -> dict[str, Any]:
    """What the checkpoints depend on: training params, seed, input hashes, trainer version."""
    params = {k: getattr(cfg.word2vec, k) for k in _TRAINING_KEYS}
    return {"params": params, "seed": cfg.seed, "vocab_md5": file_md5(vocab_file),
            "corpus_md5": file_md5(corpus_file), "trainer_version": TRAINER_VERSION}


def steps_per_call(spec: Any, batch_size: int, radius: int, kept_per_chunk: float,
                   checkpoint_every: int) -> int:
    """S for a radius bucket: ~PAIRS_PER_CALL pairs, fewer when a chunk has fewer centres,
    and at most checkpoint_every (checkpoints happen between calls)."""
    rows = w2v_input.centres_per_step(spec, batch_size, radius)
    pairs_per_row = 2 * radius if spec.model == "skipgram" else 1
    cap = max(1, PAIRS_PER_CALL // (rows * pairs_per_row))
    expected = kept_per_chunk / spec.window          # centres of this radius in a chunk
    return max(1, min(cap, math.ceil(expected / rows), checkpoint_every))


class Trainer:
    """Trains (or resumes) one model; `run()` returns {steps, final_loss, words_per_sec, ...}."""

    def __init__(self, cfg: Config, spec: Any, vocab: Any, ids: np.ndarray, starts: np.ndarray,
                 out: Path, fingerprint: dict[str, Any],
                 evaluate: Callable[[np.ndarray], dict[str, Any]],
                 placement: Any = None) -> None:
        configure_runtime()   # before the first TF op of the process, or not at all
        import tensorflow as tf

        from tasks.embeddings.model import Word2VecModel

        self.cfg, self.spec, self.vocab, self.ids = cfg, spec, vocab, ids
        self.sent = w2v_input.sentence_ids(len(ids), starts)
        self.chunks = w2v_input.chunk_bounds(len(ids), starts)
        self.keep = np.asarray(vocab.keep_prob, np.float32)
        first = self.chunks[0] if self.chunks else (0, 0)
        kept = float(self.keep[ids[first[0]:first[1]]].sum())
        bs = cfg.word2vec.batch_size
        self.steps = {b: steps_per_call(spec, bs, b, kept, cfg.word2vec.checkpoint_every)
                      for b in range(1, spec.window + 1)}
        self.evaluate, self.fp = evaluate, fingerprint
        self.placement = placement or Local()
        self.ckpt_dir, self.tb_dir = out / "checkpoints", out / "tensorboard"
        if self.placement.is_chief:   # the chief owns the folder; other workers only read it
            self._check_fingerprint()
        self.model = Word2VecModel(spec, vocab.noise_prob)
        self.state = {k: tf.Variable(0, dtype=tf.int64, name=k)
                      for k in ("step", "epoch", "chunk", "call")}
        self.epoch_loss = tf.Variable([0.0, 0.0], dtype=tf.float64, name="epoch_loss")
        self.ckpt = tf.train.Checkpoint(model=self.model, epoch_loss=self.epoch_loss,
                                        **self.state)
        self.manager = tf.train.CheckpointManager(self.ckpt, str(self.ckpt_dir), max_to_keep=3)

    def _check_fingerprint(self) -> None:
        fp_file = self.ckpt_dir / "fingerprint.json"
        if fp_file.is_file() and json.loads(fp_file.read_text()) == self.fp:
            return
        if self.ckpt_dir.exists() or self.tb_dir.exists():
            log.info("params or inputs changed: discarding old checkpoints and logs")
        shutil.rmtree(self.ckpt_dir, ignore_errors=True)
        shutil.rmtree(self.tb_dir, ignore_errors=True)
        self.ckpt_dir.mkdir(parents=True)
        with atomic_file(fp_file) as handle:
            json.dump(self.fp, handle, indent=2, default=str)

    def history(self) -> list[dict[str, Any]]:
        path = self.ckpt_dir / "history.json"
        return json.loads(path.read_text()) if path.is_file() else []

    def _save(self, history: list[dict[str, Any]]) -> None:
        if not self.placement.is_chief:
            return
        # history first: a kill between the two leaves an extra entry, dropped on resume
        with atomic_file(self.ckpt_dir / "history.json") as handle:
            json.dump(history, handle, indent=1)
        self.manager.save(checkpoint_number=int(self.state["step"].numpy()))

    def _calls(self, epoch0: int, chunk0: int, stop: threading.Event) -> Iterator[Any]:
        """(epoch, chunk, lo, hi, calls) from the saved position, built in a thread."""
        items: queue.Queue = queue.Queue(maxsize=2)
        w = self.cfg.word2vec

        def produce() -> None:
            try:
                for epoch in range(epoch0, w.epochs):
                    for k, (lo, hi) in enumerate(self.chunks):
                        if epoch == epoch0 and k < chunk0:
                            continue
                        calls = w2v_input.bucketed_calls(
                            self.ids, self.sent, lo, hi, self.keep, self.spec, w.batch_size,
                            self.steps, self.cfg.seed, epoch, k)
                        while not stop.is_set():
                            try:
                                items.put((epoch, k, lo, hi, calls), timeout=0.5)
                                break
                            except queue.Full:
                                continue
                        if stop.is_set():
                            return
                items.put(None)
            except BaseException as exc:  # handed to the consumer, raised there
                items.put(exc)

        thread = threading.Thread(target=produce, name="w2v-input", daemon=True)
        thread.start()
        while (item := items.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    def run(self) -> dict[str, Any]:
        import tensorflow as tf

        w = self.cfg.word2vec
        place = self.placement
        # Only the chief restores; the other workers take its state (placement.py), so they
        # never read a checkpoint the chief may be writing. One process: start() does nothing.
        latest = self.manager.latest_checkpoint if place.is_chief else None
        if latest:
            self.ckpt.restore(latest).assert_existing_objects_matched()
        place.start(self.model, [*self.state.values(), self.epoch_loss])
        s = {k: int(v.numpy()) for k, v in self.state.items()}
        resumed_from = s["step"]
        # history records are 1-based; s["epoch"] is the number of completed epochs, so keep
        # 1..s["epoch"]: a kill between history.json and the checkpoint leaves one extra record
        history = ([h for h in self.history() if h["epoch"] <= s["epoch"]]
                   if place.is_chief else [])
        log.info("%s at step %d (epoch %d, chunk %d, call %d)",
                 "resuming" if resumed_from else "starting", s["step"], s["epoch"],
                 s["chunk"], s["call"])
        # copies the restored tables; a sync job spreads w.threads replicas over its workers
        replicas = Replicas(self.model, place.local_threads(w.threads))
        round_size = replicas.round_size * place.rounds_per_exchange * place.count
        n_tokens, total = len(self.ids), max(1, len(self.ids) * w.epochs)
        writer = (tf.summary.create_file_writer(str(self.tb_dir)) if place.is_chief
                  else tf.summary.create_noop_writer())
        stop = threading.Event()
        words_run, eval_seconds, last_loss = 0.0, 0.0, float("nan")
        started = last_report = time.perf_counter()
        try:
            for epoch, k, lo, hi, calls in self._calls(s["epoch"], s["chunk"], stop):
                first = s["call"] if (epoch, k) == (s["epoch"], s["chunk"]) else 0
                # Rounds start at multiples of round_size within the chunk, so a run resumed
                # from a checkpoint (taken after a round) replays the same rounds.
                for j in range(first, len(calls), round_size):
                    group = range(j, min(j + round_size, len(calls)))
                    work = []
                    for i in group:
                        done0 = epoch * n_tokens + lo + (hi - lo) * i / len(calls)
                        done1 = epoch * n_tokens + lo + (hi - lo) * (i + 1) / len(calls)
                        lr0, lr1 = (w.learning_rate - (w.learning_rate - w.min_learning_rate)
                                    * min(1.0, d / total) for d in (done0, done1))
                        work.append((calls[i].batch, lr0, lr1))
                    t0 = time.perf_counter()
                    loss_sum, count = self._train_share(replicas, place.share(work))
                    dt = time.perf_counter() - t0
                    n_steps = sum(len(calls[i].batch.centers) for i in group)
                    if not math.isfinite(loss_sum):
                        raise PipelineError(
                            f"word2vec: loss is {loss_sum} in steps {s['step'] + 1}.."
                            f"{s['step'] + n_steps} (epoch {epoch + 1}): "
                            f"training diverged; lower word2vec.learning_rate or batch_size "
                            f"(last good checkpoint kept in {self.ckpt_dir})")
                    before = s["step"]
                    s["step"] += n_steps
                    self.epoch_loss.assign_add([loss_sum, count])
                    words = (hi - lo) * len(group) / len(calls)
                    words_run += words
                    last_loss = loss_sum / max(count, 1.0)
                    with writer.as_default(step=s["step"]):
                        tf.summary.scalar("train/loss", last_loss)
                        tf.summary.scalar("train/learning_rate", work[-1][2])
                        tf.summary.scalar("train/words_per_sec", words / max(dt, 1e-9))
                    self._set_position(s, epoch, k, group[-1] + 1)
                    if time.perf_counter() - last_report >= PROGRESS_SECONDS:
                        last_report = time.perf_counter()
                        run_seconds = last_report - started - eval_seconds
                        log_progress(epoch, w.epochs, done1 / total, words_run, run_seconds,
                                     (total - done1) * run_seconds / max(words_run, 1.0))
                    if s["step"] // w.checkpoint_every > before // w.checkpoint_every:
                        self._save(history)
                self._set_position(s, epoch, k + 1, 0)
                if k + 1 == len(self.chunks):           # epoch end: evaluate, record, save
                    elapsed = time.perf_counter() - started - eval_seconds
                    history.append(self._end_epoch(epoch, words_run, elapsed, writer))
                    eval_seconds += history[-1]["eval_seconds"]
                    self.epoch_loss.assign([0.0, 0.0])
                    self._set_position(s, epoch + 1, 0, 0)
                    self._save(history)
            if place.finish(self.model):   # an async chief took the others' last updates
                self._save(history)
        finally:
            stop.set()
            replicas.close()
            writer.flush()
        train_seconds = time.perf_counter() - started - eval_seconds
        return {"steps": s["step"], "resumed_from_step": resumed_from,
                "final_loss": history[-1]["loss"] if history else last_loss,
                "history": history, "run_words": words_run,
                "train_seconds": round(train_seconds, 3)}

    def _train_share(self, replicas: Replicas, work: list[Any]) -> tuple[float, float]:
        """This process's calls of a round, local round by local round, then the exchange
        with the other workers (placement.py); (summed loss, pairs) of the whole round."""
        loss_sum, count = 0.0, 0.0
        for i in range(0, len(work), replicas.round_size):
            part = replicas.train_round(work[i:i + replicas.round_size])
            loss_sum, count = loss_sum + part[0], count + part[1]
        if not self.placement.needs_exchange:
            return loss_sum, count
        loss_sum, count = self.placement.exchange(loss_sum, count)
        replicas.refresh()   # the threads' copies take the exchanged tables
        return loss_sum, count

    def _set_position(self, s: dict[str, int], epoch: int, chunk: int, call: int) -> None:
        s.update(epoch=epoch, chunk=chunk, call=call)
        for key in ("step", "epoch", "chunk", "call"):
            self.state[key].assign(s[key])

    def _end_epoch(self, epoch: int, words_run: float, seconds: float, writer: Any) -> dict:
        import tensorflow as tf

        loss_sum, count = self.epoch_loss.numpy()
        t0 = time.perf_counter()
        # the chief evaluates (the other workers' tables are the same)
        scores = (self.evaluate(self.model.input_embeddings.numpy())
                  if self.placement.is_chief else {})
        eval_seconds = time.perf_counter() - t0
        record = {"epoch": epoch + 1, "loss": round(float(loss_sum / max(count, 1.0)), 6),
                  "words_per_sec": round(words_run / max(seconds, 1e-9), 1),
                  "eval_seconds": round(eval_seconds, 3),
                  **{k: v for k, v in scores.items() if isinstance(v, int | float)}}
        with writer.as_default(step=int(self.state["step"].numpy())):
            tf.summary.scalar("epoch/loss", record["loss"])
            for key in ("analogy_accuracy", "wordsim353_spearman"):
                if key in record:
                    tf.summary.scalar(f"eval/{key}", record[key])
        tracking.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=epoch + 1)
        if not self.placement.is_chief:
            return record
        log.info("epoch %d: loss %.4f, %.0f words/s, analogy %.4f, ws353 %.4f", epoch + 1,
                 record["loss"], record["words_per_sec"], record.get("analogy_accuracy", 0),
                 record.get("wordsim353_spearman", 0))
        return record

    def spec_json(self) -> dict[str, Any]:
        return {**asdict(self.spec), "trainer": "single-process", "steps_per_call": self.steps}


def log_progress(epoch: int, epochs: int, fraction: float, words: float, seconds: float,
                 eta_seconds: float) -> None:
    """One progress line (every PROGRESS_SECONDS while training): plain text, so it reads the
    same in a terminal, a DVC log or a Prefect log (no bar, no escape codes)."""
    log.info("progress %4.1f%% (epoch %d/%d): %.0f words/s, ETA %s", 100 * fraction,
             epoch + 1, epochs, words / max(seconds, 1e-9), clock(eta_seconds))


def clock(seconds: float) -> str:
    """95 -> '1m35s'; 3725 -> '1h02m05s'."""
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def build_trainer(cfg: Config, out: Path | None = None, placement: Any = None) -> Trainer:
    """Check the inputs (eval files first: fail before training), load vocab and corpus, and
    return the Trainer that resumes from any matching checkpoint.

    `out`: the folder of checkpoints/ and tensorboard/ (default <paths.word2vec>; a
    distributed job's folder for its workers). `placement`: placement.Local (default) or a
    distributed job's SyncWorkers."""
    from tasks.embeddings.model import Word2VecSpec  # TensorFlow loads here, not on import

    w = cfg.word2vec
    corpus = cfg.path("prepared") / "corpus.txt"
    if not corpus.is_file():
        raise PipelineError(f"{corpus} not found: run the prepare stage first")
    w2v_eval.load_analogies(cfg.resolve(w.analogy_file))
    w2v_eval.load_wordsim(cfg.resolve(w.wordsim_file))
    vocab = load_vocab(cfg.path("vocab"))
    ids, starts = encode_file(corpus, vocab)
    if float(np.asarray(vocab.keep_prob)[ids].sum()) < 2:
        raise PipelineError(f"{corpus}: no in-vocabulary tokens to train on")
    spec = Word2VecSpec.from_params(w, vocab.size, cfg.seed)
    stage_out = cfg.path("word2vec")
    stage_out.mkdir(parents=True, exist_ok=True)
    if placement is None or placement.is_chief:
        for stale in ("embeddings.npy", "model.json"):   # never left beside a newer checkpoint
            (stage_out / stale).unlink(missing_ok=True)
    out = out or stage_out
    fp = fingerprint(cfg, cfg.path("vocab") / "vocab.npz", corpus)
    return Trainer(cfg, spec, vocab, ids, starts, out, fp,
                   lambda emb: w2v_eval.evaluate(cfg, vocab, emb), placement)
