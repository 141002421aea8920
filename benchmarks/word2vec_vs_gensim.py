"""Our TensorFlow word2vec vs gensim's C word2vec, same corpus, same hyperparameters, one run.

    .venv/bin/python benchmarks/word2vec_vs_gensim.py                  # <paths.prepared>/corpus.txt
    .venv/bin/python benchmarks/word2vec_vs_gensim.py --corpus /tmp/corpus.txt --epochs 1 --pairs 1

Hyperparameters (both): skip-gram, 100 dims, window 5, 5 negatives, sample 1e-3, min_count 5,
learning rate 0.025 -> 0.0001, `--epochs` (default 5); gensim with workers=2 (this machine
has 2 cores), ours with word2vec.batch_size from params. Paths (corpus, eval files, restrict
vocab) come from params.yaml through tasks/core/params.py.

Timing: each side's vocabulary build (+ our corpus encoding) and its training are timed
separately; words/sec = epochs x corpus tokens / training seconds (raw words, the gensim
convention); words per CPU-second uses the process CPU time of training (all threads), which
other jobs on a shared machine disturb less than wall time. Our training runs the stage's own Trainer (checkpoints included; per-epoch
evaluation switched off so both train the same way). The two run back to back in one process,
`--pairs` times (default 3), alternating which goes first (gensim first in pairs 1, 3, ...);
the load average before and after each run is recorded, since other jobs may share the CPU.
CPU utilisation = training CPU-seconds / training wall seconds (2.0 = both cores busy).
Single pairs are noisy on a shared machine: the verdict is the median over the pairs
(`median_words_per_sec_ratio`); `gensim` / `ours` at the top level are the median pair's runs.

Evaluation: both models scored by the same code (tasks/embeddings/evaluation.py: analogies over the 30k
most frequent words, WordSim-353 Spearman), plus gensim's own evaluate_word_analogies on both
as a cross-check. Output: a summary on stdout and benchmarks/results/word2vec_vs_gensim.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

HYPER = {"model": "skipgram", "loss": "neg", "dims": 100, "window": 5, "negatives": 5,
         "learning_rate": 0.025, "min_learning_rate": 0.0001}
SAMPLE, MIN_COUNT = 1e-3, 5


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def scores(cfg: Any, words: list[str], vectors: np.ndarray) -> dict[str, Any]:
    """Our evaluator, and gensim's evaluate_word_analogies on the same vectors."""
    from gensim.models import KeyedVectors

    from tasks.embeddings.evaluation import evaluate_vectors

    w = cfg.word2vec
    ours = evaluate_vectors(words, vectors, cfg.resolve(w.analogy_file),
                            cfg.resolve(w.wordsim_file), w.restrict_vocab)
    real = [i for i, word in enumerate(words) if word not in ("<pad>", "<unk>")]
    kv = KeyedVectors(vectors.shape[1])
    kv.add_vectors([words[i] for i in real], vectors[real])
    gensim_acc, _ = kv.evaluate_word_analogies(str(cfg.resolve(w.analogy_file)),
                                               restrict_vocab=w.restrict_vocab)
    keep = ("analogy_accuracy", "analogy_semantic", "analogy_syntactic", "analogy_seen",
            "analogy_total", "wordsim353_spearman", "wordsim353_pairs")
    return {**{k: ours[k] for k in keep}, "gensim_evaluator_analogy": round(gensim_acc, 6)}


def run_gensim(cfg: Any, corpus: Path, epochs: int, tokens: int) -> dict[str, Any]:
    import gensim
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence

    before = load()
    model = Word2Vec(vector_size=HYPER["dims"], window=HYPER["window"], negative=HYPER["negatives"],
                     sample=SAMPLE, min_count=MIN_COUNT, sg=1, hs=0, workers=2, seed=cfg.seed,
                     alpha=HYPER["learning_rate"], min_alpha=HYPER["min_learning_rate"])
    t0 = time.perf_counter()
    model.build_vocab(LineSentence(str(corpus)))
    t1, cpu1 = time.perf_counter(), time.process_time()
    model.train(LineSentence(str(corpus)), total_examples=model.corpus_count, epochs=epochs)
    t2, cpu = time.perf_counter(), time.process_time() - cpu1
    result = {"version": gensim.__version__, "vocab_seconds": round(t1 - t0, 2),
              "train_seconds": round(t2 - t1, 2), "wall_seconds": round(t2 - t0, 2),
              "words_per_sec": round(epochs * tokens / (t2 - t1)), "train_cpu_seconds":
              round(cpu, 2), "words_per_cpu_sec": round(epochs * tokens / cpu),
              "cpu_utilisation": round(cpu / (t2 - t1), 2), "vocab_size": len(model.wv), "loadavg_before": before, "loadavg_after": load()}
    result.update(scores(cfg, list(model.wv.index_to_key), model.wv.vectors))
    return result


def run_ours(cfg: Any, corpus: Path, epochs: int, tokens: int) -> dict[str, Any]:
    from tasks.embeddings.model import Word2VecSpec
    from tasks.embeddings.training import Trainer
    from tasks.text import vocabulary as vocab_stage

    before = load()
    from tasks.embeddings.replicas import cache_folder

    cache = Path(cache_folder()) if cache_folder() else None
    cached_programs = len(list(cache.glob("*.pb"))) if cache and cache.is_dir() else 0
    t0 = time.perf_counter()
    counts, _ = vocab_stage.count_words(corpus)
    table = vocab_stage.build(counts, MIN_COUNT, 0, SAMPLE, 0.75)
    words = table["words"].tolist()
    vocab = vocab_stage.Vocabulary(words, table["counts"], table["keep_prob"],
                                   table["noise_prob"], {w: i for i, w in enumerate(words)})
    ids, starts = vocab_stage.encode_file(corpus, vocab)
    t1 = time.perf_counter()
    spec = Word2VecSpec(vocab_size=vocab.size, dims=HYPER["dims"], model="skipgram", loss="neg",
                        negatives=HYPER["negatives"], window=HYPER["window"], seed=cfg.seed)
    with tempfile.TemporaryDirectory(prefix="w2v-bench-") as tmp:
        trainer = Trainer(cfg, spec, vocab, ids, starts, Path(tmp), {"benchmark": True},
                          lambda emb: {})
        cpu0 = time.process_time()
        result = trainer.run()
        cpu = time.process_time() - cpu0   # all threads: TF's and the input thread
        embeddings = trainer.model.input_embeddings.numpy()
    t2 = time.perf_counter()
    train = result["train_seconds"]
    out = {"tensorflow": __import__("tensorflow").__version__,
           "vocab_seconds": round(t1 - t0, 2), "train_seconds": round(train, 2),
           "wall_seconds": round(t2 - t0, 2), "words_per_sec": round(epochs * tokens / train),
           "train_cpu_seconds": round(cpu, 2), "words_per_cpu_sec": round(epochs * tokens / cpu),
           "cpu_utilisation": round(cpu / train, 2), "vocab_size": vocab.size - 2, "steps": result["steps"],
           "batch_size": cfg.word2vec.batch_size, "threads": cfg.word2vec.threads,
           "xla_cache_programs_before": cached_programs, "final_loss": result["final_loss"],
           "loadavg_before": before, "loadavg_after": load()}
    out.update(scores(cfg, words, embeddings))
    return out


def compare(gensim_result: dict[str, Any], ours: dict[str, Any]) -> dict[str, float]:
    """One pair's ratios (ours / gensim) and quality gaps (ours - gensim)."""
    return {
        "words_per_sec_ratio": round(ours["words_per_sec"] / gensim_result["words_per_sec"], 3),
        # CPU seconds are less sensitive to other jobs on the machine than wall time
        "words_per_cpu_sec_ratio": round(ours["words_per_cpu_sec"]
                                         / gensim_result["words_per_cpu_sec"], 3),
        "analogy_gap_points": round(100 * (ours["analogy_accuracy"]
                                           - gensim_result["analogy_accuracy"]), 2),
        "wordsim_gap": round(ours["wordsim353_spearman"]
                             - gensim_result["wordsim353_spearman"], 4)}


def summary(run: dict[str, Any]) -> dict[str, Any]:
    """The figures of one run kept in `pairs`."""
    keys = ("words_per_sec", "words_per_cpu_sec", "train_seconds", "train_cpu_seconds",
            "cpu_utilisation", "analogy_accuracy", "wordsim353_spearman", "loadavg_before",
            "loadavg_after")
    return {k: run[k] for k in keys if k in run}


def main(argv: list[str] | None = None) -> int:
    from tasks.core.params import load_params

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", default=str(REPO / "params.yaml"))
    parser.add_argument("--corpus", help="corpus.txt (default <paths.prepared>/corpus.txt)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=3, help="alternating gensim/ours pairs")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"
                                             / "word2vec_vs_gensim.json"))
    args = parser.parse_args(argv)
    overrides = {f"word2vec.{k}": v for k, v in HYPER.items()}
    overrides.update({"word2vec.epochs": args.epochs, "vocab.min_count": MIN_COUNT,
                      "vocab.sample": SAMPLE, "tracking.enabled": False})
    cfg = load_params(args.params, overrides)
    corpus = Path(args.corpus) if args.corpus else cfg.path("prepared") / "corpus.txt"
    if not corpus.is_file():
        raise SystemExit(f"error: {corpus} not found (run the prepare stage or pass --corpus)")
    with open(corpus, encoding="utf-8") as handle:
        lines = tokens = 0
        for line in handle:
            lines, tokens = lines + 1, tokens + len(line.split())
    print(f"corpus {corpus}: {tokens:,} tokens, {lines:,} lines; {args.epochs} epochs; "
          f"{args.pairs} pairs; {os.cpu_count()} CPUs, load {load()}", flush=True)
    pairs = []
    for k in range(args.pairs):
        order = ("gensim", "ours") if k % 2 == 0 else ("ours", "gensim")
        runs: dict[str, dict[str, Any]] = {}
        for side in order:
            runs[side] = (run_gensim if side == "gensim" else run_ours)(cfg, corpus, args.epochs,
                                                                         tokens)
            print(f"pair {k + 1} {side}:", json.dumps(runs[side]), flush=True)
        pairs.append({"order": list(order), **compare(runs["gensim"], runs["ours"]),
                      "gensim": runs["gensim"], "ours": runs["ours"]})
    ratios = [p["words_per_sec_ratio"] for p in pairs]
    middle = pairs[sorted(range(len(pairs)), key=ratios.__getitem__)[(len(pairs) - 1) // 2]]
    report = {
        "corpus": str(corpus), "tokens": tokens, "lines": lines, "epochs": args.epochs,
        "hyperparameters": {**HYPER, "sample": SAMPLE, "min_count": MIN_COUNT,
                            "gensim_workers": 2, "our_batch_size": cfg.word2vec.batch_size},
        "cpus": os.cpu_count(), "gensim": middle["gensim"], "ours": middle["ours"],
        "words_per_sec_ratio": middle["words_per_sec_ratio"],
        "median_words_per_sec_ratio": float(np.median(ratios)),
        "words_per_cpu_sec_ratio": float(np.median([p["words_per_cpu_sec_ratio"]
                                                    for p in pairs])),
        "analogy_gap_points": float(np.median([p["analogy_gap_points"] for p in pairs])),
        "wordsim_gap": float(np.median([p["wordsim_gap"] for p in pairs])),
        "pairs": [{k: v for k, v in p.items() if k not in ("gensim", "ours")}
                  | {"gensim": summary(p["gensim"]), "ours": summary(p["ours"])}
                  for p in pairs],
    }
    report["targets_met"] = {
        "median_words_per_sec_ratio>=1.0": report["median_words_per_sec_ratio"] >= 1.0,
        "words_per_cpu_sec_ratio>=1.2": report["words_per_cpu_sec_ratio"] >= 1.2,
        "analogy_within_1_point": report["analogy_gap_points"] >= -1.0,
        "wordsim_within_0.02": report["wordsim_gap"] >= -0.02}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"median ratio ours/gensim words/s: {report['median_words_per_sec_ratio']} "
          f"(pairs {ratios}); per CPU-s {report['words_per_cpu_sec_ratio']}; analogy gap "
          f"{report['analogy_gap_points']} points; WS353 gap {report['wordsim_gap']}; "
          f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
