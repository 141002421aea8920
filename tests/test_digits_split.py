"""tasks.digits.split: the test-split and standard protocols (seeded, stratified)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from digits_fixtures import synthetic_digits, write_mnist

from tasks.digits import DigitsError, split


def unbalanced_labels() -> np.ndarray:
    counts = [98, 113, 103, 101, 98, 89, 95, 102, 97, 100]  # MNIST-like proportions, n = 996
    labels = np.repeat(np.arange(10, dtype=np.uint8), counts)
    np.random.default_rng(5).shuffle(labels)
    return labels


def test_stratified_indices_exact_disjoint_and_stratified() -> None:
    labels = unbalanced_labels()
    parts = split.stratified_indices(labels, {"test": 0.2, "dev": 0.1}, seed=3)
    assert set(parts) == {"test", "dev", "train"}
    assert len(parts["test"]) == round(996 * 0.2) and len(parts["dev"]) == round(996 * 0.1)
    joined = np.concatenate(list(parts.values()))
    assert sorted(joined.tolist()) == list(range(996))  # disjoint and complete
    counts = split.class_counts(labels)
    for name, fraction in (("test", 0.2), ("dev", 0.1)):
        got = split.class_counts(labels[parts[name]])
        assert np.all(got >= np.floor(counts * fraction))
        assert np.all(got <= np.ceil(counts * fraction))
        assert np.all(np.diff(parts[name]) > 0)  # input order kept


def test_seeded() -> None:
    labels = unbalanced_labels()
    a = split.stratified_indices(labels, {"test": 0.2, "dev": 0.1}, seed=3)
    b = split.stratified_indices(labels, {"test": 0.2, "dev": 0.1}, seed=3)
    c = split.stratified_indices(labels, {"test": 0.2, "dev": 0.1}, seed=4)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["test"], c["test"])


def test_split_test_set_protocol() -> None:
    images, labels = synthetic_digits(20, seed=2)  # 200
    splits = split.split_test_set(images, labels, dev_fraction=0.1, test_fraction=0.25, seed=0)
    assert splits.protocol == "test-split"
    assert splits.sizes() == {"train": 130, "dev": 20, "test": 50}
    for part, per_class in ((splits.train, 13), (splits.dev, 2), (splits.test, 5)):
        assert split.class_counts(part.labels).tolist() == [per_class] * 10
        assert part.images.shape == (len(part.labels), 28, 28)
    # images travel with their labels: each image is found in the source with its label
    source = {images[i].tobytes(): labels[i] for i in range(len(labels))}
    for part in (splits.train, splits.dev, splits.test):
        assert all(source[img.tobytes()] == lab for img, lab in zip(*part, strict=True))


def test_standard_protocol_keeps_test_set_whole() -> None:
    train_x, train_y = synthetic_digits(30, seed=3)  # 300
    test_x, test_y = synthetic_digits(5, seed=4)     # 50
    splits = split.split_standard(train_x, train_y, test_x, test_y, dev_fraction=0.2, seed=1)
    assert splits.protocol == "standard"
    assert splits.sizes() == {"train": 240, "dev": 60, "test": 50}
    np.testing.assert_array_equal(splits.test.images, test_x)
    np.testing.assert_array_equal(splits.test.labels, test_y)
    assert split.class_counts(splits.dev.labels).tolist() == [6] * 10


def test_load_splits_reads_the_files_each_protocol_needs(tmp_path: Path) -> None:
    write_mnist(tmp_path, *synthetic_digits(10, seed=5), part="t10k")
    splits = split.load_splits(tmp_path, "test-split", 0.1, 0.2, seed=0)
    assert splits.sizes() == {"train": 70, "dev": 10, "test": 20}
    with pytest.raises(DigitsError, match="missing train-images-idx3-ubyte.gz"):
        split.load_splits(tmp_path, "standard", 0.1, 0.2, seed=0)
    write_mnist(tmp_path, *synthetic_digits(20, seed=6), part="train")
    splits = split.load_splits(tmp_path, "standard", 0.1, 0.2, seed=0)
    assert splits.sizes() == {"train": 180, "dev": 20, "test": 100}
    with pytest.raises(DigitsError, match="unknown protocol 'kfold'"):
        split.load_splits(tmp_path, "kfold", 0.1, 0.2, seed=0)


@pytest.mark.parametrize("fractions", [{"test": 0.6, "dev": 0.4}, {"test": -0.1},
                                       {"test": 1.0}, {"train": 0.5}])
def test_bad_fractions(fractions: dict) -> None:
    with pytest.raises(DigitsError):
        split.stratified_indices(unbalanced_labels(), fractions, seed=0)


def test_mismatched_arrays() -> None:
    images, labels = synthetic_digits(2)
    with pytest.raises(DigitsError, match="expected images"):
        split.split_test_set(images, labels[:-1], 0.1, 0.1, seed=0)
