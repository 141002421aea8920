"""File digests: the one place that hashes files (download verification, checkpoint
fingerprints, run tags).

    size, sha256, md5 = digests(path)    # one pass over the file
    file_md5(path)                       # the hash DVC uses for a file
    text_md5("très bien")                # md5 hex of a string's UTF-8 bytes
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_BLOCK = 1 << 20  # 1 MiB reads: large enough that hashing, not Python, sets the pace


def digests(path: Path | str) -> tuple[int, str, str]:
    """(size in bytes, sha256 hex, md5 hex) of a file, read once."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(), 0
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            sha.update(block)
            md5.update(block)
            size += len(block)
    return size, sha.hexdigest(), md5.hexdigest()


def file_md5(path: Path | str) -> str:
    """md5 hex of a file (what DVC records for it)."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def text_md5(text: str) -> str:
    """md5 hex of a string's UTF-8 bytes (lone surrogates kept, so any str hashes)."""
    return hashlib.md5(text.encode("utf-8", "surrogatepass")).hexdigest()
