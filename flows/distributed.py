"""The `distributed` flow: the pipeline with the word2vec stage trained by a cluster.

    python -m flows.distributed --backend local --workers 2 --strategy sync
    python -m flows.distributed --backend local --workers 2 --ps 1 --strategy async
    python -m flows.distributed --backend kubernetes --workers 4 --ps 2 --strategy async \
        --image registry/w2v-cnn-pipeline:1.0 --dry-run     # prints the manifests (YAML)

Parameters: `backend`, `strategy`, `workers`, `ps`, `image` (each None = params.yaml's
`distributed` value), `overrides` (more `distributed.*` keys), `dry_run`, `root`, `keep`
(Kubernetes: leave the Jobs for inspection), `lock_timeout`. All go through the project's
params parser before any work.

Like flows/pipeline.py it drives DVC in the workspace: the stages before `word2vec` run as
`dvc repro --single-item <stage>` tasks; then the `train` task runs the distributed job
(tasks.distributed.launch), whose chief writes the word2vec stage's outputs and metrics;
`dvc commit --force word2vec` records them in dvc.lock as that stage's result (so a later
`dvc repro` does not train again); the stages after it (export, cnn) run through DVC as usual.
Overrides of other sections are refused: DVC would not see them (edit params.yaml instead).
The MLflow parent run (tags `cluster_shape`, `backend`, `overrides` = the `distributed.*`
overrides as `key=value,...` or `baseline`, and `variant` = the CNN's embedding variant when
dvc.yaml has the cnn stage) holds the stage runs of this flow run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows import stages as dvc
from flows.common import read_metrics
from flows.overrides import validate, variant_name
from flows.parent_run import ParentRun
from flows.pipeline import line_logger, stage_state
from tasks.core.errors import ParamsError
from tasks.core.params import Config
from tasks.distributed import ClusterShape, launch, new_job_id, worker_args
from tasks.distributed.cluster import local_cluster, tf_config

TRAIN_STAGE = "word2vec"


def distributed_overrides(backend: str | None = None, strategy: str | None = None,
                          workers: int | None = None, ps: int | None = None,
                          image: str | None = None,
                          overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The flow's parameters as `distributed.*` overrides; other keys raise ParamsError."""
    out = dict(overrides or {})
    named = {"backend": backend, "strategy": strategy, "workers": workers, "ps": ps,
             "image": image}
    out.update({f"distributed.{k}": v for k, v in named.items() if v is not None})
    foreign = sorted(k for k in out if not k.startswith("distributed."))
    if foreign:
        raise ParamsError(f"{foreign[0]}: the distributed flow only overrides distributed.* "
                          f"(DVC records params.yaml; edit it for other sections)")
    return out


def dry_run_text(cfg: Config, overrides: dict[str, Any]) -> str:
    """What would run: Kubernetes manifests (YAML), or the local tasks with their TF_CONFIG."""
    shape = ClusterShape.from_config(cfg.distributed)
    job = new_job_id(shape)
    if cfg.distributed.backend == "kubernetes":
        from tasks.distributed import kubernetes

        return kubernetes.to_yaml(kubernetes.render(
            cfg, job, worker_args(job, "params.yaml", overrides)))
    cluster = local_cluster(shape)
    lines = [f"# job {job}: {shape.tag} on 127.0.0.1 (ports are chosen again at launch)"]
    for role, index in shape.tasks():
        lines.append(f"TF_CONFIG='{tf_config(cluster, role, index)}' python -m "
                     f"tasks.distributed.worker {' '.join(worker_args(job, 'params.yaml', overrides))}")
    return "\n".join(lines)


@task(cache_policy=NO_CACHE, persist_result=False)
def repro(stage: str, root: str, env: dict[str, str], lock_timeout: float) -> Any:
    """One stage through `dvc repro --single-item` (skipped if DVC finds it up to date)."""
    logger = get_run_logger()
    return stage_state(dvc.repro_stage(root, stage, dvc.stage_env(env), line_logger(logger),
                                       lock_timeout))


@task(cache_policy=NO_CACHE, persist_result=False, task_run_name="train")
def train(root: str, overrides: dict[str, Any], env: dict[str, str], keep: bool) -> dict:
    """The distributed training job; returns the chief's metrics and the per-task exits."""
    logger = get_run_logger()
    cfg = validate(root, overrides)
    result = launch(cfg, cfg.root / "params.yaml", overrides, env, line_logger(logger),
                    keep=keep)
    return {"job": result.job, "shape": result.shape, "backend": result.backend,
            "restarts": result.restarts, "metrics": result.metrics,
            "exit_codes": {n: t["exit_codes"] for n, t in result.tasks.items()}}


@task(cache_policy=NO_CACHE, persist_result=False, task_run_name="record")
def record(root: str, env: dict[str, str]) -> str:
    """`dvc commit --force word2vec`: the job's outputs become the stage's locked outputs."""
    proc = subprocess.run(dvc.dvc_command("commit", "--force", TRAIN_STAGE), cwd=root,
                          env=dvc.stage_env(env), capture_output=True, text=True)
    if proc.returncode != 0:
        raise dvc.StageError(f"dvc commit {TRAIN_STAGE} failed: "
                             f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    return proc.stdout.strip()


@flow(name="distributed")
def distributed(backend: str | None = None, strategy: str | None = None,
                workers: int | None = None, ps: int | None = None, image: str | None = None,
                overrides: dict[str, Any] | None = None, dry_run: bool = False,
                root: str = ".", keep: bool = False,
                lock_timeout: float = 3600.0) -> dict[str, Any]:
    logger = get_run_logger()
    overrides = distributed_overrides(backend, strategy, workers, ps, image, overrides)
    cfg = validate(root, overrides)                     # ParamsError before any work
    shape = ClusterShape.from_config(cfg.distributed)
    if dry_run:
        text = dry_run_text(cfg, overrides)
        logger.info("dry run:\n%s", text)
        return {"dry_run": True, "shape": shape.tag, "text": text}
    stages = dvc.stage_names(cfg.root)
    if TRAIN_STAGE not in stages:
        raise dvc.StageError(f"dvc.yaml has no {TRAIN_STAGE!r} stage")
    cut = stages.index(TRAIN_STAGE)
    run_id = flow_run.id or "local"
    label = variant_name(overrides)  # the `overrides` tag, as on every flow's runs
    parent = ParentRun(cfg, f"distributed-{flow_run.name or run_id}",
                       {"prefect_flow_run_id": run_id, "pipeline_run": run_id,
                        "overrides": label, "cluster_shape": shape.tag,
                        "variant": cfg.cnn.embedding_init if "cnn" in stages else "",
                        "backend": cfg.distributed.backend}, params=overrides)
    env = {"PIPELINE_RUN_ID": run_id, "PREFECT_FLOW_RUN_ID": run_id,
           "PIPELINE_OVERRIDES": label, **parent.env()}
    results: dict[str, Any] = {}
    ok = False
    try:
        for stage in stages[:cut]:
            results[stage] = repro.with_options(name=stage, task_run_name=stage)(
                stage, str(cfg.root), env, lock_timeout)
        results[TRAIN_STAGE] = train(str(cfg.root), overrides, env, keep)
        record(str(cfg.root), env)
        for stage in stages[cut + 1:]:
            results[stage] = repro.with_options(name=stage, task_run_name=stage)(
                stage, str(cfg.root), env, lock_timeout)
        ok = True
    finally:
        metrics = read_metrics(cfg, stages) if ok else {}
        parent.finish(ok, {"stages": ",".join(results)}, metrics)
    return {"flow_run_id": run_id, "shape": shape.tag, "backend": cfg.distributed.backend,
            "mlflow_run_id": parent.run_id, "stages": results, "metrics": metrics}


def main(argv: list[str] | None = None) -> int:
    from tasks.core.stage import parse_overrides, report_error

    parser = argparse.ArgumentParser(prog="python -m flows.distributed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["local", "kubernetes"])
    parser.add_argument("--strategy", choices=["sync", "async"])
    parser.add_argument("--workers", type=int)
    parser.add_argument("--ps", type=int)
    parser.add_argument("--image")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="another distributed.* params key")
    parser.add_argument("--dry-run", action="store_true", help="print what would run, stop")
    parser.add_argument("--keep", action="store_true", help="kubernetes: keep the Jobs")
    parser.add_argument("--root", default=".")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    try:
        overrides = distributed_overrides(args.backend, args.strategy, args.workers, args.ps,
                                          args.image, parse_overrides(args.overrides))
        cfg = validate(args.root, overrides)
    except ParamsError as exc:
        return report_error("distributed", exc)
    if args.dry_run:  # nothing runs: no flow run, so no Prefect server (not even ephemeral)
        text = dry_run_text(cfg, overrides)
        shape = ClusterShape.from_config(cfg.distributed)
        print(json.dumps({"dry_run": True, "shape": shape.tag, "text": text}) if args.json
              else text)
        return 0
    try:
        summary = distributed(overrides=overrides, dry_run=args.dry_run, root=args.root,
                              keep=args.keep)
    except Exception as exc:  # the flow run is Failed; Prefect has logged the traceback
        return report_error("distributed", exc, 1)
    if args.dry_run and not args.json:
        print(summary["text"])
    else:
        print(json.dumps(summary, default=str, indent=None if args.json else 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
