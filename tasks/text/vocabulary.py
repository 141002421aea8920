"""The vocabulary: built from corpus counts by the `vocab` stage, loaded by word2vec, export
and the CNN.

Files, together in `<paths.vocab>/`:
- vocab.tsv  `index<TAB>word<TAB>count<TAB>keep_prob<TAB>noise_prob` (header);
- vocab.npz  words (str), counts int64, keep_prob float32, noise_prob float32, same order.
Row 0 is `<pad>` (count 0), row 1 `<unk>` (count = OOV tokens in the corpus); then words with
count >= min_count by descending count, ties by word, cut so that the table has at most
`max_size` rows (0 = no limit). Reserved rows have keep_prob 0 and noise_prob 0.
- keep_prob (word2vec.c sub-sampling, t = sample, T = total count of the kept words):
  keep = min(1, (sqrt(f / (t*T)) + 1) * t*T / f); t = 0 -> 1.
- noise_prob = count^noise_power / sum(count^noise_power), over the kept words.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tasks.core.errors import PipelineError

PAD, UNK = 0, 1
RESERVED = ("<pad>", "<unk>")
_LINES_PER_CHUNK = 1 << 16


def _chunks(path: Path) -> Iterable[list[str]]:
    """Lists of ~64k lines: long enough that per-chunk overhead disappears, short for memory."""
    with open(path, encoding="utf-8") as handle:
        while chunk := list(itertools.islice(handle, _LINES_PER_CHUNK)):
            yield chunk


def count_words(path: Path) -> tuple[Counter[str], int]:
    """(word counts, sentences) of a corpus file, streamed."""
    counts: Counter[str] = Counter()
    sentences = 0
    for chunk in _chunks(path):
        counts.update("".join(chunk).split())
        sentences += len(chunk)
    return counts, sentences


def keep_probability(counts: np.ndarray, sample: float) -> np.ndarray:
    """word2vec.c's sub-sampling keep probability per word, float64 [V_words]."""
    counts = counts.astype(np.float64)
    if sample == 0:
        return np.ones_like(counts)
    threshold = sample * counts.sum()  # t * T
    return np.minimum(1.0, (np.sqrt(counts / threshold) + 1.0) * threshold / counts)


def noise_distribution(counts: np.ndarray, power: float) -> np.ndarray:
    """count^power normalised to sum 1, float64 [V_words]."""
    weights = counts.astype(np.float64) ** power
    return weights / weights.sum()


def build(counts: Counter[str], min_count: int, max_size: int, sample: float,
          noise_power: float) -> dict[str, np.ndarray]:
    """Counts -> the vocabulary table (reserved rows first), as the arrays of vocab.npz."""
    kept = sorted(((w, c) for w, c in counts.items() if c >= min_count),
                  key=lambda wc: (-wc[1], wc[0]))
    if max_size:
        kept = kept[: max(0, max_size - len(RESERVED))]
    if not kept:
        raise PipelineError(f"all-unknown corpus: no word occurs >= vocab.min_count = "
                            f"{min_count} times")
    clash = [w for w in RESERVED if w in counts]
    if clash:
        raise PipelineError(f"corpus contains the reserved token {clash[0]!r}")
    words = [w for w, _ in kept]
    word_counts = np.array([c for _, c in kept], dtype=np.int64)
    oov = sum(counts.values()) - int(word_counts.sum())
    zero = np.zeros(len(RESERVED))
    return {
        "words": np.array([*RESERVED, *words]),
        "counts": np.concatenate([[0, oov], word_counts]).astype(np.int64),
        "keep_prob": np.concatenate([zero, keep_probability(word_counts, sample)])
        .astype(np.float32),
        "noise_prob": np.concatenate([zero, noise_distribution(word_counts, noise_power)])
        .astype(np.float32),
    }


def write(table: dict[str, np.ndarray], folder: Path) -> None:
    """Write vocab.tsv and vocab.npz of `table` (from `build`) into `folder`."""
    with open(folder / "vocab.tsv", "w", encoding="utf-8", newline="\n") as out:
        out.write("index\tword\tcount\tkeep_prob\tnoise_prob\n")
        rows = zip(table["words"].tolist(), table["counts"].tolist(),
                   table["keep_prob"].tolist(), table["noise_prob"].tolist(), strict=True)
        out.writelines(f"{i}\t{w}\t{c}\t{k:.9g}\t{n:.9g}\n" for i, (w, c, k, n) in enumerate(rows))
    with open(folder / "vocab.npz", "wb") as handle:
        np.savez(handle, **table)


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """vocab.npz in memory; row i of every array (and of embeddings.npy) is word i."""

    words: list[str]
    counts: np.ndarray      # [V] int64
    keep_prob: np.ndarray   # [V] float32
    noise_prob: np.ndarray  # [V] float32
    index: dict[str, int]

    PAD = PAD
    UNK = UNK

    @property
    def size(self) -> int:
        return len(self.words)

    def encode(self, tokens: Iterable[str] | str) -> np.ndarray:
        """Tokens (or one space-separated string) -> ids [n] int32; unknown words -> UNK."""
        if isinstance(tokens, str):
            tokens = tokens.split()
        return np.fromiter(map(self.index.get, tokens, itertools.repeat(UNK)), dtype=np.int32)


def load_vocab(folder: Path | str) -> Vocabulary:
    """Read `<folder>/vocab.npz` (written by the vocab stage)."""
    path = Path(folder) / "vocab.npz"
    if not path.is_file():
        raise PipelineError(f"{path} not found: run the vocab stage first")
    with np.load(path, allow_pickle=False) as npz:
        words = npz["words"].tolist()
        return Vocabulary(words, npz["counts"], npz["keep_prob"], npz["noise_prob"],
                          {w: i for i, w in enumerate(words)})


def encode_file(corpus_path: Path | str, vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """A whole corpus file -> (ids [N_tokens] int32, sentence_starts [N_sentences] int64).

    Sentence i is ids[starts[i]:starts[i+1]] (the last runs to the end). Blank lines are
    skipped. Encoded 64k lines at a time through one C-level `map(dict.get)`, straight into
    one preallocated array: a file of B bytes has at most (B + 1) // 2 tokens and lines, so
    that bound is allocated (virtual memory: pages never written never become resident) and
    shrunk in place at the end. Peak memory is the ids themselves (4 bytes a token) plus one
    64k-line chunk, never a second copy of the corpus.
    """
    path = Path(corpus_path)
    bound = (path.stat().st_size + 1) // 2 + 1
    ids = np.empty(bound, np.int32)
    starts = np.empty(bound, np.int64)
    n_ids = n_starts = 0
    for chunk in _chunks(path):
        tokens = "".join(chunk).split()
        # Tokens per line; clean_str output has single spaces, but count robustly anyway.
        n = np.fromiter((len(line.split()) for line in chunk), dtype=np.int64, count=len(chunk))
        n = n[n > 0]
        starts[n_starts:n_starts + len(n)] = n_ids + np.concatenate([[0], np.cumsum(n)[:-1]])
        ids[n_ids:n_ids + len(tokens)] = np.fromiter(
            map(vocab.index.get, tokens, itertools.repeat(UNK)), dtype=np.int32,
            count=len(tokens))
        n_ids, n_starts = n_ids + len(tokens), n_starts + len(n)
    # In-place shrink (realloc, no copy of the data for large blocks).
    ids.resize(n_ids, refcheck=False)
    starts.resize(n_starts, refcheck=False)
    return ids, starts
