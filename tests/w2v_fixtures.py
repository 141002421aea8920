"""Tiny word2vec workspaces for the word2vec / export tests (real vocab stage, real files).

`planted_corpus()` has two topics whose words co-occur only within their topic, so a working
word2vec puts every word's nearest neighbours in its own topic. `workspace(root, **overrides)`
writes corpus, tiny eval files and a params.yaml under `root`, runs the real vocab stage and
returns the Config (loaded from that params.yaml, so subprocesses can use it too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tasks import vocab
from tasks.core.params import Config, apply_overrides, load_params

REPO = Path(__file__).resolve().parents[1]
TOPIC_A = [f"a{i}" for i in range(8)]
TOPIC_B = [f"b{i}" for i in range(8)]

ANALOGIES = """: capital-common-countries
a0 a1 b0 b1
a0 a1 zz b1
: gram1-adjective-to-adverb
a2 a3 b2 b3
"""
WORDSIM = """# word1\tword2\tscore
a0\ta1\t9.0
a0\tb0\t1.0
b2\tb3\t8.5
a4\tb5\t0.5
a0\tzz\t5.0
"""

BASE = {
    "vocab.min_count": 1, "vocab.sample": 0.0,
    "word2vec.dims": 16, "word2vec.window": 2, "word2vec.negatives": 3,
    "word2vec.epochs": 3, "word2vec.batch_size": 64, "word2vec.learning_rate": 0.05,
    "word2vec.min_learning_rate": 0.0001, "word2vec.checkpoint_every": 20,
    "word2vec.analogy_file": "eval/questions.txt", "word2vec.wordsim_file": "eval/ws.tsv",
    "word2vec.restrict_vocab": 30000, "export.projector_words": 10,
    "tracking.enabled": False,
}


def planted_corpus(sentences: int = 600, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(sentences):
        topic = TOPIC_A if i % 2 == 0 else TOPIC_B
        lines.append(" ".join(rng.choice(topic, size=int(rng.integers(6, 11)))))
    return "\n".join(lines) + "\n"


def workspace(root: Path, corpus: str | None = None, **overrides: Any) -> Config:
    root.mkdir(parents=True, exist_ok=True)
    (root / "data" / "prepared").mkdir(parents=True, exist_ok=True)
    (root / "data" / "prepared" / "corpus.txt").write_text(corpus or planted_corpus())
    (root / "eval").mkdir(exist_ok=True)
    (root / "eval" / "questions.txt").write_text(ANALOGIES)
    (root / "eval" / "ws.tsv").write_text(WORDSIM)
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw = apply_overrides(raw, {**BASE, **overrides})
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = load_params(root / "params.yaml")
    vocab.run(cfg)
    return cfg
