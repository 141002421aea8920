"""The `export` stage: trained word vectors in the formats other tools read.

Params: `export` (projector_words). Inputs: <paths.word2vec>/embeddings.npy [V, d] and the
vocabulary <paths.vocab>/vocab.npz (row i of one is word i of the other).
Outputs, together in <paths.export>/ (atomic_dir: all or nothing):
- vectors.txt: word2vec text format (`V' d` header, then `word v1 .. vd`), real words only
  (no <pad>/<unk>), frequency order, 7 significant digits (float32 precision); loads with
  gensim `KeyedVectors.load_word2vec_format(path)`.
- embeddings.npy: [V, d] float32 aligned row-for-row with the vocabulary (what the CNN
  loads): row 0 <pad> is zeros, row 1 <unk> is the mean of the real words' vectors (a neutral
  vector for words the classifier has not seen), the rest as trained.
- vocab.tsv: one word per line, V lines, same order as embeddings.npy.
- projector/: TensorBoard projector of the `projector_words` most frequent words
  (metadata.tsv, a checkpoint holding the tensor, projector_config.pbtxt):
  `tensorboard --logdir <paths.export>/projector`.
Metrics: words_exported, dims, projector_words. MLflow artifacts: vectors.txt, vocab.tsv,
projector/.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tasks.core import tracking
from tasks.core.atomic import atomic_dir
from tasks.core.errors import PipelineError
from tasks.core.params import Config
from tasks.core.stage import stage_main
from tasks.embeddings.exporters import RESERVED, export_matrix, write_projector, write_vectors_txt
from tasks.text.vocabulary import load_vocab


def run(cfg: Config) -> dict[str, Any]:
    source = cfg.path("word2vec") / "embeddings.npy"
    if not source.is_file():
        raise PipelineError(f"{source} not found: run the word2vec stage first")
    vocab = load_vocab(cfg.path("vocab"))
    embeddings = np.load(source)
    if embeddings.ndim != 2 or len(embeddings) != vocab.size:
        raise PipelineError(f"{source}: shape {embeddings.shape} does not match the vocabulary "
                            f"({vocab.size} words): rerun the word2vec stage")
    if not np.isfinite(embeddings).all():
        raise PipelineError(f"{source}: contains NaN or Inf")
    matrix = export_matrix(embeddings)
    words = list(vocab.words)
    top = min(cfg.export.projector_words, len(words) - RESERVED)
    with atomic_dir(cfg.path("export")) as out:
        write_vectors_txt(out / "vectors.txt", words[RESERVED:], matrix[RESERVED:])
        np.save(out / "embeddings.npy", matrix)
        with open(out / "vocab.tsv", "w", encoding="utf-8", newline="\n") as handle:
            handle.writelines(f"{w}\n" for w in words)
        write_projector(out / "projector", words[RESERVED:RESERVED + top],
                        matrix[RESERVED:RESERVED + top])
    final = cfg.path("export")
    tracking.log_artifact(final / "vectors.txt", "export")
    tracking.log_artifact(final / "vocab.tsv", "export")
    tracking.log_artifacts(final / "projector", "export/projector")
    return {"words_exported": len(words) - RESERVED, "dims": int(matrix.shape[1]),
            "projector_words": top}


def main(argv: list[str] | None = None) -> int:
    return stage_main("export", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
