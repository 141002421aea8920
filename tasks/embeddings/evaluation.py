"""Intrinsic evaluation of word vectors: word analogies and WordSim-353, as gensim scores them.

Params section `word2vec`: `analogy_file` (questions-words.txt), `wordsim_file`
(wordsim353.tsv), `restrict_vocab`. Both files are DVC dependencies of the word2vec stage:
a missing file is a PipelineError naming the param, never a silently absent metric.

- Analogies (gensim `KeyedVectors.evaluate_word_analogies`): `: section` headers, then
  `a b c d` lines ("a is to b as c is to d"). Words are lowercased; only the `restrict_vocab`
  most frequent words count (a question with any word outside them is skipped, not failed);
  the answer is 3CosAdd over unit-normalised vectors, argmax of cos(x, b - a + c) over those
  words excluding a, b and c. Accuracy = correct / seen. Sections named `gram*` are syntactic,
  the others semantic.
- WordSim-353 (gensim `evaluate_word_pairs`): `w1<TAB>w2<TAB>score` lines, `#` comments;
  Spearman correlation of the human scores with cosine similarity; pairs with a word missing
  from the vocabulary are skipped and counted.

`words` is the vocabulary in frequency order (row i of `vectors` is words[i]); the reserved
`<pad>` / `<unk>` rows are never candidates. Works for any embeddings (the benchmark scores
gensim's vectors with the same code).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tasks.core.errors import PipelineError

RESERVED = ("<pad>", "<unk>")
_QUESTION_BLOCK = 1024  # questions scored per matrix product ([1024, restrict] floats)


def _read_lines(path: Path | str, param: str) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"word2vec.{param}: {path} not found")
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


def load_analogies(path: Path | str) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """[(section, [(a, b, c, d), ...]), ...] in file order, lowercased."""
    sections: list[tuple[str, list[tuple[str, str, str, str]]]] = []
    for line in _read_lines(path, "analogy_file"):
        if line.startswith(":"):
            sections.append((line[1:].strip(), []))
        elif line.strip():
            parts = line.lower().split()
            if len(parts) != 4:
                raise PipelineError(f"word2vec.analogy_file: {path}: bad line {line!r}")
            if not sections:
                sections.append(("questions", []))
            sections[-1][1].append((parts[0], parts[1], parts[2], parts[3]))
    return sections


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit l2 norm (zero rows stay zero), float32."""
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def restricted_index(words: Sequence[str], restrict_vocab: int) -> dict[str, int]:
    """lowercased word -> row, over the first `restrict_vocab` real words (first wins)."""
    real = [(i, w) for i, w in enumerate(words) if w not in RESERVED][:restrict_vocab]
    index: dict[str, int] = {}
    for i, w in real:
        index.setdefault(w.lower(), i)
    return index


def analogy_accuracy(words: Sequence[str], vectors: np.ndarray, path: Path | str,
                     restrict_vocab: int) -> dict[str, Any]:
    """Overall / semantic / syntactic / per-section accuracy and seen vs total questions."""
    sections = load_analogies(path)
    index = restricted_index(words, restrict_vocab)
    rows = np.array(sorted(index.values()), np.int64)          # candidate rows [R]
    position = {r: p for p, r in enumerate(rows.tolist())}
    cand = unit_rows(np.asarray(vectors)[rows])                 # [R, d]
    per_section: dict[str, dict[str, float]] = {}
    totals = {"all": [0, 0], "semantic": [0, 0], "syntactic": [0, 0]}
    total_questions = 0
    for name, questions in sections:
        total_questions += len(questions)
        seen = [q for q in questions if all(w in index for w in q)]
        ids = np.array([[position[index[w]] for w in q] for q in seen], np.int64).reshape(-1, 4)
        correct = 0
        for start in range(0, len(ids), _QUESTION_BLOCK):
            block = ids[start:start + _QUESTION_BLOCK]
            target = cand[block[:, 1]] - cand[block[:, 0]] + cand[block[:, 2]]   # [q, d]
            sims = target @ cand.T                                             # [q, R]
            np.put_along_axis(sims, block[:, :3], -np.inf, axis=1)
            correct += int((sims.argmax(axis=1) == block[:, 3]).sum())
        kind = "syntactic" if name.startswith("gram") else "semantic"
        for key in ("all", kind):
            totals[key][0] += correct
            totals[key][1] += len(seen)
        per_section[name] = {"correct": correct, "seen": len(seen), "total": len(questions),
                             "accuracy": round(correct / len(seen), 6) if seen else 0.0}

    def acc(key: str) -> float:
        ok, n = totals[key]
        return round(ok / n, 6) if n else 0.0

    return {"analogy_accuracy": acc("all"), "analogy_semantic": acc("semantic"),
            "analogy_syntactic": acc("syntactic"), "analogy_seen": totals["all"][1],
            "analogy_total": total_questions, "analogy_sections": per_section}


def load_wordsim(path: Path | str) -> list[tuple[str, str, float]]:
    pairs = []
    for line in _read_lines(path, "wordsim_file"):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        try:
            pairs.append((parts[0].strip().lower(), parts[1].strip().lower(), float(parts[2])))
        except (IndexError, ValueError):
            raise PipelineError(f"word2vec.wordsim_file: {path}: bad line {line!r}") from None
    return pairs


def wordsim_spearman(words: Sequence[str], vectors: np.ndarray,
                     path: Path | str) -> dict[str, Any]:
    """Spearman rho of human scores vs cosine similarity, pairs used, pairs skipped (OOV)."""
    from scipy.stats import spearmanr

    pairs = load_wordsim(path)
    index = restricted_index(words, len(words))
    used = [(index[a], index[b], s) for a, b, s in pairs if a in index and b in index]
    result: dict[str, Any] = {"wordsim353_pairs": len(used),
                              "wordsim353_oov": len(pairs) - len(used)}
    if len(used) < 2:
        result["wordsim353_spearman"] = 0.0
        return result
    unit = unit_rows(np.asarray(vectors))
    a, b, human = (np.array(col) for col in zip(*used, strict=True))
    cosine = (unit[a] * unit[b]).sum(axis=1)
    rho = spearmanr(human, cosine).statistic
    result["wordsim353_spearman"] = round(float(rho), 6) if np.isfinite(rho) else 0.0
    return result


def evaluate_vectors(words: Sequence[str], vectors: np.ndarray, analogy_file: Path | str,
                     wordsim_file: Path | str, restrict_vocab: int) -> dict[str, Any]:
    return {**analogy_accuracy(words, vectors, analogy_file, restrict_vocab),
            **wordsim_spearman(words, vectors, wordsim_file)}


def evaluate(cfg: Any, vocab: Any, embeddings: np.ndarray) -> dict[str, Any]:
    """The stage's evaluation metrics for embeddings aligned row-for-row with `vocab`."""
    w = cfg.word2vec
    return evaluate_vectors(vocab.words, embeddings, cfg.resolve(w.analogy_file),
                            cfg.resolve(w.wordsim_file), w.restrict_vocab)
