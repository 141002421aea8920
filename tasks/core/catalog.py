"""The dataset registry: every public dataset the pipeline knows, by name.

Each entry states where the file lives (the URL NLTK's own downloader uses; for MNIST the
mirror TensorFlow's own loader uses), its size and checksums (md5 as published, sha256 measured
on the same bytes when we have them), which reader turns it into data, and its `archive` kind:
- `zip`: extracted to `<paths.raw>/<name>/`, read by a `tasks.ingest.readers` reader (text);
- `none`: a single text file copied into `<paths.raw>/<name>/` (text8);
- `file`: kept as downloaded, never extracted (the gzip IDX files of MNIST, read directly by
  `tasks.digits.idx`); such entries are not text datasets (`data.corpus` refuses them).
`DATA_MIRROR` (folders or base URLs, see tasks/ingest/fetch.py), when set, is used instead of
the URL, with the URL's basename as file name.

MNIST: `MNIST_PROTOCOLS` maps each `mnist.protocol` to the parts it reads, `mnist_datasets`
to the registry names the download stage fetches for it.

`registry()` is the registry in effect: the built-in `REGISTRY` plus the entries of the YAML
file named by `DATASET_REGISTRY` (if set), which add datasets or override built-in ones, e.g.
a repackaged private mirror or test fixtures:

    brown: {url: https://mirror.example/brown.zip, size: 3314357, sha256: 9b27..., reader: brown}

Every entry needs `url` and at least one of `md5` / `sha256`; `reader`, `labelled` and
`archive` default to the built-in entry's (or `archive: zip`, `labelled: false` for new names).

Users add their own labelled data in params (`data.custom`), not here.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tasks.core.errors import PipelineError

REGISTRY_ENV = "DATASET_REGISTRY"

NLTK_BASE = "https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/corpora"
MNIST_BASE = "https://storage.googleapis.com/cvdf-datasets/mnist"
ARCHIVE_KINDS = ("zip", "none", "file")

# mnist.protocol -> the MNIST parts it reads (the one list of protocols; params and
# tasks.digits.split use it): test-split splits the 10k test set, standard trains on the 60k.
MNIST_PROTOCOLS: dict[str, tuple[str, ...]] = {"test-split": ("t10k",),
                                               "standard": ("train", "t10k")}


@dataclass(frozen=True)
class DatasetSpec:
    """A downloadable dataset. `labelled` datasets also yield (label, text) examples."""

    name: str
    url: str
    size: int | None          # bytes; None when not published
    md5: str | None
    sha256: str | None
    reader: str               # function name in tasks.ingest.readers
    labelled: bool = False
    archive: str = "zip"      # zip | none (a single text file) | file (kept, not extracted)

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


def _nltk(name: str, size: int, md5: str, sha256: str, reader: str,
          labelled: bool = False) -> DatasetSpec:
    return DatasetSpec(name, f"{NLTK_BASE}/{name}.zip", size, md5, sha256, reader, labelled)


def _mnist(part: str, filename: str, size: int | None, md5: str, sha256: str | None
           ) -> DatasetSpec:
    return DatasetSpec(f"mnist-{part}", f"{MNIST_BASE}/{filename}", size, md5, sha256, "idx",
                       archive="file")


REGISTRY: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        _nltk("sentence_polarity", 490256, "5cdc0cae7f558040d050c90eb2b72e97",
              "6e1ed4405b65c7eabf1d199a7f7c437091ac21da0ea7467b410a74062574566b",
              "sentence_polarity", labelled=True),
        _nltk("movie_reviews", 4004848, "155de2b77c6834dd8eea7cbe88e93acb",
              "a41211ae685019137410268134db6a1a14428c89b671eb83056151a878539008",
              "movie_reviews", labelled=True),
        _nltk("brown", 3314357, "a0a8630959d3d937873b1265b0a05497",
              "9b275f9b3b95d7bd66ccfb7cd259f445a13bbe5d1f4107aba09fd3e8364bafa6", "brown"),
        _nltk("abc", 1487851, "ffb36b67ff24cbf7daaf171c897eb904",
              "129bb6001beb828049a90a59b7dd3c2f0594a47012e48fc5177dfae38e658565", "plain_text"),
        _nltk("state_union", 808757, "044f2d20c592b17a26ac0102111833c9",
              "366c1dc82b2abf896f42b2ec50ba802a0141a29f75d29ca48a7a243ce5bfbe8d", "plain_text"),
        _nltk("webtext", 646297, "6c7680030aae5c997b1370f832545c6a",
              "9e32dbae4879464b8f420a0dc721855bb26167b720d7695588d2ca2aeadf501a", "plain_text"),
        _nltk("inaugural", 346476, "4e01cc9505ed7f9d04a330e67fb45509",
              "7c5fb5793e31fbeae12bf1aa0ffda5336468f07cedb50654c6d31ca384e2046b", "plain_text"),
        # text8: ~17M words on one line; no checksum is published, so only the size is checked.
        DatasetSpec("text8", "http://mattmahoney.net/dc/text8.zip", 31344016, None, None,
                    "text8"),
        # MNIST IDX files: t10k size/md5/sha256 measured on the shared mirror's bytes; for the
        # training files only the published md5 is known.
        _mnist("t10k-images", "t10k-images-idx3-ubyte.gz", 1648877,
               "9fb629c4189551a2d022fa330f9573f3",
               "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        _mnist("t10k-labels", "t10k-labels-idx1-ubyte.gz", 4542,
               "ec29112dd5afa0611ce80d1b7f02629c",
               "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
        _mnist("train-images", "train-images-idx3-ubyte.gz", None,
               "f68b3c2dcbeaaa9fbdd348bbdeb94873", None),
        _mnist("train-labels", "train-labels-idx1-ubyte.gz", None,
               "d53e105ee54ea40749a09fcbcd1e9432", None),
    ]
}


def mnist_datasets(protocol: str) -> list[str]:
    """Registry names of the MNIST files `protocol` reads, images before labels, train first."""
    if protocol not in MNIST_PROTOCOLS:
        raise PipelineError(f"unknown MNIST protocol {protocol!r} "
                            f"(known: {', '.join(MNIST_PROTOCOLS)})")
    return [f"mnist-{part}-{kind}" for part in MNIST_PROTOCOLS[protocol]
            for kind in ("images", "labels")]


_FIELDS = {"url", "size", "md5", "sha256", "reader", "labelled", "archive"}
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_HEX = {"md5": re.compile(r"[0-9a-f]{32}"), "sha256": re.compile(r"[0-9a-f]{64}")}


def _entry(source: str, name: str, raw: Any) -> DatasetSpec:
    """Validate one DATASET_REGISTRY entry into a spec; errors name the file and the key."""
    def bad(key: str, why: str) -> PipelineError:
        where = f"{name}.{key}" if key else name
        return PipelineError(f"{REGISTRY_ENV}={source}: {where}: {why}")

    if not _SAFE.fullmatch(name):
        # The name becomes a folder under paths.raw: no separators, no dot-dot.
        raise bad("", "a dataset name is letters, digits, '_', '-' or '.' (not first)")
    if not isinstance(raw, dict):
        raise bad("", f"expected a mapping, got {raw!r}")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise bad(unknown[0], f"unknown key (known: {', '.join(sorted(_FIELDS))})")
    base = REGISTRY.get(name)
    url = raw.get("url")
    if not (isinstance(url, str) and url.startswith(("http://", "https://", "file://"))
            and _SAFE.fullmatch(url.rsplit("/", 1)[-1])):
        raise bad("url", f"expected an http(s):// or file:// URL ending in a file name, "
                         f"got {url!r}")
    size = raw.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise bad("size", f"expected a byte count, got {size!r}")
    sums = {}
    for key, pattern in _HEX.items():
        value = raw.get(key)
        if value is not None and not (isinstance(value, str) and pattern.fullmatch(value)):
            raise bad(key, f"expected lowercase hex, got {value!r}")
        sums[key] = value
    if not (sums["md5"] or sums["sha256"]):
        # Checksums are always verified: an entry that could not be checked is refused.
        raise bad("sha256", "an entry needs md5 and/or sha256")
    reader = raw.get("reader", base.reader if base else None)
    if not isinstance(reader, str) or not reader:
        raise bad("reader", f"expected a reader name (tasks.ingest.readers), got {reader!r}")
    labelled = raw.get("labelled", base.labelled if base else False)
    if not isinstance(labelled, bool):
        raise bad("labelled", f"expected true/false, got {labelled!r}")
    archive = raw.get("archive", base.archive if base else "zip")
    if archive not in ARCHIVE_KINDS:
        raise bad("archive", f"expected one of {', '.join(ARCHIVE_KINDS)}, got {archive!r}")
    return DatasetSpec(name, url, size, sums["md5"], sums["sha256"], reader, labelled, archive)


def load_registry_file(path: Path | str) -> dict[str, DatasetSpec]:
    """Parse a DATASET_REGISTRY YAML file (`name: {url, size, md5, sha256, ...}`)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PipelineError(f"{REGISTRY_ENV}={path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        message = " ".join(str(exc).split())
        raise PipelineError(f"{REGISTRY_ENV}={path}: not valid YAML ({message})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PipelineError(f"{REGISTRY_ENV}={path}: expected a mapping of dataset names")
    return {str(name): _entry(str(path), str(name), entry) for name, entry in raw.items()}


def registry() -> dict[str, DatasetSpec]:
    """The registry in effect: built-in `REGISTRY` updated by the `DATASET_REGISTRY` file."""
    merged = dict(REGISTRY)
    extra = os.environ.get(REGISTRY_ENV)
    if extra:
        merged.update(load_registry_file(extra))
    return merged
