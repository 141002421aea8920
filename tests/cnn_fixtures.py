"""Tiny inputs for the `cnn` stage tests, written in the stage contracts' formats.

`write_inputs(root, ...)` creates, under a project root laid out as params.yaml's `paths`:
- data/prepared/{train,dev,test}.tsv, all.tsv (with `fold`), labels.txt: two classes whose
  sentences use POSITIVE or NEGATIVE words among shared FILLER words (already clean_str'ed);
- data/vocab/vocab.tsv + vocab.npz, built by the product's own `tasks.text.vocabulary`;
- data/export/embeddings.npy [V, DIMS] + vocab.tsv, with a planted sentiment direction
  (dimension 0) so pretrained variants start informed; MISSING words are left out of it.
`TINY` are `cnn` params small enough for a few seconds of CPU training.
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np

from tasks.text import vocabulary

POSITIVE = ["good", "great", "witty", "gorgeous", "fine", "moving", "superb", "fun"]
NEGATIVE = ["bad", "awful", "dull", "boring", "poor", "messy", "tedious", "flat"]
FILLER = ["the", "movie", "is", "a", "film", "plot", "and", "this", "story", "really"]
MISSING = ["story", "really"]  # in the vocabulary but not in the exported embeddings
DIMS = 8

TINY = {
    "cnn.embedding_dims": DIMS, "cnn.filter_windows": [2, 3], "cnn.feature_maps": 8,
    "cnn.max_length": 12, "cnn.batch_size": 8, "cnn.epochs": 4, "cnn.patience": 4,
    "cnn.learning_rate": 0.01, "cnn.dropout": 0.2, "prepare.folds": 3,
    "tracking.enabled": False,
}


def sentence(rng: np.random.Generator, label: str) -> str:
    cue = POSITIVE if label == "pos" else NEGATIVE
    words = [*rng.choice(FILLER, size=rng.integers(2, 6)), *rng.choice(cue, size=2)]
    return " ".join(rng.permutation(words))


def write_tsv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.write_text("".join("\t".join(r) + "\n" for r in [header, *rows]), encoding="utf-8")


def write_inputs(root: Path, sizes: tuple[int, int, int] = (40, 12, 12), seed: int = 0,
                 folds: int = 3) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    prepared, vocab, export = root / "data/prepared", root / "data/vocab", root / "data/export"
    for folder in (prepared, vocab, export):
        folder.mkdir(parents=True, exist_ok=True)
    splits = {}
    for split, n in zip(("train", "dev", "test"), sizes, strict=True):
        splits[split] = [[label, sentence(rng, label)] for label in ["neg", "pos"] * (n // 2)]
        write_tsv(prepared / f"{split}.tsv", ["label", "text"], splits[split])
    everything = [[lab, text, s] for s, rows in splits.items() for lab, text in rows]
    write_tsv(prepared / "all.tsv", ["label", "text", "split", "fold"],
              [[*r, str(i % folds)] for i, r in enumerate(everything)])
    (prepared / "labels.txt").write_text("neg\npos\n", encoding="utf-8")

    # The vocabulary table as the vocab stage builds it (every word kept, no sub-sampling).
    counts = collections.Counter(w for r in everything for w in r[1].split())
    table = vocabulary.build(counts, min_count=1, max_size=0, sample=0.0, noise_power=0.75)
    vocabulary.write(table, vocab)
    words = table["words"].tolist()

    exported = [w for w in words if w not in MISSING]
    vectors = rng.normal(0, 0.3, size=(len(exported), DIMS)).astype(np.float32)
    for i, w in enumerate(exported):
        vectors[i, 0] += 1.0 if w in POSITIVE else -1.0 if w in NEGATIVE else 0.0
    vectors[0] = 0.0
    np.save(export / "embeddings.npy", vectors)
    (export / "vocab.tsv").write_text("".join(w + "\n" for w in exported), encoding="utf-8")
    return {"prepared": prepared, "vocab": vocab, "export": export}


def read_vocab_words(folder: Path) -> list[str]:
    """vocab.tsv's `word` column (a minimal reader, independent of the stage's loader)."""
    lines = (folder / "vocab.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t")[1] for line in lines]
