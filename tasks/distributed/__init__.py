"""Distributed word2vec training: one job of several TensorFlow tasks, on a chosen backend.

    from tasks.distributed import launch
    result = launch(cfg, params_file="params.yaml", overrides={"distributed.workers": 2})

Params section: `distributed` (strategy, backend, workers, ps, ... see params.yaml).
Modules: cluster (shapes, TF_CONFIG), launcher_local / kubernetes (backends), worker (the
task process), train_sync / train_async (the two strategies), runtime (job folder, plan,
checkpoints), shards (async input files), w2v (the word2vec model and stage outputs).
The outputs are those of the single-process `word2vec` stage (docs/distributed.md).
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.core.errors import PipelineError
from tasks.core.params import Config
from tasks.distributed.cluster import ClusterShape
from tasks.distributed.runtime import JobDir

LineSink = Callable[[str], None]


@dataclass
class LaunchResult:
    ok: bool
    reason: str
    job: str
    backend: str
    shape: str
    restarts: int = 0
    tasks: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


def new_job_id(shape: ClusterShape) -> str:
    """A DNS-1035 label, unique per launch: `w2v-sync-2w-1a2b3c4d`."""
    return f"w2v-{shape.tag}-{uuid.uuid4().hex[:8]}"


def worker_args(job: str, params_file: str, overrides: Mapping[str, Any]) -> list[str]:
    args = ["--job", job, "--params", params_file]
    for key, value in overrides.items():
        args += ["--set", f"{key}={json.dumps(value)}"]  # JSON is YAML: parsed back exactly
    return args


def launch(cfg: Config, params_file: str | Path = "params.yaml",
           overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
           on_line: LineSink = print, job: str | None = None,
           keep: bool = False) -> LaunchResult:
    """Run one distributed training job on `cfg.distributed.backend`; wait for its end.

    `cfg` must be the validated params (with `overrides` applied); the tasks re-read
    `params_file` with the same overrides. Raises PipelineError if the job fails.
    """
    shape = ClusterShape.from_config(cfg.distributed)
    job = job or new_job_id(shape)
    backend = cfg.distributed.backend
    overrides = dict(overrides or {})
    on_line(f"[launcher] job {job}: {shape.tag} on {backend}")
    if backend == "local":
        from tasks.distributed.launcher_local import LocalJob

        params = str(Path(params_file).resolve())
        command = [sys.executable, "-m", "tasks.distributed.worker",
                   *worker_args(job, params, overrides)]
        local = LocalJob(shape, command, cwd=cfg.root, env={**os.environ, **(env or {}),
                                                            "DIST_BACKEND": "local"},
                         timeout=cfg.distributed.timeout,
                         max_restarts=cfg.distributed.max_restarts, on_line=on_line)
        outcome = local.run()
        result = LaunchResult(outcome.ok, outcome.reason, job, backend, shape.tag,
                              outcome.restarts, outcome.tasks)
    else:
        from tasks.distributed import kubernetes

        # In the pod the project is the working directory: params relative to it.
        args = worker_args(job, Path(params_file).name, overrides)
        ok, reason = kubernetes.run_job(cfg, job, args, env, on_line, keep=keep)
        result = LaunchResult(ok, reason, job, backend, shape.tag)
    path = JobDir.of(cfg, job).result
    if result.ok and path.is_file():
        result.metrics = json.loads(path.read_text())
    if not result.ok:
        codes = "; ".join(f"{name} exit {t['exit_codes']}" for name, t in result.tasks.items())
        raise PipelineError(f"distributed job {job} failed: {result.reason}"
                            + (f" ({codes})" if codes else ""))
    return result
