"""A throwaway copy of this project as its own git + DVC repo, fed by loopback fixtures.

Used by the end-to-end tests (DVC, Prefect): they run the real stage commands from dvc.yaml
against tiny NLTK-layout zips served over HTTP on 127.0.0.1.

    with fixture_project(tmp_path) as project:   # project.root, project.env, project.run(...)
        project.run("dvc", "repro")
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.fixtures import build_fixtures, fixture_registry, serve_directory

REPO = Path(__file__).resolve().parents[1]
COPIED = ["tasks", "flows", "scripts", "dvc.yaml", "params.yaml", ".dvcignore", ".gitignore",
          "pyproject.toml", "data/custom/.gitkeep", "prefect.yaml",
          "docs/img/digit7.png"]   # the README predicts on it

# Small enough that every stage runs in seconds on 2 cores, large enough to exercise each path.
TINY_PARAMS: dict[str, Any] = {
    "data.corpus": ["sentence_polarity", "brown", "abc"],
    "vocab.min_count": 1,
    "word2vec.dims": 8,
    "word2vec.epochs": 1,
    "word2vec.batch_size": 256,
    "word2vec.checkpoint_every": 50,
    "word2vec.analogy_file": "eval/questions-words.txt",
    "word2vec.wordsim_file": "eval/wordsim353.tsv",
    "word2vec.restrict_vocab": 1000,
    "export.projector_words": 50,
    "cnn.embedding_dims": 8,
    "cnn.epochs": 1,
    "cnn.feature_maps": 4,
    "cnn.max_length": 20,
    "cnn.batch_size": 32,
    "prepare.folds": 0,
    "mnist.softmax.steps": 20,
    "mnist.softmax.eval_every": 10,
    "mnist.softmax.batch_size": 50,
    "mnist.cnn.filters": [2, 4],
    "mnist.cnn.dense_units": 16,
    "mnist.cnn.epochs": 1.0,
    "mnist.cnn.batch_size": 50,
    "mnist.cnn.eval_every": 3,
}

ANALOGY = """: capital-common-countries
athens greece rome italy
: gram1-adjective-to-adverb
good well bad badly
"""
WORDSIM = "# Word 1\tWord 2\tHuman (mean)\ngood\tgreat\t8.0\ngood\tbad\t2.0\ncat\tdog\t7.0\n"


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=test", *args],
                   cwd=root, check=True, capture_output=True)


def set_params(root: Path, overrides: dict[str, Any]) -> None:
    """Rewrite root/params.yaml with dotted overrides (validated by the project's parser)."""
    from tasks.core.params import apply_overrides, parse

    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw = apply_overrides(raw, overrides)
    parse(raw, root)  # fail here, not in a stage, if a test writes a bad value
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


@dataclass
class Project:
    root: Path
    env: dict[str, str]

    def run(self, *cmd: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        result = subprocess.run(cmd, cwd=self.root, env=self.env, capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n"
                                 f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
        return result

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(str(Path(sys.executable).parent / "dvc"), *args, check=check)


def copy_project(dest: Path, overrides: dict[str, Any] | None = None) -> Path:
    """Copy the project's code and pipeline files into `dest` and make it a git + DVC repo."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.exists():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    (dest / "eval").mkdir(exist_ok=True)
    (dest / "eval" / "questions-words.txt").write_text(ANALOGY)
    (dest / "eval" / "wordsim353.tsv").write_text(WORDSIM)
    set_params(dest, {**TINY_PARAMS, **(overrides or {})})
    git(dest, "init", "-q")
    subprocess.run([str(Path(sys.executable).parent / "dvc"), "init", "-q"], cwd=dest, check=True)
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "fixture project")
    return dest


@contextlib.contextmanager
def fixture_project(tmp_path: Path, overrides: dict[str, Any] | None = None) -> Iterator[Project]:
    """A project copy whose download stage fetches fixture zips (and tiny MNIST IDX files)
    from a loopback server."""
    zips_dir = tmp_path / "mirror"
    zips = build_fixtures(zips_dir)
    with serve_directory(zips_dir) as base_url:
        registry = fixture_registry(zips, base_url, tmp_path / "registry.yaml")
        root = copy_project(tmp_path / "project", overrides)
        env = dict(os.environ)
        env.update({
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "DATASET_REGISTRY": str(registry),
            "DATA_MIRROR": base_url,
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "PYTHONPATH": str(root),
        })
        yield Project(root, env)
