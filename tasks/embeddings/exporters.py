"""Word vectors in the formats other tools read (used by the word2vec and export stages).

- `write_projector(folder, words, vectors)`: a TensorBoard projector (metadata.tsv, a
  checkpoint holding the [n, d] tensor + its `checkpoint` index file, projector_config.pbtxt);
- `write_vectors_txt(path, words, vectors)`: word2vec text format, loads with gensim
  `KeyedVectors.load_word2vec_format(path)`;
- `export_matrix(embeddings)`: the [V, d] matrix the CNN loads (<pad> zeros, <unk> the mean).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

RESERVED = 2  # <pad>, <unk>: rows 0 and 1 of every vocabulary-aligned matrix


def write_projector(folder: Path, words: Sequence[str], vectors: np.ndarray) -> None:
    """A TensorBoard projector in `folder`: metadata.tsv + checkpointed tensor + config."""
    import tensorflow as tf
    from tensorboard.plugins import projector

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "metadata.tsv", "w", encoding="utf-8", newline="\n") as handle:
        handle.writelines(f"{w}\n" for w in words)   # one column: no header line
    embedding = tf.Variable(np.asarray(vectors, np.float32), name="embedding")
    tf.train.Checkpoint(embedding=embedding).write(str(folder / "embedding.ckpt"))
    config = projector.ProjectorConfig()
    entry = config.embeddings.add()
    entry.tensor_name = "embedding/.ATTRIBUTES/VARIABLE_VALUE"
    entry.metadata_path = "metadata.tsv"
    projector.visualize_embeddings(str(folder), config)
    # The projector plugin finds the tensor through the folder's `checkpoint` index file
    # (tf.train.get_checkpoint_state); without it, it reports "No checkpoint was found". The path
    # is relative, so the folder still works after DVC moves it or checks it out elsewhere.
    (folder / "checkpoint").write_text('model_checkpoint_path: "embedding.ckpt"\n'
                                       'all_model_checkpoint_paths: "embedding.ckpt"\n')


def write_vectors_txt(path: Path, words: Sequence[str], vectors: np.ndarray) -> None:
    """word2vec text format: header `n d`, then one `word v1 ... vd` line per word."""
    n, d = vectors.shape
    row_format = " ".join(["%.7g"] * d)
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(f"{n} {d}\n")
        for word, row in zip(words, vectors.tolist(), strict=True):
            handle.write(f"{word} {row_format % tuple(row)}\n")


def export_matrix(embeddings: np.ndarray) -> np.ndarray:
    """The exported [V, d] float32 matrix: <pad> zeros, <unk> the mean real vector."""
    out = np.array(embeddings, dtype=np.float32, copy=True)
    out[0] = 0.0
    out[1] = out[RESERVED:].mean(axis=0) if len(out) > RESERVED else 0.0
    return out
