"""Stage `download`: fetch, verify and safely extract every registry dataset the params name.

Params: `data` (corpus, labelled, custom), `download` (connect_timeout, read_timeout,
retries, backoff, max_extract_mb) and `mnist.protocol` (which MNIST files). Environment:
`DATA_MIRROR` (folders or base URLs separated by `|`, used instead of the public URLs, see
tasks/ingest/fetch.py) and `DATASET_REGISTRY` (a YAML file adding or overriding registry
entries, see tasks/core/catalog.py).

Datasets: the registry names in `data.corpus`, then `data.labelled` if it is one, each once.
Outputs, under `paths.raw`:
- `<filename>` (e.g. `brown.zip`): the verified archive, kept (DVC `persist: true`) so it is
  never fetched twice;
- `<name>/`: the extracted tree, the archive's top folder `<name>/` stripped
  (`data/raw/brown/ca01`, `data/raw/sentence_polarity/rt-polarity.pos`);
- `<name>.extracted.json`: marker naming the archive sha256/md5 the tree came from, so an
  unchanged archive is not extracted again.
Under `paths.mnist_raw`: the MNIST IDX files `mnist.protocol` reads (registry entries of kind
`file`, `catalog.mnist_datasets`), verified and kept as downloaded (`t10k-images-idx3-ubyte.gz`,
...), for the `mnist` stage. A separate output, so the text stages never re-run for MNIST.
Custom datasets (`data.custom`) are only checked (exist, non-empty): prepare reads them.

Metrics (numeric): datasets, fetched, cached, from_mirror, archive_bytes, extracted,
extracted_files, extracted_bytes, custom_files, custom_bytes (text datasets), mnist_files,
mnist_fetched, mnist_bytes. Each dataset's source and sha256 go to MLflow as tags / params
(`download.source.<name>`, `dataset.<name>.sha256`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.core import tracking
from tasks.core.atomic import write_json
from tasks.core.catalog import DatasetSpec, mnist_datasets, registry
from tasks.core.errors import PipelineError
from tasks.core.params import Config, Download
from tasks.core.stage import stage_main
from tasks.ingest.archive import extract
from tasks.ingest.fetch import MIRROR_ENV, FetchResult, check_mirrors, fetch, redact_mirrors

log = logging.getLogger("tasks.download")  # not "__main__" under python -m

MARKER_SUFFIX = ".extracted.json"


@dataclass(frozen=True)
class Fetched:
    """One dataset after the stage: its verified archive and extracted tree."""

    spec: DatasetSpec
    fetch: FetchResult
    tree: Path
    files: int
    bytes: int
    extracted: bool  # False when the marker showed the tree already matches the archive


def dataset_names(cfg: Config, known: dict[str, DatasetSpec]) -> list[str]:
    """Registry names in data.corpus then data.labelled, deduplicated, in order."""
    names = [n for n in (*cfg.data.corpus, cfg.data.labelled) if n in known]
    names = list(dict.fromkeys(names))
    files: dict[str, str] = {}
    for name in names:
        filename = known[name].filename
        if filename in files or filename == name:
            raise PipelineError(f"{name}: archive name {filename!r} collides with "
                                f"{files.get(filename, 'its extracted folder')!r}")
        files[filename] = name
    return names


def check_custom(cfg: Config) -> tuple[int, int]:
    """Every file of every `data.custom` dataset exists and is non-empty -> (files, bytes)."""
    count = size = 0
    for name, dataset in cfg.data.custom.items():
        paths = dict(dataset.files) if dataset.format == "class_files" else {"file": dataset.file}
        for key, rel in paths.items():
            path = cfg.resolve(rel)
            where = f"data.custom.{name}.{'files.' if key != 'file' else ''}{key}"
            if not path.is_file():
                raise PipelineError(f"{where}: file {rel} not found (looked in {path.parent})")
            length = path.stat().st_size
            if length == 0:
                raise PipelineError(f"{where}: file {rel} is empty")
            count += 1
            size += length
    return count, size


def _marker_matches(marker: Path, tree: Path, result: FetchResult) -> bool:
    """True when `tree` came from this archive and still has the files/bytes it had then."""
    try:
        saved = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if not tree.is_dir() or saved.get("sha256") != result.sha256:
        return False
    files = [p for p in tree.rglob("*") if p.is_file()]
    return saved.get("files") == len(files) and saved.get("bytes") == sum(
        p.stat().st_size for p in files)


def materialise(spec: DatasetSpec, raw: Path, settings: Download,
                mirror: str | None = None) -> Fetched:
    """Fetch `spec` into `raw/<filename>` and extract it to `raw/<name>/` (both idempotent)."""
    result = fetch(spec, raw / spec.filename, settings, mirror)
    tree, marker = raw / spec.name, raw / f"{spec.name}{MARKER_SUFFIX}"
    if _marker_matches(marker, tree, result):
        saved = json.loads(marker.read_text())
        log.info("%s: %s/ already extracted from this archive", spec.name, spec.name)
        return Fetched(spec, result, tree, saved["files"], saved["bytes"], False)
    # Marker first: a crash between the two renames must leave "not extracted", never "done".
    marker.unlink(missing_ok=True)
    done = extract(result.path, tree, max_bytes=settings.max_extract_mb * 2**20,
                   kind=spec.archive, strip=f"{spec.name}/")
    write_json(marker, {"archive": spec.filename, "sha256": result.sha256, "md5": result.md5,
                        "files": done.files, "bytes": done.bytes})
    log.info("%s: extracted %d files (%s bytes) to %s/", spec.name, done.files,
             f"{done.bytes:,}", spec.name)
    return Fetched(spec, result, tree, done.files, done.bytes, True)


def run(cfg: Config) -> dict[str, Any]:
    """Fetch and extract the params' datasets; -> numeric metrics (see module docstring)."""
    known = registry()
    names = dataset_names(cfg, known)
    custom_files, custom_bytes = check_custom(cfg)  # a local mistake fails before any network
    digits = mnist_datasets(cfg.mnist.protocol)
    missing = [name for name in digits if name not in known]
    if missing:  # only a DATASET_REGISTRY file could cause it (built-ins are always there)
        raise PipelineError(f"{missing[0]}: not in the dataset registry (mnist.protocol "
                            f"{cfg.mnist.protocol} needs it)")
    mirror = os.environ.get(MIRROR_ENV) or None
    check_mirrors(mirror)  # a mistyped folder fails before any network
    if mirror:
        log.info("using %s=%s instead of the public URLs", MIRROR_ENV, redact_mirrors(mirror))
    raw = cfg.path("raw")
    done = [materialise(known[name], raw, cfg.download, mirror) for name in names]
    mnist_raw = cfg.path("mnist_raw")
    idx = [fetch(known[name], mnist_raw / known[name].filename, cfg.download, mirror)
           for name in digits]

    tracking.set_tags({"download.datasets": ",".join([*names, *digits]),
                       "download.mirror": redact_mirrors(mirror) if mirror else "",
                       **{f"download.source.{d.spec.name}": d.fetch.source for d in done},
                       **{f"download.source.{r.name}": r.source for r in idx}})
    tracking.log_params({f"dataset.{d.spec.name}.sha256": d.fetch.sha256 for d in done}
                        | {f"dataset.{r.name}.sha256": r.sha256 for r in idx})
    return {
        "datasets": len(done),
        "fetched": sum(d.fetch.source != "cached" for d in done),
        "cached": sum(d.fetch.source == "cached" for d in done),
        "from_mirror": sum(d.fetch.source == "mirror" for d in done),
        "archive_bytes": sum(d.fetch.size for d in done),
        "extracted": sum(d.extracted for d in done),
        "extracted_files": sum(d.files for d in done),
        "extracted_bytes": sum(d.bytes for d in done),
        "custom_files": custom_files,
        "custom_bytes": custom_bytes,
        "mnist_files": len(idx),
        "mnist_fetched": sum(r.source != "cached" for r in idx),
        "mnist_bytes": sum(r.size for r in idx),
    }


def main(argv: list[str] | None = None) -> int:
    return stage_main("download", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
