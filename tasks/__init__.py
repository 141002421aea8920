"""The pipeline's plain-Python code (never imports Prefect).

Stage entry points, one module per dvc.yaml stage (`python -m tasks.<stage>`): download,
prepare, vocab, word2vec, export, cnn; plus the `compare` command. Each exposes
`run(cfg) -> metrics` and a thin `main()`; no stage entry imports another.
Libraries, by concern (docs/architecture.md): core, text, ingest, embeddings, classifier,
distributed.
"""

import os as _os

# Before anything imports TensorFlow: its C++ start-up INFO/WARNING lines (CPU features,
# oneDNN) are noise in stage logs; errors still show. An explicit setting wins.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
