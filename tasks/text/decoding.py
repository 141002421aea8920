"""Text file helpers for the readers: per-file encoding fallback, lines, sentence splitting.

Used by `tasks.ingest.readers` (no params). Files are decoded as UTF-8 (a BOM is dropped), falling
back to latin-1 for the whole file when any byte sequence is not valid UTF-8; `DecodeLog`
records those files so `prepare` can count and list them. Lines are streamed, never loaded
whole. `split_sentences` is the sentence rule of docs/text-processing.md.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, TextIO

_CHUNK = 1 << 20  # bytes per read while checking that a file is valid UTF-8


class Example(NamedTuple):
    label: str              # class name; "" for unlabelled text
    text: str               # raw text, not yet normalised by tasks.text.normalize.clean_str


@dataclass
class DecodeLog:
    """Files that were not valid UTF-8 and were decoded as latin-1 instead."""

    latin1: set[str] = field(default_factory=set)


def file_encoding(path: Path) -> str:
    """'utf-8-sig' if the whole file decodes as UTF-8 (a BOM is dropped), else 'latin-1'."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8-sig"


def open_text(path: Path, log: DecodeLog, newline: str | None = None) -> TextIO:
    """Open `path` for streaming with its encoding; universal newlines turn \\r\\n into \\n."""
    encoding = file_encoding(path)
    if encoding == "latin-1":
        log.latin1.add(str(path))
    return open(path, encoding=encoding, newline=newline)


def nonblank_lines(path: Path, log: DecodeLog) -> Iterator[str]:
    with open_text(path, log) as handle:
        for line in handle:
            if line := line.strip():
                yield line


# A boundary: . ! or ? (plus closing quotes/brackets), white space, then something that can
# start a sentence (an upper-case letter or digit, maybe after an opening quote or bracket).
_BOUNDARY = re.compile(r"""[.!?]+["')\]]*(?=\s+["'(\[]*[A-Z0-9])""")
_ABBREVIATIONS = frozenset([
    "mr", "mrs", "ms", "dr", "st", "jr", "sr", "prof", "gen", "gov", "sen", "rep", "rev", "col",
    "capt", "lt", "sgt", "mt", "ft", "vs", "etc", "inc", "ltd", "corp", "jan", "feb", "mar",
    "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "fig", "approx",
])


def split_sentences(paragraph: str) -> list[str]:
    """Split one line of running text into sentences on . ! ? boundaries (see docs)."""
    sentences, start = [], 0
    for match in _BOUNDARY.finditer(paragraph):
        word = paragraph[start:match.end()].rsplit(None, 1)[-1].strip("\"')]([")
        stem = word.rstrip(".!?")
        if word.endswith(".") and (stem.lower() in _ABBREVIATIONS or "." in stem
                                   or (len(stem) == 1 and stem.isalpha())):
            continue  # "Mr. Smith", "U.S. Army", "Harry S. Truman": not a boundary
        sentences.append(paragraph[start:match.end()].strip())
        start = match.end()
    sentences.append(paragraph[start:].strip())
    return [s for s in sentences if s]
