"""tasks.core.hashing: the one file-digest helper agrees with hashlib and with itself."""

from __future__ import annotations

import hashlib

from tasks.core.hashing import digests, file_md5


def test_digests_match_hashlib_across_block_boundaries(tmp_path):
    data = bytes(range(256)) * ((1 << 20) // 256 + 7)   # a bit over one 1 MiB read block
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    size, sha, md5 = digests(path)
    assert size == len(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert md5 == hashlib.md5(data).hexdigest() == file_md5(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert digests(path) == (0, hashlib.sha256(b"").hexdigest(), hashlib.md5(b"").hexdigest())
