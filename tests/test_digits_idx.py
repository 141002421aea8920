"""tasks.digits.idx: the IDX reader on real (tiny, generated) files, and the real mirror's layout."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
from digits_fixtures import synthetic_digits, write_mnist

from tasks.digits import DigitsError, idx, split

REPO = Path(__file__).resolve().parents[1]
MIRROR_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def raises_one_line(match: str):
    """pytest.raises(DigitsError) whose message must also be a single line."""
    class _Check:
        def __enter__(self):
            self.ctx = pytest.raises(DigitsError, match=match)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            handled = self.ctx.__exit__(*exc)
            assert "\n" not in str(self.info.value)
            return handled
    return _Check()


@pytest.fixture
def digits() -> tuple[np.ndarray, np.ndarray]:
    return synthetic_digits(3, seed=1)  # 30 images


@pytest.mark.parametrize("gz", [True, False])
def test_round_trip(tmp_path: Path, digits, gz: bool) -> None:
    images, labels = digits
    images_path, labels_path = write_mnist(tmp_path, images, labels, gz=gz)
    assert (images_path.read_bytes()[:2] == b"\x1f\x8b") is gz
    got_images, got_labels = idx.load_mnist(images_path, labels_path)
    assert got_images.dtype == np.uint8 and got_images.shape == (30, 28, 28)
    assert got_labels.dtype == np.uint8 and got_labels.shape == (30,)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert idx.find_pair(tmp_path, "t10k") == (images_path, labels_path)
    got_images[0, 0, 0] = 7  # returned arrays are writable copies


def test_header_layout_and_determinism(tmp_path: Path, digits) -> None:
    images, _ = digits
    a = idx.write_idx(tmp_path / "a.gz", images)
    b = idx.write_idx(tmp_path / "b.gz", images)
    assert a.read_bytes() == b.read_bytes()  # gzip mtime 0: identical bytes
    raw = gzip.decompress(a.read_bytes())
    assert int.from_bytes(raw[:4], "big") == idx.IMAGES_MAGIC
    assert [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(3)] == [30, 28, 28]
    assert len(raw) == 16 + 30 * 28 * 28
    assert list(tmp_path.glob(".*tmp")) == []  # no temp files left behind


def test_load_part_prefers_gzip_and_accepts_plain(tmp_path: Path, digits) -> None:
    images, labels = digits
    write_mnist(tmp_path, images, labels, part="train", gz=False)
    got = idx.load_part(tmp_path, "train")
    np.testing.assert_array_equal(got[1], labels)
    with raises_one_line("missing t10k-images-idx3-ubyte.gz"):
        idx.load_part(tmp_path, "t10k")
    with raises_one_line("unknown MNIST part"):
        idx.find_pair(tmp_path, "validation")


def test_rejects_swapped_files_by_magic(tmp_path: Path, digits) -> None:
    images_path, labels_path = write_mnist(tmp_path, *digits)
    with raises_one_line("magic number 2049, expected 2051"):
        idx.read_images(labels_path)
    with raises_one_line("magic number 2051, expected 2049"):
        idx.read_labels(images_path)
    with raises_one_line("magic number 2049, expected 2051"):
        idx.load_mnist(labels_path, images_path)


def test_rejects_foreign_magic(tmp_path: Path) -> None:
    bad = tmp_path / "bad-idx"
    bad.write_bytes(b"PK\x03\x04" + bytes(100))  # a zip header, not IDX
    with raises_one_line("magic number 1347093252, expected 2051"):
        idx.read_images(bad)
    with raises_one_line("not an unsigned-byte IDX file"):
        idx.read_idx(bad)
    forged = idx.write_idx(tmp_path / "forged.gz", np.zeros((2, 28, 28), np.uint8), magic=2052)
    with raises_one_line("magic number 2052, expected 2051"):
        idx.read_images(forged)


def test_rejects_truncated_and_trailing_data(tmp_path: Path, digits) -> None:
    images, _ = digits
    plain = idx.write_idx(tmp_path / "images", images)
    data = plain.read_bytes()
    plain.write_bytes(data[:-100])
    with raises_one_line(r"truncated: header \[30, 28, 28\] needs 23520 data bytes, file has 23420"):
        idx.read_images(plain)
    plain.write_bytes(data + b"\0")
    with raises_one_line("has trailing bytes"):
        idx.read_images(plain)
    plain.write_bytes(data[:10])
    with raises_one_line("truncated IDX header"):
        idx.read_images(plain)
    packed = idx.write_idx(tmp_path / "images.gz", images)
    packed.write_bytes(packed.read_bytes()[:-50])  # cut gzip stream
    with raises_one_line("corrupt or truncated gzip"):
        idx.read_images(packed)
    # gzip of a truncated IDX file: the byte count check, after decompression
    (tmp_path / "short.gz").write_bytes(gzip.compress(data[:-784]))
    with raises_one_line("truncated"):
        idx.read_images(tmp_path / "short.gz")


def test_rejects_bad_dimensions_labels_and_counts(tmp_path: Path, digits) -> None:
    images, labels = digits
    small = idx.write_idx(tmp_path / "small.gz", images[:, :27, :])
    with raises_one_line(r"image dimensions \[30, 27, 28\], expected \[n, 28, 28\]"):
        idx.read_images(small)
    bad_labels = labels.copy()
    bad_labels[4] = 10
    path = idx.write_idx(tmp_path / "labels.gz", bad_labels)
    with raises_one_line("label 10 at index 4 is outside 0..9"):
        idx.read_labels(path)
    images_path = idx.write_idx(tmp_path / "i.gz", images)
    labels_path = idx.write_idx(tmp_path / "l.gz", labels[:-1])
    with raises_one_line("30 images but .* has 29 labels"):
        idx.load_mnist(images_path, labels_path)
    empty_i = idx.write_idx(tmp_path / "ei.gz", np.zeros((0, 28, 28), np.uint8))
    empty_l = idx.write_idx(tmp_path / "el.gz", np.zeros((0,), np.uint8))
    with raises_one_line("holds no images"):
        idx.load_mnist(empty_i, empty_l)


def test_rejects_missing_empty_and_fake_gzip(tmp_path: Path) -> None:
    with raises_one_line("file not found"):
        idx.read_labels(tmp_path / "nope.gz")
    (tmp_path / "empty").write_bytes(b"")
    with raises_one_line("too short for an IDX header"):
        idx.read_labels(tmp_path / "empty")
    (tmp_path / "fake.gz").write_bytes(b"\0\0\x08\x01\0\0\0\0")
    with raises_one_line("named .gz but is not gzip-compressed"):
        idx.read_labels(tmp_path / "fake.gz")
    with raises_one_line("cannot read"):
        idx.read_labels(tmp_path)  # a folder
    with raises_one_line("0..255"):
        idx.write_idx(tmp_path / "x", np.array([256]))


def mirror_folder() -> Path | None:
    env = os.environ.get("MNIST_MIRROR")
    for folder in ([Path(env)] if env else []) + [REPO.parent / "shared" / "mirror" / "mnist"]:
        if folder.is_dir():
            return folder
    return None


def test_real_mirror_layout() -> None:
    folder = mirror_folder()
    if folder is None:
        pytest.skip("no MNIST mirror: set MNIST_MIRROR or provide ../shared/mirror/mnist")
    images_path, labels_path = idx.find_pair(folder, "t10k")
    assert images_path.name == "t10k-images-idx3-ubyte.gz"
    assert labels_path.name == "t10k-labels-idx1-ubyte.gz"
    images, labels = idx.load_part(folder, "t10k")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert split.class_counts(labels).tolist() == MIRROR_COUNTS
    assert images.max() == 255 and np.median(images) == 0  # white digits on black
    splits = split.load_splits(folder, "test-split", 0.1, 0.2, seed=0)
    assert splits.sizes() == {"train": 7000, "dev": 1000, "test": 2000}
    for part, fraction in ((splits.dev, 0.1), (splits.test, 0.2)):
        share = np.asarray(MIRROR_COUNTS) * fraction
        counts = split.class_counts(part.labels)
        assert np.all((counts >= np.floor(share)) & (counts <= np.ceil(share)))
