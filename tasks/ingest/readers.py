"""Dataset readers: extracted raw trees and users' custom files -> sentences or examples.

Inputs: `<paths.raw>/<name>/` as the download stage extracts it (the zip's top `<name>/`
folder stripped; a tree extracted as-is, `<paths.raw>/<name>/<name>/...`, is read the same),
and `data.custom` files (paths relative to the params root). No params section of its own:
`tasks.prepare` passes `data` and `paths`.

Every reader is a generator of `Example(label, text)` (label "" when unlabelled) over raw,
un-normalised text; `unit` chooses between corpus sentences ("sentence") and classifier
examples ("example": e.g. one whole review). Files are decoded as UTF-8, falling back to
latin-1 per file (`tasks.text.decoding`); `DecodeLog` records which files needed the fallback.
Nothing is held in memory beyond one line (one review for movie_reviews in "example" mode,
1 MB for text8).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from tasks.core.catalog import registry
from tasks.core.errors import PipelineError
from tasks.core.params import Config, CustomDataset
from tasks.text.decoding import DecodeLog, Example, nonblank_lines, open_text, split_sentences

__all__ = ["DecodeLog", "Example", "READERS", "check_available", "dataset_root", "read",
           "split_sentences"]

Unit = Literal["sentence", "example"]
TEXT8_SENTENCE = 1000       # tokens per pseudo-sentence (word2vec.c's MAX_SENTENCE_LENGTH)
_CHUNK = 1 << 20            # bytes of text8 read at a time


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise PipelineError(f"{path}: {what} not found (re-run the download stage)")
    return path


# ---- registry readers: one per `DatasetSpec.reader` name ----------------------------------

def sentence_polarity(root: Path, log: DecodeLog, unit: Unit = "sentence") -> Iterator[Example]:
    """rt-polarity.neg / .pos: one lowercased, tokenised snippet per line (both units)."""
    for label in ("neg", "pos"):
        for line in nonblank_lines(_require(root / f"rt-polarity.{label}", "file"), log):
            yield Example(label, line)


def movie_reviews(root: Path, log: DecodeLog, unit: Unit = "sentence") -> Iterator[Example]:
    """neg/*.txt, pos/*.txt: one sentence per line; an example is a whole review."""
    for label in ("neg", "pos"):
        files = sorted(_require(root / label, "folder").glob("*.txt"))
        if not files:
            raise PipelineError(f"{root / label}: no review files (*.txt)")
        for path in files:
            if unit == "sentence":
                yield from (Example(label, line) for line in nonblank_lines(path, log))
            else:
                yield Example(label, " ".join(nonblank_lines(path, log)))


_BROWN_FILE = re.compile(r"c[a-r]\d\d")


def brown(root: Path, log: DecodeLog, unit: Unit = "sentence") -> Iterator[Example]:
    """c[a-r]NN files: one tagged sentence per line, `word/tag` tokens; tags are stripped.

    Brown's quote tokens `` and '' are dropped (other corpora's quotes vanish in clean_str).
    CONTENTS, README and cats.txt are not text.
    """
    files = sorted(p for p in root.iterdir() if _BROWN_FILE.fullmatch(p.name))
    if not files:
        raise PipelineError(f"{root}: no Brown text files (c[a-r]NN)")
    for path in files:
        for line in nonblank_lines(path, log):
            words = [tok.rpartition("/")[0] or tok for tok in line.split()]
            text = " ".join(w for w in words if w not in ("``", "''"))
            if text:
                yield Example("", text)


def plain_text(root: Path, log: DecodeLog, unit: Unit = "sentence") -> Iterator[Example]:
    """Every *.txt below `root` (READMEs skipped): each line split into sentences."""
    files = sorted(root.rglob("*.txt"))
    if not files:
        raise PipelineError(f"{root}: no text files (*.txt)")
    for path in files:
        for line in nonblank_lines(path, log):
            yield from (Example("", s) for s in split_sentences(line))


def text8(root: Path, log: DecodeLog, unit: Unit = "sentence") -> Iterator[Example]:
    """One ~100 MB line of words: streamed 1 MB at a time, 1000-token pseudo-sentences."""
    path = root / "text8"
    if not path.is_file():
        files = [p for p in root.iterdir() if p.is_file()]
        if len(files) != 1:
            raise PipelineError(f"{root}: expected the single file text8")
        path = files[0]
    tokens: list[str] = []
    with open_text(path, log) as handle:
        carry = ""
        while chunk := handle.read(_CHUNK):
            words = (carry + chunk).split()
            # The last word may be cut in half by the chunk boundary: keep it for the next.
            carry = "" if chunk[-1].isspace() else words.pop()
            tokens.extend(words)
            while len(tokens) >= TEXT8_SENTENCE:
                yield Example("", " ".join(tokens[:TEXT8_SENTENCE]))
                del tokens[:TEXT8_SENTENCE]
    tokens.extend(carry.split())
    if tokens:
        yield Example("", " ".join(tokens))


# ---- custom labelled datasets (params data.custom) ----------------------------------------

def _custom_text(label: str, text: str, unit: Unit) -> Iterator[Example]:
    if unit == "example":
        yield Example(label, text)
    else:
        yield from (Example(label, s) for s in split_sentences(text))


def class_files(spec: CustomDataset, base: Path, log: DecodeLog,
                unit: Unit = "example") -> Iterator[Example]:
    """One text file per class, one example per line; the label is the `files` key."""
    for label, rel in sorted(spec.files.items()):
        path = _check_label(label, base / rel)
        if not path.is_file():
            raise PipelineError(f"{path}: class file for label {label!r} not found")
        count = 0
        for line in nonblank_lines(path, log):
            count += 1
            yield from _custom_text(label, line, unit)
        if count == 0:
            raise PipelineError(f"{path}: class file for label {label!r} has no lines")


# One review or ticket per field can be long: Python's default limit (131072 characters) is
# raised to 16 MiB; a longer field is an error naming the line (docs/data.md).
CSV_FIELD_LIMIT = 16 << 20


def delimited(spec: CustomDataset, base: Path, log: DecodeLog,
              unit: Unit = "example") -> Iterator[Example]:
    """A CSV (or TSV) with a header row; text and label columns are chosen by header name.

    CSV is read strictly: a quote that is never closed is an error at the line where the
    quoted field starts (not at the end of the file, where the reader notices it)."""
    path = base / spec.file
    if not path.is_file():
        raise PipelineError(f"{path}: {spec.format} file not found")
    tsv = spec.format == "tsv"
    csv.field_size_limit(CSV_FIELD_LIMIT)
    with open_text(path, log, newline="") as handle:
        rows = csv.reader(handle, delimiter="\t" if tsv else ",", strict=not tsv,
                          quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL)
        row_start = 1                   # line where the row being read starts
        try:
            header = [name.strip() for name in next(rows, [])]
            for column in (spec.text_column, spec.label_column):
                if column not in header:
                    raise PipelineError(f"{path}: no column {column!r} "
                                        f"(header: {', '.join(header) or 'empty'})")
            text_at, label_at = header.index(spec.text_column), header.index(spec.label_column)
            row_start = rows.line_num + 1
            for row in rows:
                line, row_start = row_start, rows.line_num + 1
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) <= max(text_at, label_at):
                    raise PipelineError(f"{path}: line {line}: {len(row)} fields, "
                                        f"header has {len(header)}")
                label = row[label_at].strip()
                _check_label(label, path, line)
                yield from _custom_text(label, row[text_at], unit)
        except csv.Error as exc:
            why = str(exc)
            if why == "unexpected end of data":
                why = "a quoted field starting on this line is never closed"
            elif "field larger than field limit" in why:
                why = f"a field is longer than {CSV_FIELD_LIMIT} characters"
            raise PipelineError(f"{path}: line {row_start}: {why}") from None


def _check_label(label: str, path: Path, line: int | None = None) -> Path:
    if not label or label != label.strip() or "\t" in label or "\n" in label:
        where = f"{path}: line {line}" if line else str(path)
        raise PipelineError(f"{where}: bad label {label!r} (empty, or white space at the ends)")
    return path


READERS: dict[str, Callable[[Path, DecodeLog, Unit], Iterator[Example]]] = {
    "sentence_polarity": sentence_polarity, "movie_reviews": movie_reviews, "brown": brown,
    "plain_text": plain_text, "text8": text8,
}


def dataset_root(raw: Path, name: str) -> Path:
    """`<raw>/<name>/`, descending into the zip's own `<name>/` folder when present."""
    folder = raw / name
    if not folder.is_dir():
        raise PipelineError(f"raw dataset folder {folder} for {name!r} is missing: "
                            "run the download stage first")
    inner = folder / name
    return inner if inner.is_dir() else folder


def check_available(cfg: Config, names: list[str]) -> None:
    """Fail before any output if a dataset's raw folder or custom file is missing."""
    for name in names:
        if name in cfg.data.custom:
            spec = cfg.data.custom[name]
            for rel in spec.files.values() if spec.format == "class_files" else [spec.file]:
                if not cfg.resolve(rel).is_file():
                    raise PipelineError(f"data.custom.{name}: file {cfg.resolve(rel)} not found")
        else:
            dataset_root(cfg.path("raw"), name)


def read(cfg: Config, name: str, log: DecodeLog, unit: Unit) -> Iterator[Example]:
    """Stream dataset `name` (a registry name or a `data.custom` key) as examples."""
    if name in cfg.data.custom:
        spec = cfg.data.custom[name]
        reader = class_files if spec.format == "class_files" else delimited
        yield from reader(spec, cfg.root, log, unit)
    else:
        reader_name = registry()[name].reader  # built-in or DATASET_REGISTRY entry
        if reader_name not in READERS:
            raise PipelineError(f"dataset {name!r}: unknown reader {reader_name!r} "
                                f"(known: {', '.join(sorted(READERS))})")
        yield from READERS[reader_name](dataset_root(cfg.path("raw"), name), log, unit)
