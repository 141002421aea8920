"""The `word2vec` stage (train, evaluate, publish) and the query CLI.

    python -m tasks.word2vec [run] [--params params.yaml] [--set word2vec.epochs=1]
    python -m tasks.word2vec nearby movie good bad [--k 8] [--from word2vec|export]
    python -m tasks.word2vec analogy man king woman [--k 4]   # man : king :: woman : ?

Params: `seed`, `word2vec` (all keys). Inputs: <paths.prepared>/corpus.txt, <paths.vocab>/
(vocab.npz), word2vec.analogy_file and word2vec.wordsim_file (missing -> PipelineError naming
the param, checked before training).
Outputs in <paths.word2vec>/ (a DVC `persist` folder, so checkpoints survive for resume):
- checkpoints/ (tf.train.CheckpointManager + fingerprint.json + history.json),
- tensorboard/ (scalars; the embedding projector written at the end),
- embeddings.npy: input embeddings [V, d] float32, row-for-row with vocab.npz (atomic),
- model.json: the Word2VecSpec, the fingerprint and the trainer's settings (atomic).
Metrics (<paths.metrics>/word2vec.json): analogy_accuracy/_semantic/_syntactic/_seen/_total
(+ per-section), wordsim353_spearman/_pairs/_oov, words_per_sec (raw corpus tokens per second
of training, the gensim convention), final_loss, train_seconds, epochs, steps.
Plot data: <paths.metrics>/word2vec_loss.json (per-epoch loss and eval scores).
Library code: tasks/embeddings/ (training.py the loop, model.py the model, queries.py the
nearby/analogy CLI, exporters.py the projector).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from tasks.core import tracking
from tasks.core.atomic import atomic_file, write_json
from tasks.core.errors import PipelineError
from tasks.core.params import Config
from tasks.core.stage import stage_main
from tasks.embeddings import evaluation as w2v_eval
from tasks.embeddings import queries
from tasks.embeddings.exporters import write_projector
from tasks.embeddings.training import build_trainer

log = logging.getLogger(__name__)


def run(cfg: Config) -> dict[str, Any]:
    w, out = cfg.word2vec, cfg.path("word2vec")
    trainer = build_trainer(cfg)
    vocab = trainer.vocab
    result = trainer.run()

    embeddings = trainer.model.input_embeddings.numpy().astype(np.float32)
    if not np.isfinite(embeddings).all():
        raise PipelineError("word2vec: the trained embeddings contain NaN or Inf")
    history = result["history"]
    scores = w2v_eval.evaluate(cfg, vocab, embeddings)      # with the per-section detail
    write_projector(out / "tensorboard", vocab.words[2:], embeddings[2:])
    with atomic_file(out / "embeddings.npy", "wb") as handle:
        np.save(handle, embeddings)
    with atomic_file(out / "model.json") as handle:
        json.dump({**trainer.spec_json(), "fingerprint": trainer.fp, "steps": result["steps"]},
                  handle, indent=2, default=str)
    write_json(cfg.path("metrics") / "word2vec_loss.json",
               [{k: h[k] for k in ("epoch", "loss", "analogy_accuracy", "wordsim353_spearman")
                 if k in h} for h in history])
    tracking.log_artifacts(out / "tensorboard", "tensorboard")
    tracking.set_tags({"resumed_from_step": result["resumed_from_step"]})
    run_words, seconds = result["run_words"], result["train_seconds"]
    words_per_sec = run_words / seconds if run_words else history[-1]["words_per_sec"]
    keys = ("analogy_accuracy", "analogy_semantic", "analogy_syntactic", "analogy_seen",
            "analogy_total", "analogy_sections", "wordsim353_spearman", "wordsim353_pairs",
            "wordsim353_oov")
    return {**{k: scores[k] for k in keys if k in scores},
            "words_per_sec": round(words_per_sec, 1), "final_loss": result["final_loss"],
            "train_seconds": seconds, "epochs": w.epochs, "steps": result["steps"],
            "resumed_from_step": result["resumed_from_step"], "vocab_size": vocab.size,
            "corpus_tokens": int(len(trainer.ids))}

def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("nearby", "analogy"):
        return queries.main(argv)
    if argv and argv[0] == "run":
        argv = argv[1:]
    return stage_main("word2vec", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
