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
The training loop is tasks/w2v_train.py; the model tasks/models/word2vec.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from tasks import tracking, w2v_eval
from tasks.atomic import PipelineError, atomic_file, write_json
from tasks.config import PARAMS_FILE, Config, ParamsError, load_params
from tasks.stage import parse_overrides, stage_main

log = logging.getLogger(__name__)


def build_trainer(cfg: Config) -> Any:
    """Check the inputs (eval files first: fail before training), load vocab and corpus, and
    return the Trainer (tasks/w2v_train.py) that resumes from any matching checkpoint."""
    from tasks.models.word2vec import Word2VecSpec
    from tasks.vocab import encode_file, load_vocab
    from tasks.w2v_train import Trainer, fingerprint

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
    spec = Word2VecSpec(vocab_size=vocab.size, dims=w.dims, model=w.model, loss=w.loss,
                        negatives=w.negatives, window=w.window, seed=cfg.seed)
    out = cfg.path("word2vec")
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("embeddings.npy", "model.json"):   # never left beside a newer checkpoint
        (out / stale).unlink(missing_ok=True)
    fp = fingerprint(cfg, cfg.path("vocab") / "vocab.npz", corpus)
    return Trainer(cfg, spec, vocab, ids, starts, out, fp,
                   lambda emb: w2v_eval.evaluate(cfg, vocab, emb))


def run(cfg: Config) -> dict[str, Any]:
    from tasks.export import write_projector

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


def query_main(argv: Sequence[str]) -> int:
    """`nearby` / `analogy` subcommands; one-line errors, exit code 2."""
    from tasks.w2v_query import analogy, load_embeddings, nearby

    parser = argparse.ArgumentParser(prog="python -m tasks.word2vec")
    sub = parser.add_subparsers(dest="command", required=True)
    near = sub.add_parser("nearby", help="top-k cosine neighbours of each word")
    near.add_argument("words", nargs="+")
    near.add_argument("--k", type=int, default=8)
    ana = sub.add_parser("analogy", help="a is to b as c is to ? (3CosAdd)")
    ana.add_argument("words", nargs=3, metavar="WORD", help="a b c")
    ana.add_argument("--k", type=int, default=4)
    for p in (near, ana):
        p.add_argument("--params", default=PARAMS_FILE)
        p.add_argument("--set", dest="overrides", action="append", default=[])
        p.add_argument("--from", dest="source", choices=("word2vec", "export"),
                       default="word2vec")
    args = parser.parse_args(argv)
    try:
        cfg = load_params(args.params, parse_overrides(args.overrides))
        emb = load_embeddings(cfg, args.source)
        if args.command == "nearby":
            for word, hits in nearby(emb, args.words, args.k).items():
                print(f"{word}: " + ", ".join(f"{w} {s:.3f}" for w, s in hits))
        else:
            a, b, c = args.words
            hits = analogy(emb, a, b, c, args.k)
            print(f"{a} : {b} :: {c} : " + ", ".join(f"{w} {s:.3f}" for w, s in hits))
    except (PipelineError, ParamsError) as exc:
        print(f"error: word2vec: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("nearby", "analogy"):
        return query_main(argv)
    if argv and argv[0] == "run":
        argv = argv[1:]
    return stage_main("word2vec", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
