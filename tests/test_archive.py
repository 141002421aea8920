"""tasks.ingest.archive: hostile zips are refused before writing, and nothing partial is left behind."""

from __future__ import annotations

import io
import os
import re
import stat
import zipfile
from pathlib import Path

import pytest
from fixtures import NLTK_NAMES, build_nltk_fixtures

from tasks.core.errors import PipelineError
from tasks.ingest.archive import Overflow, copy_bounded, extract, member_path, plan

MB = 2**20
# The real zips (read-only, never fetched): NLTK_MIRROR, else ../shared/mirror/nltk beside the
# checkout. Without them the one test comparing fixtures to real zips is skipped, with a reason.
REAL_MIRROR = Path(os.environ.get("NLTK_MIRROR")
                   or Path(__file__).resolve().parents[2] / "shared" / "mirror" / "nltk")


def make_zip(path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def patch_headers(archive: Path, local: tuple[int, int], central: tuple[int, int],
                  value: int) -> None:
    """Overwrite a field (offset, width) of the first member's local and central headers."""
    data = bytearray(archive.read_bytes())
    for signature, (offset, width) in ((b"PK\x03\x04", local), (b"PK\x01\x02", central)):
        at = data.index(signature) + offset
        data[at:at + width] = value.to_bytes(width, "little")
    archive.write_bytes(bytes(data))


def leftovers(parent: Path) -> list[str]:
    """Everything in `parent` except the test's input archives."""
    return sorted(p.name for p in parent.iterdir() if p.suffix != ".zip")


def test_good_zip_is_extracted_with_its_top_folder_stripped(tmp_path):
    archive = make_zip(tmp_path / "demo.zip", [
        ("demo/", b""), ("demo/README", b"hello"), ("demo/pos/a.txt", b"good film\n"),
        ("demo/neg/b.txt", b"bad film\n")])
    done = extract(archive, tmp_path / "raw" / "demo", max_bytes=MB, strip="demo/")
    tree = tmp_path / "raw" / "demo"
    assert sorted(str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file()) == [
        "README", "neg/b.txt", "pos/a.txt"]
    assert (tree / "pos" / "a.txt").read_text() == "good film\n"
    assert (done.files, done.bytes) == (3, 5 + 10 + 9)
    assert leftovers(tmp_path / "raw") == ["demo"]  # the temp sibling was renamed away


def test_prefix_is_kept_when_not_every_member_has_it(tmp_path):
    archive = make_zip(tmp_path / "text8.zip", [("text8", b"anarchism originated")])
    extract(archive, tmp_path / "text8", max_bytes=MB, strip="text8/")
    assert (tmp_path / "text8" / "text8").read_bytes() == b"anarchism originated"


@pytest.mark.parametrize(("member", "reason"), [
    ("demo/../../evil.txt", "'..' component"),
    ("../evil.txt", "'..' component"),
    ("/etc/evil.txt", "absolute path"),
    ("C:/evil.txt", "absolute path"),
    ("demo\\..\\evil.txt", "backslashes"),
])
def test_escaping_member_paths_are_refused(tmp_path, member, reason):
    archive = make_zip(tmp_path / "bad.zip", [("demo/ok.txt", b"fine"), (member, b"owned")])
    dest = tmp_path / "out" / "bad"
    with pytest.raises(PipelineError) as info:
        extract(archive, dest, max_bytes=MB, strip="demo/")
    assert reason in str(info.value) and "bad.zip" in str(info.value)
    assert "nothing extracted" in str(info.value)
    assert leftovers(tmp_path / "out") == []  # no tree, no temp folder
    assert not (tmp_path / "evil.txt").exists() and not Path("/etc/evil.txt").exists()


def test_symlink_member_is_refused(tmp_path):
    link = zipfile.ZipInfo("demo/link")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = make_zip(tmp_path / "link.zip", [("demo/a.txt", b"x"), (link, b"/etc/passwd")])
    with pytest.raises(PipelineError, match="'demo/link' is a symlink"):
        extract(archive, tmp_path / "out" / "link", max_bytes=MB)
    assert leftovers(tmp_path / "out") == []


def test_special_files_and_encrypted_and_duplicate_members_are_refused(tmp_path):
    fifo = zipfile.ZipInfo("demo/fifo")
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    with pytest.raises(PipelineError, match="not a regular file"):
        extract(make_zip(tmp_path / "f.zip", [(fifo, b"")]), tmp_path / "o1", max_bytes=MB)
    locked = make_zip(tmp_path / "e.zip", [("demo/secret", b"x")])
    patch_headers(locked, local=(6, 2), central=(8, 2), value=0x1)  # "encrypted" flag bit
    assert zipfile.ZipFile(locked).infolist()[0].flag_bits & 0x1
    with pytest.raises(PipelineError, match="encrypted"):
        extract(locked, tmp_path / "o2", max_bytes=MB)
    same_path = make_zip(tmp_path / "d.zip", [("demo/a", b"1"), ("demo/./a", b"2")])
    with pytest.warns(UserWarning, match="Duplicate name"):  # zipfile warns, then writes it
        same_name = make_zip(tmp_path / "n.zip", [("demo/a", b"1"), ("demo/a", b"2")])
    for i, dupes in enumerate([same_path, same_name], start=3):
        with pytest.raises(PipelineError, match="appears twice"):
            extract(dupes, tmp_path / f"o{i}", max_bytes=MB)
    assert not any((tmp_path / f"o{i}").exists() for i in (1, 2, 3, 4))


def test_zip_bomb_over_the_bound_is_refused_by_declared_sizes(tmp_path):
    archive = make_zip(tmp_path / "bomb.zip", [("demo/zeros", bytes(3 * MB))])
    assert archive.stat().st_size < 10_000  # 3 MB of zeros compress to a few KB
    with pytest.raises(PipelineError, match="expand past the bound"):
        extract(archive, tmp_path / "out" / "bomb", max_bytes=MB)
    assert leftovers(tmp_path / "out") == []
    done = extract(archive, tmp_path / "out" / "bomb", max_bytes=4 * MB)  # a larger bound: ok
    assert done.bytes == 3 * MB


def test_lying_size_headers_do_not_get_past_the_bound(tmp_path):
    """Headers claim 100 bytes for 200 KB: only what is counted while writing is trusted."""
    archive = make_zip(tmp_path / "liar.zip", [("demo/zeros", bytes(200_000))])
    patch_headers(archive, local=(22, 4), central=(24, 4), value=100)  # uncompressed size
    assert zipfile.ZipFile(archive).infolist()[0].file_size == 100
    with pytest.raises(PipelineError) as info:
        extract(archive, tmp_path / "out" / "liar", max_bytes=1000)
    assert "corrupt" in str(info.value) or "declared size" in str(info.value)
    assert leftovers(tmp_path / "out") == []


def test_copy_bounded_counts_the_bytes_actually_produced():
    out = io.BytesIO()
    assert copy_bounded(io.BytesIO(b"a" * 5000), out, 5000) == 5000
    out = io.BytesIO()
    with pytest.raises(Overflow):
        copy_bounded(io.BytesIO(b"a" * 200_000), out, 100_000)
    assert len(out.getvalue()) <= 100_000  # stopped before writing past the limit


def test_failed_extraction_keeps_the_previous_good_tree(tmp_path):
    good = make_zip(tmp_path / "good.zip", [("demo/a.txt", b"v1")])
    extract(good, tmp_path / "out" / "demo", max_bytes=MB, strip="demo/")
    bad = make_zip(tmp_path / "bad.zip", [("demo/a.txt", b"v2"), ("../x", b"")])
    with pytest.raises(PipelineError):
        extract(bad, tmp_path / "out" / "demo", max_bytes=MB, strip="demo/")
    assert (tmp_path / "out" / "demo" / "a.txt").read_bytes() == b"v1"
    assert leftovers(tmp_path / "out") == ["demo"]


def test_not_a_zip_and_plain_files(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"<html>rate limited</html>")
    with pytest.raises(PipelineError, match="junk.zip: not a readable zip archive"):
        extract(junk, tmp_path / "out" / "junk", max_bytes=MB)
    assert not (tmp_path / "out" / "junk").exists()
    plain = tmp_path / "corpus.txt"
    plain.write_text("one two three\n")
    done = extract(plain, tmp_path / "out" / "corpus", max_bytes=MB, kind="none")
    assert (tmp_path / "out" / "corpus" / "corpus.txt").read_text() == "one two three\n"
    assert done.files == 1
    with pytest.raises(PipelineError, match="larger than the bound"):
        extract(plain, tmp_path / "out" / "small", max_bytes=4, kind="none")


def test_member_path_rules():
    assert str(member_path("a/./b//c.txt")) == "a/b/c.txt"
    for bad in ["", "/", "a/../../b", "..", "/abs", "D:rel", "a\\b"]:
        with pytest.raises(PipelineError):
            member_path(bad)


def test_fixture_zips_extract_in_the_nltk_layout(tmp_path):
    zips = build_nltk_fixtures(tmp_path / "zips")
    assert sum(p.stat().st_size for p in zips.values()) < 200_000
    for name, archive in zips.items():
        extract(archive, tmp_path / "raw" / name, max_bytes=MB, strip=f"{name}/")
    raw = tmp_path / "raw"
    assert (raw / "sentence_polarity" / "rt-polarity.pos").is_file()
    assert (raw / "brown" / "cats.txt").read_text().startswith("ca01 news\n")
    assert len(list((raw / "movie_reviews" / "pos").glob("cv*_*.txt"))) == 10
    assert (raw / "abc" / "science.txt").read_bytes().count(b"\r\n") > 10
    neg = (raw / "sentence_polarity" / "rt-polarity.neg").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        neg.decode("utf-8")  # latin-1 accents, as promised to the readers' tests
    assert b"good" not in neg and b"bad" in neg


@pytest.mark.skipif(not REAL_MIRROR.is_dir(), reason=f"real NLTK zips not at {REAL_MIRROR}")
def test_fixture_layout_matches_the_real_nltk_zips(tmp_path):
    """Every fixture member exists in the real zip (review files: same name shape), and the
    real zips pass the safety checks with their `<name>/` folder stripped."""
    fixtures = build_nltk_fixtures(tmp_path)
    review = re.compile(r"movie_reviews/(pos|neg)/cv\d{3}_\d{5}\.txt")
    for name in NLTK_NAMES:
        real = zipfile.ZipFile(REAL_MIRROR / f"{name}.zip")
        real_names = set(real.namelist())
        for member in zipfile.ZipFile(fixtures[name]).namelist():
            assert member in real_names or (review.fullmatch(member) and any(
                review.fullmatch(n) and n[:20] == member[:20] for n in real_names)), member
        assert all(n.startswith(f"{name}/") for n in real_names)
        assert len(plan(real, 64 * MB, f"{name}/")) == len(real_names) - 1
    done = extract(REAL_MIRROR / "inaugural.zip", tmp_path / "inaugural", max_bytes=64 * MB,
                   strip="inaugural/")
    assert (tmp_path / "inaugural" / "1789-Washington.txt").is_file() and done.files == 60
