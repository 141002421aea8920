"""The word2vec side of a distributed job: data, model, and the stage's outputs.

Params sections: `seed`, `paths` (prepared, vocab, word2vec), `word2vec`.

The one place that knows the single-process stage's pieces (tasks/text/vocabulary.py,
tasks/embeddings/model.py, inputs.py, evaluation.py), so that the distributed job trains the
same model with the stage's own Trainer (tasks/embeddings/training.py) and publishes the same
files.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from typing import Any

import numpy as np

from tasks.core import tracking
from tasks.core.atomic import atomic_file, write_json
from tasks.core.errors import PipelineError
from tasks.core.params import Config
from tasks.distributed.runtime import JobDir, log
from tasks.text.vocabulary import Vocabulary, encode_file, load_vocab

# The evaluation metrics the single-process stage reports (tasks/word2vec.py).
EVAL_KEYS = ("analogy_accuracy", "analogy_semantic", "analogy_syntactic", "analogy_seen",
             "analogy_total", "analogy_sections", "wordsim353_spearman", "wordsim353_pairs",
             "wordsim353_oov")


@dataclass
class TrainingData:
    """The encoded corpus and vocabulary every task of the job loads (deterministically)."""

    cfg: Config
    vocab: Vocabulary
    ids: np.ndarray      # [N_tokens] int32
    starts: np.ndarray   # [N_sentences] int64
    spec: Any            # tasks.embeddings.model.Word2VecSpec

    @property
    def tokens(self) -> int:
        return int(len(self.ids))

    @classmethod
    def load(cls, cfg: Config) -> TrainingData:
        from tasks.embeddings.model import Word2VecSpec

        corpus = cfg.path("prepared") / "corpus.txt"
        if not corpus.is_file():
            raise PipelineError(f"{corpus} not found: run the prepare stage first")
        from tasks.embeddings import evaluation as w2v_eval

        # Fail before training, not after it (as the single-process stage does).
        w2v_eval.load_analogies(cfg.resolve(cfg.word2vec.analogy_file))
        w2v_eval.load_wordsim(cfg.resolve(cfg.word2vec.wordsim_file))
        vocab = load_vocab(cfg.path("vocab"))
        ids, starts = encode_file(corpus, vocab)
        w = cfg.word2vec
        spec = Word2VecSpec.from_params(w, vocab.size, cfg.seed)
        return cls(cfg, vocab, ids, starts, spec)

    def evaluator(self) -> Any:
        """embeddings [V, d] -> the stage's evaluation scores (the Trainer's epoch-end call)."""
        from tasks.embeddings import evaluation as w2v_eval

        return lambda embeddings: w2v_eval.evaluate(self.cfg, self.vocab, embeddings)


def embeddings_of(model: Any) -> np.ndarray:
    """The input embeddings [V, dims] float32, gathered from replicas or parameter servers."""
    import tensorflow as tf

    return tf.convert_to_tensor(model.input_embeddings).numpy().astype(np.float32)


def digest(model: Any) -> str:
    """sha256 of every variable's bytes (replica identity checks)."""
    import hashlib

    import tensorflow as tf

    h = hashlib.sha256()
    for name, var in sorted(model.variables_by_name().items()):
        h.update(name.encode())
        h.update(tf.convert_to_tensor(var).numpy().tobytes())
    return h.hexdigest()


def publish(cfg: Config, data: TrainingData, model: Any, job: JobDir,
            result: dict[str, Any], shape: str) -> dict[str, Any]:
    """Write the word2vec stage's outputs; return its metrics (same keys as the stage).

    Like tasks/word2vec.py: <paths.word2vec>/ is the stage's persistent folder; embeddings.npy
    and model.json are replaced atomically (stale ones removed first), the projector goes to
    tensorboard/. The job's own checkpoints and summaries are copied to
    checkpoints/distributed/ and tensorboard/distributed/ (the single-process trainer's
    checkpoints/ files, guarded by its fingerprint, are left alone).
    """
    from tasks.embeddings.exporters import write_projector
    from tasks.embeddings.training import fingerprint

    embeddings = embeddings_of(model)
    if not np.isfinite(embeddings).all():
        raise PipelineError("word2vec: the trained embeddings contain NaN or Inf")
    out = cfg.path("word2vec")
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("embeddings.npy", "model.json"):
        (out / stale).unlink(missing_ok=True)
    for name in ("checkpoints", "tensorboard"):
        target = out / name / "distributed"
        shutil.rmtree(target, ignore_errors=True)
        if (job.root / name).is_dir():
            shutil.copytree(job.root / name, target)
    scores = evaluate(cfg, data, embeddings)
    write_projector(out / "tensorboard", data.vocab.words[2:], embeddings[2:])
    corpus = cfg.path("prepared") / "corpus.txt"
    with atomic_file(out / "embeddings.npy", "wb") as handle:
        np.save(handle, embeddings)
    with atomic_file(out / "model.json") as handle:
        json.dump({**dataclasses.asdict(data.spec), "trainer": "distributed",
                   "cluster_shape": shape, "job": job.root.name, "steps": result["steps"],
                   "fingerprint": fingerprint(cfg, cfg.path("vocab") / "vocab.npz", corpus)},
                  handle, indent=2, default=str)
    write_json(cfg.path("metrics") / "word2vec_loss.json", result.get("history", []))
    tracking.log_artifacts(out / "tensorboard", "tensorboard")
    log.info("outputs written to %s", out)
    return {**{k: scores[k] for k in EVAL_KEYS if k in scores},
            "epochs": cfg.word2vec.epochs, "vocab_size": data.vocab.size,
            "corpus_tokens": data.tokens}


def evaluate(cfg: Config, data: TrainingData, embeddings: np.ndarray) -> dict[str, Any]:
    """Analogy accuracy and WordSim-353 correlation, as the single-process stage reports."""
    from tasks.embeddings import evaluation as w2v_eval

    return dict(w2v_eval.evaluate(cfg, data.vocab, embeddings))
