"""Classifier data for the `cnn` stage: labelled splits, in-graph vectorisation, tf.data.

Inputs (params `paths`, `cnn`, `prepare`, `seed`):
- <paths.prepared>/train.tsv, dev.tsv, test.tsv (`label\\ttext`), all.tsv
  (`label\\ttext\\tsplit\\tfold`, the kfold protocol), labels.txt (line index = class id);
- <paths.vocab>/ via `tasks.text.vocabulary.load_vocab` (row 0 `<pad>`, row 1 `<unk>`);
- <paths.export>/embeddings.npy [V', d] with vocab.tsv (one word per line, same order).

`SentenceVectorizer` is the one text -> ids path, used for training data and inside the saved
model: `tasks.text.normalize.RULES` via `tf.strings.regex_replace`, strip, lowercase (when
`prepare.lowercase`), split on white space, look words up in the fixed vocabulary (unknown ->
1), then keep the first `max_length` ids and right-pad with 0 (`<pad>`). Text the prepare stage
already cleaned passes through unchanged (clean_str is idempotent).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tasks.core.errors import PipelineError
from tasks.core.params import Config
from tasks.text.normalize import RULES


@keras.saving.register_keras_serializable(package="tasks")
class SentenceVectorizer(keras.layers.Layer):
    """Raw strings [B] (or [B, 1]) -> token ids [B, max_length] int32, no Python per string."""

    def __init__(self, vocabulary: Sequence[str], max_length: int, lowercase: bool = True,
                 **kwargs):
        kwargs.setdefault("trainable", False)  # a fixed lookup table: nothing to learn
        super().__init__(**kwargs)
        self.vocabulary = [str(w) for w in vocabulary]  # row 0 <pad>, row 1 <unk>, then words
        self.max_length = int(max_length)
        self.lowercase = bool(lowercase)
        # mask_token takes id 0 and the single OOV bucket id 1, so ids equal vocab.tsv rows.
        self.lookup = keras.layers.StringLookup(
            vocabulary=self.vocabulary[2:], mask_token=self.vocabulary[0],
            oov_token=self.vocabulary[1], num_oov_indices=1)

    def build(self, input_shape) -> None:
        self.built = True

    def clean(self, text: tf.Tensor) -> tf.Tensor:
        """`tasks.text.normalize.clean_str` in TensorFlow ops (same RE2 rules, same order)."""
        for pattern, replacement in RULES:
            text = tf.strings.regex_replace(text, pattern, replacement)
        text = tf.strings.strip(text)
        return tf.strings.lower(text) if self.lowercase else text

    def call(self, text: tf.Tensor) -> tf.Tensor:
        text = tf.convert_to_tensor(text, dtype=tf.string)
        if text.shape.rank == 2:  # [B, 1] from a DataFrame column
            text = tf.squeeze(text, axis=-1)
        tokens = tf.strings.split(self.clean(text))  # ragged [B, (n)]; "" -> no tokens
        ids = self.lookup(tokens)
        # Truncate to the first max_length tokens, right-pad with <pad> = 0.
        ids = ids.to_tensor(default_value=0, shape=[None, self.max_length])  # [B, T]
        return tf.cast(ids, tf.int32)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.max_length)

    def get_config(self) -> dict:
        return {**super().get_config(), "vocabulary": self.vocabulary,
                "max_length": self.max_length, "lowercase": self.lowercase}


def vectorize(vectorizer: SentenceVectorizer, texts: Sequence[str],
              chunk: int = 8192) -> np.ndarray:
    """[N] strings -> [N, T] int32 ids, through the same layer the saved model uses."""
    parts = [vectorizer(tf.constant(list(texts[i:i + chunk]), dtype=tf.string)).numpy()
             for i in range(0, len(texts), chunk)]
    if not parts:
        return np.zeros((0, vectorizer.max_length), dtype=np.int32)
    return np.concatenate(parts).astype(np.int32)


def make_dataset(ids: np.ndarray, labels: np.ndarray, batch_size: int,
                 shuffle_seed: int | None = None) -> tf.data.Dataset:
    """Batches of (ids [b, T], labels [b]); shuffled with a fixed seed when given.

    The caller passes seed + epoch, so epoch k sees the same order whether or not the run
    was interrupted and resumed before it.
    """
    ds = tf.data.Dataset.from_tensor_slices((ids, labels))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(ids), seed=shuffle_seed, reshuffle_each_iteration=False)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


@dataclass(frozen=True)
class Examples:
    texts: list[str]
    labels: np.ndarray  # [N] int32 class ids (line numbers of labels.txt)


@dataclass(frozen=True)
class Fold:
    name: str  # "split" or "fold-03"
    train: Examples
    dev: Examples
    test: Examples


def read_labels(prepared: Path) -> list[str]:
    path = prepared / "labels.txt"
    if not path.exists():
        raise PipelineError(f"{path}: not found (run the prepare stage)")
    names = [line for line in path.read_text(encoding="utf-8").splitlines() if line]
    if len(names) < 2:
        raise PipelineError(f"{path}: need at least two classes, found {len(names)}")
    return names


def read_table(path: Path, names: Sequence[str]) -> tuple[Examples, list[dict[str, str]]]:
    """Read a prepare TSV (header row first); return its examples and the raw rows."""
    if not path.exists():
        raise PipelineError(f"{path}: not found (run the prepare stage)")
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t") if lines else []
    if header[:2] != ["label", "text"]:
        raise PipelineError(f"{path}: expected a header starting `label<TAB>text`")
    ids = {name: i for i, name in enumerate(names)}
    rows = [dict(zip(header, line.split("\t"), strict=False)) for line in lines[1:] if line]
    for row in rows:
        if row["label"] not in ids:
            raise PipelineError(f"{path}: label {row['label']!r} is not in labels.txt")
    labels = np.array([ids[r["label"]] for r in rows], dtype=np.int32)
    return Examples([r.get("text", "") for r in rows], labels), rows


def check_fold(fold: Fold, names: Sequence[str], where: str) -> None:
    """Reject splits a classifier cannot be trained or scored on, naming the cause."""
    seen = set(fold.train.labels.tolist())
    if not fold.train.texts:
        raise PipelineError(f"{where}: the training split is empty")
    if len(seen) < 2:
        raise PipelineError(f"{where}: the training split has one class "
                            f"({names[next(iter(seen))]!r}); need at least two")
    for split in ("dev", "test"):
        examples = getattr(fold, split)
        if not examples.texts:
            raise PipelineError(f"{where}: the {split} split is empty "
                                f"(check prepare.{split}_fraction)")
        unseen = sorted(set(examples.labels.tolist()) - seen)
        if unseen:
            raise PipelineError(f"{where}: label {names[unseen[0]]!r} in the {split} split "
                                "does not occur in the training split")


def _subset(examples: Examples, rows: np.ndarray) -> Examples:
    return Examples([examples.texts[i] for i in rows], examples.labels[rows])


def load_folds(cfg: Config, names: Sequence[str]) -> list[Fold]:
    """The folds `cnn.protocol` asks for: one train/dev/test split, or k folds of all.tsv
    (all of them, or fold `cnn.fold` alone when it is >= 0)."""
    prepared = cfg.path("prepared")
    if cfg.cnn.protocol == "split":
        train, dev, test = (read_table(prepared / f"{s}.tsv", names)[0]
                            for s in ("train", "dev", "test"))
        fold = Fold("split", train, dev, test)
        check_fold(fold, names, str(prepared))
        return [fold]
    everything, rows = read_table(prepared / "all.tsv", names)
    try:
        fold_ids = np.array([int(r["fold"]) for r in rows], dtype=np.int64)
    except (KeyError, ValueError):
        raise PipelineError(f"{prepared / 'all.tsv'}: missing or non-integer fold column") from None
    k = cfg.prepare.folds
    if k < 2 or sorted(set(fold_ids.tolist())) != list(range(k)):
        raise PipelineError(f"cnn.protocol kfold needs prepare.folds >= 2 and all.tsv folds "
                            f"0..{k - 1}; found {sorted(set(fold_ids.tolist()))[:12]}")
    # Kim held out 10% of the training data for early stopping; prepare.dev_fraction if set.
    dev_fraction = cfg.prepare.dev_fraction or 0.1
    if cfg.cnn.fold >= k:
        raise PipelineError(f"cnn.fold is {cfg.cnn.fold} but prepare.folds gives folds "
                            f"0..{k - 1}")
    folds = []
    for f in range(k) if cfg.cnn.fold < 0 else [cfg.cnn.fold]:
        pool = np.flatnonzero(fold_ids != f)
        rng = np.random.default_rng([cfg.seed, f])
        dev_rows = []
        for label in np.unique(everything.labels[pool]):  # stratified dev slice
            members = rng.permutation(pool[everything.labels[pool] == label])
            dev_rows.extend(members[: int(round(len(members) * dev_fraction))].tolist())
        dev_mask = np.zeros(len(rows), dtype=bool)
        dev_mask[dev_rows] = True
        train_rows = pool[~dev_mask[pool]]
        fold = Fold(f"fold-{f:02d}", _subset(everything, train_rows),
                    _subset(everything, np.array(sorted(dev_rows), dtype=np.int64)),
                    _subset(everything, np.flatnonzero(fold_ids == f)))
        check_fold(fold, names, f"{prepared / 'all.tsv'} fold {f}")
        folds.append(fold)
    return folds


def vocabulary_words(folder: Path) -> list[str]:
    """The classifier vocabulary (vocab.tsv order), via the vocab stage's loader."""
    from tasks.text.vocabulary import load_vocab

    return list(load_vocab(folder).words)


def load_embeddings(folder: Path, dims: int) -> tuple[list[str], np.ndarray]:
    """The export stage's ([V'] words, [V', d] float32 vectors), checked against `dims`."""
    npy, vocab = folder / "embeddings.npy", folder / "vocab.tsv"
    for path in (npy, vocab):
        if not path.exists():
            raise PipelineError(f"{path}: not found (run the export stage, or set "
                                "cnn.embedding_init: rand)")
    try:
        vectors = np.load(npy, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise PipelineError(f"{npy}: not a readable .npy array ({exc})") from None
    if vectors.ndim != 2:
        raise PipelineError(f"{npy}: expected a [V, d] matrix, got shape {vectors.shape}")
    if vectors.shape[1] != dims:
        raise PipelineError(f"cnn.embedding_dims is {dims} but {npy} holds "
                            f"{vectors.shape[1]}-dimensional vectors")
    words = vocab.read_text(encoding="utf-8").splitlines()
    if len(words) != len(vectors):
        raise PipelineError(f"{vocab}: {len(words)} words but {npy} has {len(vectors)} rows")
    if not np.isfinite(vectors).all():
        raise PipelineError(f"{npy}: contains NaN or infinite values")
    return words, vectors.astype(np.float32, copy=False)
