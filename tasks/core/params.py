"""The one params parser: `params.yaml` -> typed, frozen config objects.

    cfg = load_params()                                  # ./params.yaml
    cfg = load_params("p.yaml", {"vocab.min_count": 3})  # overrides, validated the same way
    cfg.word2vec.dims, cfg.path("vocab")                 # typed fields, absolute paths

Every stage, flow and benchmark reads params through here, so an unknown key, a wrong type or
an out-of-range value fails before any work with `ParamsError` naming the dotted key.
Dataclass field names are the params.yaml keys; the sections are documented in params.yaml.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from tasks.core.catalog import MNIST_PROTOCOLS
from tasks.core.errors import ParamsError
from tasks.core.schema import bounded, build, flatten

__all__ = ["Config", "ParamsError", "load_params", "flatten", "PARAMS_FILE"]

PARAMS_FILE = "params.yaml"

# cnn.embedding_init: Kim (2014)'s four embedding variants, the one list of them.
CNN_VARIANTS = ("rand", "static", "non-static", "multichannel")


@dataclass(frozen=True)
class Paths:
    raw: str
    prepared: str
    vocab: str
    word2vec: str
    export: str
    cnn: str
    mnist_raw: str
    mnist: str
    metrics: str
    # Own-dataset files (data.custom) must lie under this folder: DVC tracks it as a dep of
    # download and prepare, so editing one re-runs them (docs/data.md).
    custom: str = "data/custom"


@dataclass(frozen=True)
class Tracking:
    experiment: str
    uri: str
    enabled: bool


@dataclass(frozen=True)
class CustomDataset:
    """A user's labelled dataset: one file per class, or a CSV/TSV with text and label columns."""

    format: Literal["class_files", "csv", "tsv"]
    files: Mapping[str, str] = dataclasses.field(default_factory=dict)
    file: str = ""
    text_column: str = "text"
    label_column: str = "label"

    def __post_init__(self) -> None:
        if self.format == "class_files" and len(self.files) < 2:
            raise ParamsError("files: class_files needs at least two classes (label: path)")
        if self.format != "class_files" and not self.file:
            raise ParamsError(f"file: format {self.format} needs `file`")


@dataclass(frozen=True)
class Data:
    corpus: tuple[str, ...]
    labelled: str
    custom: Mapping[str, CustomDataset]

    def __post_init__(self) -> None:
        from tasks.core.catalog import registry

        # Built-in + the DATASET_REGISTRY file, if set; `file` entries (MNIST IDX) are not text.
        known = {n: s for n, s in registry().items() if s.archive != "file"}
        if not self.corpus:
            raise ParamsError("corpus: must name at least one dataset")
        clash = sorted(set(self.custom) & set(known))
        if clash:
            raise ParamsError(f"custom.{clash[0]}: name taken by the dataset registry")
        for i, name in enumerate(self.corpus):
            if name not in known and name not in self.custom:
                raise ParamsError(f"corpus[{i}]: unknown dataset {name!r} "
                                  f"(known: {', '.join(sorted(known))}, or data.custom)")
        labelled = {n for n, s in known.items() if s.labelled} | set(self.custom)
        if self.labelled not in labelled:
            raise ParamsError(f"labelled: {self.labelled!r} is not a labelled dataset "
                              f"(known: {', '.join(sorted(labelled))})")


@dataclass(frozen=True)
class Download:
    connect_timeout: float = bounded(gt=0)
    read_timeout: float = bounded(gt=0)
    retries: int = bounded(ge=0, le=20)
    backoff: float = bounded(ge=0)
    max_extract_mb: int = bounded(ge=1)


@dataclass(frozen=True)
class Prepare:
    lowercase: bool
    min_tokens: int = bounded(ge=1)
    dev_fraction: float = bounded(ge=0, lt=1)
    test_fraction: float = bounded(ge=0, lt=1)
    folds: int = bounded(ge=0, le=100)

    def __post_init__(self) -> None:
        if self.dev_fraction + self.test_fraction >= 1:
            raise ParamsError("dev_fraction: dev_fraction + test_fraction must be < 1")
        if self.folds == 1:
            raise ParamsError("folds: must be 0 (none) or >= 2, got 1")


@dataclass(frozen=True)
class Vocab:
    min_count: int = bounded(ge=1)
    max_size: int = bounded(ge=0)
    sample: float = bounded(ge=0, le=1)
    noise_power: float = bounded(ge=0, le=1)

    def __post_init__(self) -> None:
        # max_size counts every row of vocab.tsv, the two reserved ones included.
        if 0 < self.max_size < 3:
            raise ParamsError("max_size: must be 0 (no limit) or >= 3 (<pad>, <unk>, a word)")


@dataclass(frozen=True)
class Word2Vec:
    model: Literal["skipgram", "cbow"]
    loss: Literal["neg", "nce"]
    dims: int = bounded(ge=1, le=4096)
    window: int = bounded(ge=1, le=50)
    negatives: int = bounded(ge=1, le=100)
    epochs: int = bounded(ge=1)
    batch_size: int = bounded(ge=1)
    learning_rate: float = bounded(gt=0)
    min_learning_rate: float = bounded(ge=0)
    checkpoint_every: int = bounded(ge=1)
    threads: int = bounded(ge=1, le=256)
    analogy_file: str
    wordsim_file: str
    restrict_vocab: int = bounded(ge=1)

    def __post_init__(self) -> None:
        if self.min_learning_rate > self.learning_rate:
            raise ParamsError("min_learning_rate: must be <= learning_rate")


@dataclass(frozen=True)
class Export:
    projector_words: int = bounded(ge=1)


@dataclass(frozen=True)
class Cnn:
    embedding_init: Literal[CNN_VARIANTS]  # type: ignore[valid-type]
    optimizer: Literal["adam", "adadelta"]
    protocol: Literal["split", "kfold"]
    embedding_dims: int = bounded(ge=1, le=4096)
    filter_windows: tuple[int, ...]
    feature_maps: int = bounded(ge=1)
    dropout: float = bounded(ge=0, lt=1)
    max_norm: float = bounded(ge=0)
    max_length: int = bounded(ge=1)
    batch_size: int = bounded(ge=1)
    epochs: int = bounded(ge=1)
    learning_rate: float = bounded(gt=0)
    patience: int = bounded(ge=0)
    fold: int = bounded(ge=-1, le=99)  # kfold: -1 = every fold, i = fold i alone

    def __post_init__(self) -> None:
        if not self.filter_windows or min(self.filter_windows) < 1:
            raise ParamsError("filter_windows: need at least one window, each >= 1")
        if max(self.filter_windows) > self.max_length:
            raise ParamsError("filter_windows: a window is longer than max_length")


@dataclass(frozen=True)
class MnistSoftmax:
    """The workshop's softmax regression: plain gradient descent on the summed cross-entropy."""

    reduction: Literal["sum", "mean"]
    learning_rate: float = bounded(gt=0)
    batch_size: int = bounded(ge=1)
    steps: int = bounded(ge=1)
    eval_every: int = bounded(ge=1)


@dataclass(frozen=True)
class MnistCnn:
    """"Deep MNIST for experts": two 5x5 conv + 2x2 max-pool, dense + dropout, softmax; Adam."""

    filters: tuple[int, ...]
    dense_units: int = bounded(ge=1)
    dropout: float = bounded(ge=0, lt=1)
    learning_rate: float = bounded(gt=0)
    batch_size: int = bounded(ge=1)
    epochs: float = bounded(gt=0)
    eval_every: int = bounded(ge=1)

    def __post_init__(self) -> None:
        if len(self.filters) != 2 or min(self.filters) < 1:
            raise ParamsError(f"filters: two conv layers, each >= 1 filter, got "
                              f"{list(self.filters)}")


@dataclass(frozen=True)
class Mnist:
    """Stage `mnist` (and which MNIST files `download` fetches: `protocol`)."""

    protocol: Literal[tuple(MNIST_PROTOCOLS)]  # type: ignore[valid-type]
    dev_fraction: float = bounded(ge=0, lt=1)
    test_fraction: float = bounded(ge=0, lt=1)  # test-split only (standard tests on the 10k)
    softmax: MnistSoftmax
    cnn: MnistCnn

    def __post_init__(self) -> None:
        if self.protocol == "test-split" and self.dev_fraction + self.test_fraction >= 1:
            raise ParamsError("dev_fraction: dev_fraction + test_fraction must be < 1")
        if self.protocol == "test-split" and self.test_fraction == 0:
            raise ParamsError("test_fraction: test-split needs a test part (> 0)")


@dataclass(frozen=True)
class Distributed:
    """Distributed word2vec training (tasks/distributed, flows/distributed.py)."""

    strategy: Literal["sync", "async"]
    backend: Literal["local", "kubernetes"]
    workers: int = bounded(ge=1, le=256)
    ps: int = bounded(ge=0, le=64)
    exchange_every: int = bounded(ge=1, le=10000)
    push_every: int = bounded(ge=1, le=10000)
    max_restarts: int = bounded(ge=0, le=100)
    timeout: float = bounded(gt=0)
    shared_path: str
    image: str
    namespace: str
    volume_claim: str
    mount_path: str
    workdir: str
    cpu: str
    memory: str

    def __post_init__(self) -> None:
        if self.strategy == "async" and self.ps < 1:
            raise ParamsError("ps: strategy async needs at least one parameter server")


@dataclass(frozen=True)
class Config:
    """The whole params.yaml. `root` is the folder holding it: relative paths start there."""

    seed: int
    paths: Paths
    tracking: Tracking
    data: Data
    download: Download
    prepare: Prepare
    vocab: Vocab
    word2vec: Word2Vec
    export: Export
    cnn: Cnn
    mnist: Mnist
    distributed: Distributed
    root: Path = Path(".")

    def path(self, name: str) -> Path:
        """Absolute path of `paths.<name>`."""
        return (self.root / getattr(self.paths, name)).resolve()

    def resolve(self, relative: str) -> Path:
        """Absolute path of a params-relative file (e.g. `word2vec.analogy_file`)."""
        return (self.root / relative).resolve()

    def flat(self) -> dict[str, Any]:
        """Dotted keys -> values, without `root` (for MLflow params)."""
        out = flatten(self)
        out.pop("root", None)
        return out


def apply_overrides(raw: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of `raw` with dotted `overrides` set; a key must already exist."""
    raw = copy.deepcopy(raw)
    for dotted, value in overrides.items():
        node = raw
        parts = dotted.split(".")
        for depth, part in enumerate(parts):
            here = ".".join(parts[: depth + 1])
            if not isinstance(node, dict) or part not in node:
                # data.custom.<name> may be new: it is a user-defined mapping.
                if here.startswith("data.custom.") and isinstance(node, dict):
                    node[part] = {} if depth < len(parts) - 1 else value
                else:
                    raise ParamsError(f"{here}: unknown key (override {dotted!r})")
            if depth == len(parts) - 1:
                node[part] = value
            else:
                node = node[part]
    return raw


def parse(raw: Any, root: Path | str = ".", overrides: Mapping[str, Any] | None = None) -> Config:
    """Validate a parsed-YAML mapping (plus dotted overrides) into a `Config`."""
    if not isinstance(raw, dict):
        raise ParamsError(f"params: expected a mapping at the top level, got {type(raw).__name__}")
    if "root" in raw:
        raise ParamsError("root: unknown key (reserved)")
    if overrides:
        raw = apply_overrides(raw, overrides)
    cfg = dataclasses.replace(build(Config, raw), root=Path(root).resolve())
    confine_custom_files(cfg)
    return cfg


def custom_files(dataset: CustomDataset) -> dict[str, str]:
    """A data.custom entry's files by their key under it: `files.<label>` or `file`."""
    if dataset.format == "class_files":
        return {f"files.{label}": rel for label, rel in dataset.files.items()}
    return {"file": dataset.file}


def confine_custom_files(cfg: Config) -> None:
    """Every data.custom file must resolve (symlinks followed) inside `paths.custom`, the
    folder DVC tracks: anything else (`../../etc/passwd`, an absolute path, a symlink out)
    is a ParamsError naming the key and the path."""
    base = cfg.path("custom")
    for name, dataset in cfg.data.custom.items():
        for key, rel in custom_files(dataset).items():
            where = f"data.custom.{name}.{key}"
            try:
                target = cfg.resolve(rel)
            except (OSError, ValueError, RuntimeError) as exc:  # NUL byte, symlink loop
                raise ParamsError(f"{where}: bad path {rel!r} ({exc})") from None
            if not rel or not target.is_relative_to(base):
                raise ParamsError(f"{where}: {rel!r} resolves to {target}, outside "
                                  f"{cfg.paths.custom}/ (own-dataset files must lie under "
                                  f"paths.custom so DVC tracks them)")


def load_params(path: Path | str = PARAMS_FILE,
                overrides: Mapping[str, Any] | None = None) -> Config:
    """Read and validate `path` (default ./params.yaml); raise ParamsError naming the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML ({exc})".replace("\n", " ")) from None
    return parse(raw, path.parent, overrides)
