"""The two MNIST evaluation protocols, as pure functions on arrays.

- `test-split` (offline, only the 10k t10k files are needed): a seeded, stratified
  train/dev/test split of those images. Fractions are of the whole set; train = the rest.
- `standard`: train on the 60k training files minus a seeded, stratified dev part; test on
  the 10k t10k files (the published MNIST protocol).

Stratified means every class is split in the same proportions. Part sizes are exact: the total
of a part is round(n * fraction), handed out to classes by largest remainder, so each class
gets floor or ceil of its share. Same labels, fractions and seed => same split. Indices inside
each part keep the input order (the training loops shuffle per epoch).

Functions: `split_test_set` (test-split), `split_standard` (standard), `load_splits` (reads
the IDX files a protocol needs, then splits), `stratified_indices` (the shared core).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tasks.core.catalog import MNIST_PROTOCOLS
from tasks.digits import DigitsError

PROTOCOLS = tuple(MNIST_PROTOCOLS)  # ("test-split", "standard"): the one list, in the catalog


class Part(NamedTuple):
    """One part of a split: images uint8 [n, 28, 28] and labels uint8 [n]."""

    images: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class Splits:
    """train / dev / test parts and the protocol that made them."""

    train: Part
    dev: Part
    test: Part
    protocol: str

    def sizes(self) -> dict[str, int]:
        """{"train": n, "dev": n, "test": n}."""
        return {"train": len(self.train.labels), "dev": len(self.dev.labels),
                "test": len(self.test.labels)}


def class_counts(labels: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """labels [n] -> int64 [num_classes]: examples per class."""
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)


def _allocate(counts: np.ndarray, fraction: float) -> np.ndarray:
    """How many of each class go to a part: sums to round(total * fraction) exactly."""
    share = counts * fraction                       # float [classes]
    take = np.floor(share).astype(np.int64)
    missing = int(round(counts.sum() * fraction)) - int(take.sum())
    if missing > 0:  # largest fractional remainders first; ties by class id (stable sort)
        order = np.argsort(-(share - take), kind="stable")
        take[order[:missing]] += 1
    return np.minimum(take, counts)


def stratified_indices(labels: np.ndarray, fractions: Mapping[str, float],
                       seed: int) -> dict[str, np.ndarray]:
    """Split example indices by class into named parts plus "train" (the remainder).

    Inputs: labels int [n]; fractions e.g. {"test": 0.2, "dev": 0.1} (each in [0, 1), sum
    < 1; taken in the given order from a seeded permutation of each class); seed.
    Output: {name: sorted int64 indices} for every name in `fractions` and "train".
    """
    labels = np.asarray(labels)
    total = sum(fractions.values())
    if any(not 0 <= f < 1 for f in fractions.values()) or total >= 1:
        raise DigitsError(f"split fractions must be in [0, 1) and sum below 1, got "
                          f"{dict(fractions)}")
    if "train" in fractions:
        raise DigitsError("'train' is the remainder of the split; do not give its fraction")
    classes = np.unique(labels)
    counts = np.array([np.sum(labels == c) for c in classes])
    takes = {name: _allocate(counts, f) for name, f in fractions.items()}
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in [*fractions, "train"]}
    for k, c in enumerate(classes):
        members = rng.permutation(np.flatnonzero(labels == c))  # int [n_c], seeded order
        start = 0
        for name in fractions:
            parts[name].append(members[start:start + takes[name][k]])
            start += takes[name][k]
        parts["train"].append(members[start:])
    out = {name: np.sort(np.concatenate(chunks)).astype(np.int64)
           for name, chunks in parts.items()}
    if len(out["train"]) == 0:
        raise DigitsError(f"split fractions {dict(fractions)} leave no training examples")
    return out


def split_test_set(images: np.ndarray, labels: np.ndarray, dev_fraction: float,
               test_fraction: float, seed: int) -> Splits:
    """`test-split` protocol: one set (the 10k t10k images) -> stratified train/dev/test.

    Inputs: images uint8 [n, 28, 28], labels uint8 [n], fractions of n, seed.
    Output: Splits with |test| = round(n * test_fraction), |dev| = round(n * dev_fraction).
    """
    _check_pair(images, labels)
    idx = stratified_indices(labels, {"test": test_fraction, "dev": dev_fraction}, seed)
    return Splits(*(Part(images[idx[k]], labels[idx[k]]) for k in ("train", "dev", "test")),
                  protocol="test-split")


def split_standard(train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray,
             test_labels: np.ndarray, dev_fraction: float, seed: int) -> Splits:
    """`standard` protocol: train files minus a stratified dev part; test = the t10k files.

    Inputs: the 60k training arrays, the 10k test arrays (uint8 [n, 28, 28] / [n]),
    dev_fraction of the training set, seed. Output: Splits (test is the whole test set).
    """
    _check_pair(train_images, train_labels)
    _check_pair(test_images, test_labels)
    idx = stratified_indices(train_labels, {"dev": dev_fraction}, seed)
    return Splits(Part(train_images[idx["train"]], train_labels[idx["train"]]),
                  Part(train_images[idx["dev"]], train_labels[idx["dev"]]),
                  Part(test_images, test_labels), protocol="standard")


def load_splits(folder: Path | str, protocol: str, dev_fraction: float,
                test_fraction: float, seed: int) -> Splits:
    """Read the IDX files a protocol needs from `folder` and split them.

    `test-split` reads only t10k-*; `standard` reads train-* and t10k-* (test_fraction is
    ignored). Raises DigitsError on an unknown protocol or bad/missing files.
    """
    from tasks.digits.idx import load_part  # local: keeps this module a pure-array one

    if protocol == "test-split":
        return split_test_set(*load_part(folder, "t10k"), dev_fraction, test_fraction, seed)
    if protocol == "standard":
        return split_standard(*load_part(folder, "train"), *load_part(folder, "t10k"),
                        dev_fraction, seed)
    raise DigitsError(f"unknown protocol {protocol!r}; expected one of {list(PROTOCOLS)}")


def _check_pair(images: np.ndarray, labels: np.ndarray) -> None:
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DigitsError(f"expected images [n, h, w] and labels [n], got "
                          f"{list(images.shape)} and {list(labels.shape)}")
