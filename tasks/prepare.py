"""The `prepare` stage: raw datasets -> word2vec corpus + split labelled dataset.

Params: `seed`, `data` (corpus, labelled, custom), `prepare` (lowercase, min_tokens,
dev_fraction, test_fraction, folds).
Inputs: `<paths.raw>/<name>/` (download stage) and `data.custom` files, via `tasks.ingest.readers`.
Outputs, written together into `<paths.prepared>/` (atomic_dir: all or nothing):
- corpus.txt   the `data.corpus` datasets in order, one sentence per line, tokens from
               `tasks.text.normalize.clean_str` joined by single spaces;
- train.tsv, dev.tsv, test.tsv   `label<TAB>text` (header), in reading order;
- all.tsv      `label<TAB>text<TAB>split<TAB>fold` (fold -1 when `prepare.folds` is 0);
- labels.txt   sorted class names, line index = class id.
Sentences and examples with fewer than `prepare.min_tokens` tokens are dropped (counted).
Returns the metrics written to `<paths.metrics>/prepare.json`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from tasks.core import tracking
from tasks.core.atomic import atomic_dir
from tasks.core.errors import PipelineError
from tasks.core.params import Config
from tasks.core.stage import stage_main
from tasks.ingest import readers
from tasks.ingest.split import SPLITS, assign_folds, assign_splits
from tasks.text.normalize import clean_str

log = logging.getLogger(__name__)


def _n_tokens(text: str) -> int:
    # clean_str leaves single spaces between tokens and none at the ends.
    return text.count(" ") + 1 if text else 0


def _cleaned(cfg: Config, name: str, decode: readers.DecodeLog, unit: str,
             dropped: list[int]) -> Iterator[tuple[readers.Example, str, int]]:
    """Yield (example, clean_str text, token count) for the examples of dataset `name` that
    have at least `prepare.min_tokens` tokens; count the others in `dropped[0]`."""
    for example in readers.read(cfg, name, decode, unit):
        text = clean_str(example.text, cfg.prepare.lowercase)
        n = _n_tokens(text)
        if n < cfg.prepare.min_tokens:
            dropped[0] += 1
            continue
        yield example, text, n


def write_corpus(cfg: Config, path: Path, decode: readers.DecodeLog) -> dict[str, Any]:
    """Stream every `data.corpus` dataset through clean_str into `path`; return counts."""
    per_dataset: dict[str, dict[str, int]] = {}
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for name in cfg.data.corpus:
            sentences = tokens = 0
            dropped = [0]
            for _, text, n in _cleaned(cfg, name, decode, "sentence", dropped):
                out.write(text + "\n")
                sentences += 1
                tokens += n
            per_dataset[name] = {"sentences": sentences, "tokens": tokens, "dropped": dropped[0]}
            log.info("corpus: %s: %d sentences, %d tokens", name, sentences, tokens)
    total = sum(d["tokens"] for d in per_dataset.values())
    if total == 0:
        raise PipelineError(f"empty corpus: datasets {', '.join(cfg.data.corpus)} gave no "
                            f"sentences with >= {cfg.prepare.min_tokens} tokens")
    return per_dataset


def _read_labelled(cfg: Config, scratch: Path, decode: readers.DecodeLog
                   ) -> tuple[list[str], np.ndarray, np.ndarray, int]:
    """Clean the labelled examples into `scratch` (one per line); keep only labels in memory.

    Returns (classes, class ids [N] int32, token counts [N] int32, dropped examples).
    """
    name = cfg.data.labelled
    class_ids: dict[str, int] = {}
    raw_ids: list[int] = []
    lengths: list[int] = []
    dropped = [0]
    with open(scratch, "w", encoding="utf-8", newline="\n") as out:
        for example, text, n in _cleaned(cfg, name, decode, "example", dropped):
            out.write(text + "\n")
            raw_ids.append(class_ids.setdefault(example.label, len(class_ids)))
            lengths.append(n)
    if not raw_ids:
        raise PipelineError(f"labelled dataset {name!r} has no examples with "
                            f">= {cfg.prepare.min_tokens} tokens")
    classes = sorted(class_ids)
    if len(classes) < 2:
        raise PipelineError(f"labelled dataset {name!r} has a single class {classes[0]!r}: "
                            "a classifier needs at least two")
    # Reading order gave provisional ids; renumber so id = position in sorted labels.txt.
    remap = np.array([classes.index(c) for c in class_ids], dtype=np.int32)
    return classes, remap[np.array(raw_ids)], np.array(lengths, dtype=np.int32), dropped[0]


def _write_row(handle: TextIO, fields: list[str]) -> None:
    # clean_str maps tabs and newlines to spaces, and readers reject such labels: check anyway,
    # a malformed TSV would silently shift columns downstream.
    if any("\t" in f or "\n" in f for f in fields):
        raise PipelineError(f"malformed TSV row (tab or newline in a field): {fields[:2]!r}")
    handle.write("\t".join(fields) + "\n")


def write_labelled(cfg: Config, folder: Path, decode: readers.DecodeLog) -> dict[str, Any]:
    """Write train/dev/test/all.tsv and labels.txt into `folder`; return split statistics."""
    scratch = folder / ".examples.tmp"
    classes, labels, lengths, dropped = _read_labelled(cfg, scratch, decode)
    p = cfg.prepare
    if p.folds > len(labels):
        raise PipelineError(f"prepare.folds = {p.folds} exceeds the {len(labels)} examples")
    split = assign_splits(labels, p.dev_fraction, p.test_fraction, cfg.seed)
    fold = assign_folds(labels, p.folds, cfg.seed)
    with contextlib.ExitStack() as stack:
        def create(name: str) -> TextIO:
            return stack.enter_context(open(folder / name, "w", encoding="utf-8", newline="\n"))

        outs = {s: create(f"{s}.tsv") for s in SPLITS}
        all_tsv = create("all.tsv")
        texts = stack.enter_context(open(scratch, encoding="utf-8"))
        for handle in outs.values():
            handle.write("label\ttext\n")
        all_tsv.write("label\ttext\tsplit\tfold\n")
        for i, line in enumerate(texts):
            label, text, where = classes[labels[i]], line.rstrip("\n"), SPLITS[split[i]]
            _write_row(outs[where], [label, text])
            _write_row(all_tsv, [label, text, where, str(fold[i])])
    scratch.unlink()
    (folder / "labels.txt").write_text("".join(c + "\n" for c in classes), encoding="utf-8")
    _check_tsv(folder / "all.tsv", 4, len(labels))
    counts = {s: {c: int(np.sum((split == k) & (labels == j))) for j, c in enumerate(classes)}
              for k, s in enumerate(SPLITS)}
    for s, per_class in counts.items():
        if p.dev_fraction + p.test_fraction > 0 and s != "train" and not sum(per_class.values()):
            log.warning("labelled: the %s split is empty (only %d examples)", s, len(labels))
    return {"classes": classes, "counts": counts, "lengths": lengths, "dropped": dropped,
            "folds": np.bincount(fold[fold >= 0], minlength=p.folds).tolist()}


def _check_tsv(path: Path, n_fields: int, n_rows: int) -> None:
    with open(path, encoding="utf-8") as handle:
        rows = [line.count("\t") + 1 for line in handle]
    if len(rows) != n_rows + 1 or any(n != n_fields for n in rows):
        raise PipelineError(f"{path.name}: malformed TSV ({len(rows) - 1} rows written, "
                            f"{n_rows} expected, each with {n_fields} fields)")


def _key(label: str) -> str:
    # a distinct key per label, valid for MLflow and DVC (tracking.safe_key)
    return tracking.safe_key(label)


def run(cfg: Config) -> dict[str, Any]:
    names = list(dict.fromkeys([*cfg.data.corpus, cfg.data.labelled]))
    readers.check_available(cfg, names)
    decode = readers.DecodeLog()
    with atomic_dir(cfg.path("prepared")) as folder:
        datasets = write_corpus(cfg, folder / "corpus.txt", decode)
        labelled = write_labelled(cfg, folder, decode)
    if decode.latin1:
        log.info("decoded as latin-1 (not valid UTF-8): %s", ", ".join(sorted(decode.latin1)))
    lengths = labelled["lengths"]
    metrics: dict[str, Any] = {
        "corpus_sentences": sum(d["sentences"] for d in datasets.values()),
        "corpus_tokens": sum(d["tokens"] for d in datasets.values()),
        "dropped_sentences": sum(d["dropped"] for d in datasets.values()),
        "examples": int(len(lengths)),
        "classes": len(labelled["classes"]),
        "example_tokens_mean": round(float(lengths.mean()), 3),
        "example_tokens_max": int(lengths.max()),
        "dropped_examples": labelled["dropped"],
        "latin1_files": len(decode.latin1),
        "datasets": datasets,
        "split_counts": labelled["counts"],
        "fold_sizes": labelled["folds"],
    }
    for name, stats in datasets.items():
        metrics[f"tokens_{_key(name)}"] = stats["tokens"]
        metrics[f"sentences_{_key(name)}"] = stats["sentences"]
    for split, per_class in labelled["counts"].items():
        metrics[f"{split}_examples"] = sum(per_class.values())
        for label, count in per_class.items():
            metrics[f"{split}_{_key(label)}"] = count
    tracking.set_tags({"labelled": cfg.data.labelled, "corpus": ",".join(cfg.data.corpus)})
    tracking.log_artifact(cfg.path("prepared") / "labels.txt")
    return metrics


def main(argv: list[str] | None = None) -> int:
    return stage_main("prepare", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
