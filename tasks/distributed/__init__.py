"""Distributed word2vec training: one job of several TensorFlow tasks, on a chosen backend.

    from tasks.distributed import launch
    result = launch(cfg, params_file="params.yaml", overrides={"distributed.workers": 2})

Params section: `distributed` (strategy, backend, workers, ps, ... see params.yaml).
Modules: cluster (shapes, TF_CONFIG), launcher_local / kubernetes (backends), worker (the
task process: every worker runs the word2vec stage's own Trainer with a placement,
tasks/embeddings/placement.py for sync, parameter_servers.py for async), runtime (the job
folder), w2v (the word2vec data and stage outputs).
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


def resumable_job_id(cfg: Config, shape: ClusterShape) -> str:
    """The same DNS-1035 label for the same training: `w2v-sync-2w-<hash of what it trains>`.

    The hash covers the single-process stage's checkpoint fingerprint (word2vec params, seed,
    vocab and corpus md5, trainer version) and the job's step arithmetic (shape,
    exchange_every, push_every), so a re-run of a stopped or crashed local job finds
    its job folder and resumes from the last checkpoint, and any change starts a new job.
    """
    import hashlib

    from tasks.embeddings.training import fingerprint

    corpus = cfg.path("prepared") / "corpus.txt"
    vocab = cfg.path("vocab") / "vocab.npz"
    if not (corpus.is_file() and vocab.is_file()):
        return new_job_id(shape)  # nothing to resume from; the tasks report the missing input
    key = {"fingerprint": fingerprint(cfg, vocab, corpus), "shape": shape.tag,
           "exchange_every": cfg.distributed.exchange_every,
           "push_every": cfg.distributed.push_every}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    return f"w2v-{shape.tag}-{digest[:8]}"


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
    backend = cfg.distributed.backend
    # Local: the same job folder for the same training (a re-run resumes). Kubernetes: object
    # names unique per launch (a kept or half-deleted earlier job must not collide).
    job = job or (resumable_job_id(cfg, shape) if backend == "local" else new_job_id(shape))
    overrides = dict(overrides or {})
    on_line(f"[launcher] job {job}: {shape.tag} on {backend}")
    JobDir.of(cfg, job).result.unlink(missing_ok=True)  # an earlier run's: not this one's end
    if backend == "local":
        from tasks.distributed import loopback
        from tasks.distributed.launcher_local import LocalJob

        params = str(Path(params_file).resolve())
        command = [sys.executable, "-m", "tasks.distributed.worker",
                   *worker_args(job, params, overrides)]
        task_env = {**os.environ, **(env or {}), "DIST_BACKEND": "local"}
        # Servers on 127.0.0.1 only (TensorFlow itself always binds every interface).
        task_env["LD_PRELOAD"] = loopback.preload(
            cfg.resolve(cfg.distributed.shared_path) / ".loopback", task_env.get("LD_PRELOAD"))
        local = LocalJob(shape, command, cwd=cfg.root, env=task_env,
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
