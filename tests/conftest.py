"""Shared test set-up: every test runs with its own MLflow store and Prefect home.

Fixtures:
- `isolated_env` (autouse): MLFLOW_TRACKING_URI -> a SQLite file in the test's tmp dir,
  PREFECT_HOME -> a tmp dir, DATA_MIRROR unset, quiet TensorFlow logs.
- `make_cfg(root=None, **overrides)`: a validated `Config` from the repo's params.yaml with
  dotted overrides (`make_cfg(**{"vocab.min_count": 1})`), rooted at `root` (default tmp).

Hypothesis profiles (tests/test_reliability.py, docs/reliability.md): `ci` (default, what
`make test` runs: derandomized, i.e. a fixed seed, same cases every run) and `nightly`
(HYPOTHESIS_PROFILE=nightly: 10x the cases, random seed, failures printed as reproducible
blobs). Test-local `max_examples` values are multiplied by `EXAMPLES_SCALE`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import mlflow
import pytest
import yaml
from hypothesis import HealthCheck, settings

from tasks.core.params import Config, parse

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# XLA programs compiled by the suite (and its subprocesses) go to a cache of its own, shared
# by the session's processes, not the user's ~/.cache/w2v-cnn/xla.
os.environ.setdefault("PIPELINE_XLA_CACHE", tempfile.mkdtemp(prefix="pytest-xla-cache-"))

_HYPOTHESIS_COMMON = {"deadline": None, "database": None,
                      "suppress_health_check": [HealthCheck.too_slow,
                                                HealthCheck.function_scoped_fixture,
                                                HealthCheck.data_too_large]}
settings.register_profile("ci", derandomize=True, print_blob=True, **_HYPOTHESIS_COMMON)
settings.register_profile("nightly", derandomize=False, print_blob=True, **_HYPOTHESIS_COMMON)
HYPOTHESIS_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(HYPOTHESIS_PROFILE)
EXAMPLES_SCALE = 10 if HYPOTHESIS_PROFILE == "nightly" else 1


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # mlflow.set_tracking_uri() (called by tasks.core.tracking and by tests reading a shared store)
    # keeps a process-wide URI that wins over the environment: reset it to this test's store.
    mlflow.set_tracking_uri(uri)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    for var in ("DATA_MIRROR", "MLFLOW_PARENT_RUN_ID", "PIPELINE_PARENT_RUN_FILE", "PIPELINE_RUN_ID",
                "PREFECT_FLOW_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture
def repo_params() -> dict:
    """The repo's params.yaml as a plain mapping (a fresh copy per test)."""
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.fixture
def make_cfg(tmp_path: Path, repo_params: dict):
    def factory(root: Path | None = None, **overrides) -> Config:
        return parse(repo_params, root or tmp_path, overrides)

    return factory
