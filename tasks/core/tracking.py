"""MLflow tracking for every stage: one run per stage execution, grouped per pipeline run.

Params section: `tracking` (experiment, uri, enabled).

- Store: `MLFLOW_TRACKING_URI` if set, else `tracking.uri`, else `sqlite:///<repo>/mlflow.db`
  with artifacts in `<repo>/mlartifacts`. `<repo>` is the project root even when DVC runs the
  stage in a temporary experiment copy (`.dvc/tmp/exps/...`), so all runs land in one store.
- Grouping: `PIPELINE_RUN_ID` becomes the `pipeline_run` tag of every stage run;
  `MLFLOW_PARENT_RUN_ID`, or the id in the file `PIPELINE_PARENT_RUN_FILE` names (the Prefect
  flow's handover, `parent_run_id`), nests the stage run under a parent run.
- Names: `stage_run_name` (`cnn-rand`, `vocab (vocab.min_count=3)`).
- Tags: `stage`, `git_commit`, `git_dirty`, `prefect_flow_run_id`, `dvc_exp_name`, `overrides`
  (`PIPELINE_OVERRIDES`: the flow's params overrides, `key=value,...` or `baseline`),
  `variant` (the CNN's cnn.embedding_init, set by the cnn stage; flows put the same value on
  the parent run), and `data_hashes` = {path: md5} (JSON) of every output DVC recorded in
  dvc.lock: one tag, so the ones people look for are not buried under a row per output on
  MLflow's run page (tags sort by name there).

Inside a stage, `log_metrics`, `log_params`, `log_artifact(s)` act on the active run and do
nothing when tracking is disabled, so stage code never checks. Keys go through `safe_key`:
a key made from user data (a class label, a data.custom file key) that MLflow would refuse
(emoji, `..`, too long) or that would collide once reduced to ASCII gets a stable hashed form.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import posixpath
import re
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from tasks.core.atomic import atomic_file
from tasks.core.hashing import text_md5
from tasks.core.params import Config

# libyaml's loader when PyYAML has it: the same safe types, ~10x faster. dvc.lock lists every
# code dependency of every stage (~2,000 nodes): 0.2 s with the pure-Python loader, read on
# every stage start and pipeline run.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

log = logging.getLogger(__name__)

_ACTIVE: dict[str, Any] = {"enabled": False}
DATA_HASHES_TAG = "data_hashes"
PARENT_FILE_ENV = "PIPELINE_PARENT_RUN_FILE"   # see parent_run_id
PARENT_WAIT_SECONDS = 120.0
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")  # `/` groups keys in MLflow


def safe_key(name: str) -> str:
    """`name` as a metric/param key MLflow and DVC accept, one key per distinct name.

    Plain ASCII names ([A-Za-z0-9_.-] segments joined by `/`, none of them `.` or `..`,
    <= 200 chars; e.g. `epoch/dev_accuracy`) are kept as they are;
    any other name becomes its ASCII slug + '-' + 8 hex digits of its md5, so "très bien" and
    "trés bien" (both slug `tr_s_bien`) stay two keys and an emoji label is a valid key."""
    if (_PLAIN_KEY.fullmatch(name) and posixpath.normpath(name) == name
            and ".." not in name.split("/") and len(name) <= 200):
        return name
    slug = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:120].replace("..", "_.") or "_"
    return f"{slug}-{text_md5(name)[:8]}"


def project_root(start: Path) -> Path:
    """The real project root, skipping DVC's temporary experiment copies."""
    parts = start.resolve().parts
    for i in range(len(parts) - 2):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return start.resolve()


def tracking_uri(cfg: Config) -> str:
    """Resolve the tracking URI (env > params > SQLite file in the project root)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or cfg.tracking.uri
    if uri:
        return uri
    return f"sqlite:///{project_root(cfg.root) / 'mlflow.db'}"


def configure(cfg: Config) -> str:
    """Point MLflow at the store and experiment; return the experiment id."""
    import mlflow

    uri = tracking_uri(cfg)
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    if experiment is not None:
        return experiment.experiment_id
    artifacts = None
    if uri.startswith("sqlite:///") and not os.environ.get("MLFLOW_TRACKING_URI"):
        artifacts = (project_root(cfg.root) / "mlartifacts").as_uri()
    try:
        return client.create_experiment(cfg.tracking.experiment, artifact_location=artifacts)
    except Exception:  # created concurrently by another stage process
        return client.get_experiment_by_name(cfg.tracking.experiment).experiment_id


def git_tags(root: Path) -> dict[str, str]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "HEAD") or os.environ.get("DVC_EXP_BASELINE_REV", "")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit or "unknown", "git_dirty": str(bool(dirty)).lower()}


def read_yaml(path: Path) -> Any:
    """The YAML file at `path` (safe types only; dvc.yaml, dvc.lock), or None if missing."""
    return yaml.load(path.read_text(), Loader=_YAML_LOADER) if path.exists() else None  # noqa: S506


def data_hashes(root: Path) -> dict[str, str]:
    """`<path>` -> md5 of every output DVC has locked in `<root>/dvc.lock` (the data this run
    builds on), sorted by path; {} without a readable dvc.lock."""
    lock = root / "dvc.lock"
    if not lock.exists():
        return {}
    try:
        stages = (read_yaml(lock) or {}).get("stages", {})
    except yaml.YAMLError:
        return {}
    hashes = {}
    for stage in stages.values():
        for out in stage.get("outs", []):
            if "md5" in out:
                hashes[out["path"]] = out["md5"]
    return dict(sorted(hashes.items()))


def data_hashes_tag(hashes: Mapping[str, str]) -> dict[str, str]:
    """The one `data_hashes` tag: {path: md5} as JSON (one row on MLflow's run page, where
    tags sort by name, instead of a `data.<path>` row per output before `git_commit`,
    `stage` and `variant`). Filter on it with `tags.data_hashes LIKE '%<md5>%'`."""
    return {DATA_HASHES_TAG: json.dumps(dict(hashes), sort_keys=True)} if hashes else {}


def run_tags(cfg: Config, stage: str) -> dict[str, str]:
    tags = {"stage": stage, **git_tags(cfg.root), **data_hashes_tag(data_hashes(cfg.root))}
    env_tags = {"pipeline_run": "PIPELINE_RUN_ID", "prefect_flow_run_id": "PREFECT_FLOW_RUN_ID",
                "dvc_exp_name": "DVC_EXP_NAME", "overrides": "PIPELINE_OVERRIDES"}
    for tag, var in env_tags.items():
        if os.environ.get(var):
            tags[tag] = os.environ[var]
    return tags


def stage_run_name(cfg: Config, stage: str) -> str:
    """What tells runs apart in MLflow's lists and chart legends: `cnn-rand` (the stage and,
    for the CNN, its embedding variant), plus the run's overrides when a flow or experiment
    set them: `vocab (vocab.min_count=3)`."""
    name = f"cnn-{cfg.cnn.embedding_init}" if stage == "cnn" else stage
    if stage == "cnn" and cfg.cnn.optimizer != "adam":   # Adam is the default; Kim's Adadelta
        name += f"-{cfg.cnn.optimizer}"                  # arm of make compare must stand apart
    overrides = os.environ.get("PIPELINE_OVERRIDES", "")
    if overrides and overrides != f"cnn.embedding_init={cfg.cnn.embedding_init}":
        name += f" ({overrides})"
    return name


def parent_run_id(timeout: float = PARENT_WAIT_SECONDS) -> str | None:
    """The run to nest this stage's run under: `MLFLOW_PARENT_RUN_ID`, else the id written
    into the file `PIPELINE_PARENT_RUN_FILE` names, else None.

    The file is how the pipeline flow hands the id over when it starts DVC before the parent
    run exists (the two start-ups overlap, flows/run.py): wait for it up to `timeout` s. An
    empty file means "no parent" (tracking disabled, or the flow could not open one)."""
    parent = os.environ.get("MLFLOW_PARENT_RUN_ID")
    if parent or not os.environ.get(PARENT_FILE_ENV):
        return parent or None
    path = Path(os.environ[PARENT_FILE_ENV])
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            log.warning("no MLflow parent run id in %s after %.0f s: run not nested",
                        path, timeout)
            return None
        time.sleep(0.05)
    return path.read_text(encoding="utf-8").strip() or None


def publish_parent_run_id(path: Path, run_id: str | None) -> None:
    """Write the file `parent_run_id` waits for (atomically: never read half-written)."""
    with atomic_file(path) as handle:
        handle.write(run_id or "")


@contextlib.contextmanager
def stage_run(cfg: Config, stage: str, run_name: str | None = None) -> Iterator[str | None]:
    """Open an MLflow run for `stage`, log its params section and tags; yield the run id.

    The run ends FAILED if the body raises. With `tracking.enabled: false` yields None.
    """
    if not cfg.tracking.enabled:
        yield None
        return
    import mlflow

    experiment_id = configure(cfg)
    parent = parent_run_id()
    tags = run_tags(cfg, stage)
    if parent:
        tags["mlflow.parentRunId"] = parent
    name = run_name or stage_run_name(cfg, stage)
    with mlflow.start_run(experiment_id=experiment_id, run_name=name, tags=tags) as run:
        _ACTIVE["enabled"] = True
        try:
            section = {k: v for k, v in cfg.flat().items()
                       if k.split(".")[0] in (stage, "seed", "data")}
            log_params(section)
            yield run.info.run_id
        finally:
            _ACTIVE["enabled"] = False


def log_params(params: Mapping[str, Any]) -> None:
    if _ACTIVE["enabled"]:
        import mlflow

        mlflow.log_params({safe_key(k): str(v)[:6000] for k, v in params.items()})


def log_metrics(metrics: Mapping[str, Any], step: int | None = None) -> None:
    """Log the numeric entries of `metrics` (others, e.g. nested dicts, are skipped)."""
    if _ACTIVE["enabled"]:
        import mlflow

        numeric = {safe_key(k): float(v) for k, v in metrics.items()
                   if isinstance(v, int | float) and not isinstance(v, bool)}
        if numeric:
            mlflow.log_metrics(numeric, step=step)


def log_artifact(path: Path | str, artifact_path: str | None = None) -> None:
    if _ACTIVE["enabled"] and Path(path).exists():
        import mlflow

        mlflow.log_artifact(str(path), artifact_path=artifact_path)


def log_artifacts(folder: Path | str, artifact_path: str | None = None) -> None:
    if _ACTIVE["enabled"] and Path(folder).is_dir():
        import mlflow

        mlflow.log_artifacts(str(folder), artifact_path=artifact_path)


def set_tags(tags: Mapping[str, Any]) -> None:
    if _ACTIVE["enabled"]:
        import mlflow

        mlflow.set_tags({k: str(v) for k, v in tags.items()})


def active() -> bool:
    """True inside `stage_run` with tracking enabled (e.g. to log a Keras model)."""
    return bool(_ACTIVE["enabled"])
