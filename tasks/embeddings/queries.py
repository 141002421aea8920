"""Querying trained word vectors: nearest neighbours and analogies (the workshop's queries).

    emb = load_embeddings(cfg, source="word2vec")   # or "export"
    nearby(emb, ["movie", "good"], k=8)   # {"movie": [("film", 0.91), ...], ...}
    analogy(emb, "man", "king", "woman")  # man is to king as woman is to ? -> [("queen", .6)]

Sources (paths from params):
- word2vec: <paths.word2vec>/embeddings.npy with the words of <paths.vocab>/vocab.npz;
- export:   <paths.export>/embeddings.npy with <paths.export>/vocab.tsv (one word a line).
Similarity is cosine over unit-normalised rows; `<pad>` / `<unk>` and the query words are
never answers. An unknown word raises UnknownWordError (a PipelineError, so the CLI in
the CLI `main` below, run as `python -m tasks.word2vec nearby|analogy`, prints one line
and exits 2).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tasks.core.errors import PipelineError
from tasks.core.params import PARAMS_FILE, load_params
from tasks.core.stage import guarded, parse_overrides
from tasks.embeddings.evaluation import RESERVED, unit_rows


class UnknownWordError(PipelineError):
    """A query word is not in the vocabulary."""


@dataclass(frozen=True)
class Embeddings:
    words: list[str]
    unit: np.ndarray           # [V, d] float32, unit rows (zero rows stay zero)
    index: dict[str, int]

    @classmethod
    def of(cls, words: Sequence[str], vectors: np.ndarray) -> Embeddings:
        words = list(words)
        if len(words) != len(vectors):
            raise PipelineError(f"{len(words)} words but {len(vectors)} embedding rows")
        return cls(words, unit_rows(vectors), {w: i for i, w in enumerate(words)})

    def row(self, word: str) -> int:
        i = self.index.get(word, self.index.get(word.lower()))
        if i is None or word in RESERVED:
            raise UnknownWordError(f"unknown word {word!r} (not in the vocabulary)")
        return i


def load_embeddings(cfg: Any, source: str = "word2vec") -> Embeddings:
    """The trained vectors of the word2vec stage or the export stage (see module docstring)."""
    if source == "export":
        folder = cfg.path("export")
        vectors_file, vocab_file = folder / "embeddings.npy", folder / "vocab.tsv"
        if not vocab_file.is_file():
            raise PipelineError(f"{vocab_file} not found: run the export stage first")
        words = vocab_file.read_text(encoding="utf-8").split("\n")[:-1]
    elif source == "word2vec":
        from tasks.text.vocabulary import load_vocab

        vectors_file = cfg.path("word2vec") / "embeddings.npy"
        words = list(load_vocab(cfg.path("vocab")).words)
    else:
        raise PipelineError(f"unknown source {source!r} (word2vec or export)")
    if not Path(vectors_file).is_file():
        raise PipelineError(f"{vectors_file} not found: run the {source} stage first")
    return Embeddings.of(words, np.load(vectors_file))


def _top(emb: Embeddings, target: np.ndarray, exclude: set[int],
         k: int) -> list[tuple[str, float]]:
    sims = emb.unit @ target                                   # [V]
    for i in exclude | {emb.index[w] for w in RESERVED if w in emb.index}:
        sims[i] = -np.inf
    k = min(k, int(np.isfinite(sims).sum()))
    best = np.argpartition(-sims, k - 1)[:k] if k > 0 else np.zeros(0, np.int64)
    best = best[np.argsort(-sims[best], kind="stable")]
    return [(emb.words[i], round(float(sims[i]), 4)) for i in best]


def nearby(emb: Embeddings, words: Sequence[str], k: int = 8) -> dict[str, list[tuple[str, float]]]:
    """Top-k cosine neighbours of each word (the word itself excluded)."""
    rows = {w: emb.row(w) for w in words}          # every word checked before any work
    return {w: _top(emb, emb.unit[i], {i}, k) for w, i in rows.items()}


def analogy(emb: Embeddings, a: str, b: str, c: str, k: int = 4) -> list[tuple[str, float]]:
    """a is to b as c is to ?: 3CosAdd, argmax cos(x, b - a + c) excluding a, b, c."""
    ia, ib, ic = emb.row(a), emb.row(b), emb.row(c)
    target = emb.unit[ib] - emb.unit[ia] + emb.unit[ic]
    norm = np.linalg.norm(target)
    return _top(emb, target / norm if norm > 0 else target, {ia, ib, ic}, k)


def main(argv: Sequence[str]) -> int:
    """`python -m tasks.word2vec nearby|analogy ...`; one-line errors, exit code 2."""

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
    for p in (near, ana):
        p.add_argument("--verbose", action="store_true", help="traceback of unexpected errors")
    args = parser.parse_args(argv)

    def body() -> None:
        if args.k < 1:
            raise PipelineError(f"--k: must be >= 1, got {args.k}")
        cfg = load_params(args.params, parse_overrides(args.overrides))
        emb = load_embeddings(cfg, args.source)
        if args.command == "nearby":
            for word, hits in nearby(emb, args.words, args.k).items():
                print(f"{word}: " + ", ".join(f"{w} {s:.3f}" for w, s in hits))
        else:
            a, b, c = args.words
            hits = analogy(emb, a, b, c, args.k)
            print(f"{a} : {b} :: {c} : " + ", ".join(f"{w} {s:.3f}" for w, s in hits))

    return guarded("word2vec", body, args.verbose)
