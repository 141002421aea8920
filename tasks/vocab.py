"""The `vocab` stage: count the corpus and write the vocabulary table.

Params: `vocab` (min_count, max_size, sample, noise_power).
Input: `<paths.prepared>/corpus.txt` (one sentence per line, space-separated tokens).
Outputs: `<paths.vocab>/vocab.tsv` and `vocab.npz` together (atomic_dir); their layout and the
sub-sampling / noise formulas are in tasks/text/vocabulary.py.
Metrics: vocab_size, corpus_tokens, corpus_sentences, oov_rate, coverage, kept_fraction, ...
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tasks.core import tracking
from tasks.core.atomic import atomic_dir
from tasks.core.errors import PipelineError
from tasks.core.params import Config
from tasks.core.stage import stage_main
from tasks.text.vocabulary import UNK, build, count_words, write


def run(cfg: Config) -> dict[str, Any]:
    corpus = cfg.path("prepared") / "corpus.txt"
    if not corpus.is_file():
        raise PipelineError(f"{corpus} not found: run the prepare stage first")
    v = cfg.vocab
    counts, sentences = count_words(corpus)
    total = sum(counts.values())
    if total == 0:
        raise PipelineError(f"{corpus}: empty corpus (no tokens)")
    table = build(counts, v.min_count, v.max_size, v.sample, v.noise_power)
    with atomic_dir(cfg.path("vocab")) as folder:
        write(table, folder)
    tracking.log_artifact(cfg.path("vocab") / "vocab.tsv")
    word_counts = table["counts"][2:]
    oov = int(table["counts"][UNK])
    kept = float((word_counts * table["keep_prob"][2:].astype(np.float64)).sum())
    return {
        "vocab_size": len(table["words"]),
        "corpus_tokens": total,
        "corpus_sentences": sentences,
        "corpus_types": len(counts),
        "oov_tokens": oov,
        "oov_rate": round(oov / total, 6),
        "coverage": round(1 - oov / total, 6),
        "type_coverage": round((len(table["words"]) - 2) / len(counts), 6),
        "kept_fraction": round(kept / float(word_counts.sum()), 6),
    }


def main(argv: list[str] | None = None) -> int:
    return stage_main("vocab", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
