"""Seeded, stratified train/dev/test split and k-fold ids for the labelled dataset.

Used by `tasks.prepare` (params: `seed`, `prepare.dev_fraction`, `prepare.test_fraction`,
`prepare.folds`). Pure NumPy over class ids, so the text never has to be in memory.

Protocol (docs/text-processing.md):
- split: for each class c (in class-id order) with n_c examples, a seeded permutation of its
  examples; the first round(n_c * test_fraction) go to test, the next round(n_c * dev_fraction)
  to dev, the rest to train (round half up). Each split therefore holds every class within
  half an example of its ideal share.
- folds: independent of the split. A second seeded permutation per class; examples are dealt
  to folds round-robin, the dealing continuing across classes, so every fold size differs by
  at most 1 overall and per class.
Same seed and same input order => identical assignment.
"""

from __future__ import annotations

import math

import numpy as np

SPLITS = ("train", "dev", "test")  # split id = position in this tuple
TRAIN, DEV, TEST = 0, 1, 2


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def assign_splits(labels: np.ndarray, dev_fraction: float, test_fraction: float,
                  seed: int) -> np.ndarray:
    """labels [N] int class ids -> split ids [N] int8 (0 train, 1 dev, 2 test)."""
    labels = np.asarray(labels)
    split = np.full(labels.shape[0], TRAIN, dtype=np.int8)
    rng = np.random.default_rng([seed, 0])
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        n_test = _round_half_up(len(members) * test_fraction)
        n_dev = _round_half_up(len(members) * dev_fraction)
        n_dev = min(n_dev, len(members) - n_test)
        split[members[:n_test]] = TEST
        split[members[n_test:n_test + n_dev]] = DEV
    return split


def assign_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """labels [N] int class ids -> fold ids [N] int16 in 0..folds-1 (all -1 if folds == 0)."""
    labels = np.asarray(labels)
    fold = np.full(labels.shape[0], -1, dtype=np.int16)
    if folds == 0:
        return fold
    rng = np.random.default_rng([seed, 1])
    dealt = 0  # examples dealt so far: the next class starts at the next fold
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        fold[members] = (dealt + np.arange(len(members))) % folds
        dealt += len(members)
    return fold
