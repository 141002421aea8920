"""The process every task of a distributed job runs: `python -m tasks.distributed.worker`.

    TF_CONFIG=... python -m tasks.distributed.worker --job JOB [--params params.yaml] [--set k=v]

Params: every section the word2vec stage reads, plus `distributed`.
Role (from TF_CONFIG, or in a Kubernetes pod from TF_CLUSTER_SPEC + TF_TASK_TYPE +
JOB_COMPLETION_INDEX):
- async `ps`: start a tf.distribute.Server (it holds the tables) and serve until the launcher
  stops it;
- `worker`: the word2vec stage's Trainer on its share of the calls, exchanging updates with
  the others: sync over MultiWorkerMirroredStrategy (tasks/embeddings/placement.py), async
  through the parameter servers (tasks/embeddings/parameter_servers.py).
The chief (worker 0) alone opens the MLflow run (stage `word2vec`, tags
cluster_shape, strategy, backend, job), evaluates, and writes the word2vec stage's outputs
(<paths.word2vec>/embeddings.npy + model.json, tensorboard/ with the projector, and the job's
checkpoints and summaries under checkpoints/distributed/ and tensorboard/distributed/),
<paths.metrics>/word2vec.json and word2vec_loss.json, with the single-process stage's names
and formats (tasks/word2vec.py), so export and cnn consume them unchanged; it also copies the
metrics to <job>/result.json for the launcher. The other workers exit after the chief has published.
Exit codes: 0 done, 2 expected failure (bad params/data: `error: ...`), 1 crash.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

from tasks.core import tracking
from tasks.core.atomic import write_json
from tasks.core.params import PARAMS_FILE, Config, load_params
from tasks.core.stage import (
    STAGE_ERRORS,
    metrics_path,
    parse_overrides,
    report_error,
    setup_logging,
)
from tasks.distributed import w2v
from tasks.distributed.cluster import Task, current_task, tf_config_from_pod_env
from tasks.distributed.runtime import JobDir

log = logging.getLogger("tasks.distributed")
PUBLISH_WAIT = 900.0  # seconds a worker waits for the chief's outputs before exiting


def exit_with_launcher(poll: float = 1.0) -> None:
    """Local backend: end this task when the launching process is gone (a daemon thread).

    The launcher already asks the kernel for SIGKILL on its death (PR_SET_PDEATHSIG), but that
    is tied to the launching *thread* and to Linux; this check of the parent pid is the
    portable backstop, so no task trains on after its launcher was killed.
    """
    import threading

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        log.error("the launcher (pid %d) is gone: stopping", parent)
        os._exit(1)

    threading.Thread(target=watch, name="launcher-watch", daemon=True).start()


def serve(task: Task) -> None:
    """Run this parameter server until the process is stopped (it holds the async tables)."""
    import tensorflow as tf

    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    server = tf.distribute.Server(resolver.cluster_spec(), job_name=task.type,
                                  task_index=task.index, protocol="grpc", start=True)
    log.info("%s: serving at %s", task.name, task.cluster[task.type][task.index])
    server.join()


def placement_for(cfg: Config, task: Task) -> Any:
    """SyncWorkers (an all-reduce over MultiWorkerMirroredStrategy) or AsyncWorkers (push
    and pull through the parameter servers) for this worker (tasks/embeddings/)."""
    shape, dist = task.shape, cfg.distributed
    if shape.strategy == "async":
        from tasks.embeddings.parameter_servers import AsyncWorkers

        return AsyncWorkers(task.cluster["ps"], task.index, shape.workers, dist.push_every,
                            cfg.word2vec.threads, dist.timeout)
    import tensorflow as tf

    from tasks.embeddings.placement import SyncWorkers

    return SyncWorkers(tf.distribute.MultiWorkerMirroredStrategy(), task.index, shape.workers,
                       dist.exchange_every, cfg.word2vec.threads)


def run_trainer(cfg: Config, job: JobDir, task: Task, data: w2v.TrainingData) -> dict[str, Any]:
    """The word2vec stage's own Trainer on this worker's share of every round, with the
    strategy's placement. The chief checkpoints into the job folder; every worker starts
    from the chief's state."""
    from tasks.embeddings.replicas import configure_runtime
    from tasks.embeddings.training import Trainer, fingerprint

    configure_runtime()   # before the strategy's first TF op, as the stage does
    placement = placement_for(cfg, task)
    corpus, vocab = cfg.path("prepared") / "corpus.txt", cfg.path("vocab") / "vocab.npz"
    trainer = Trainer(cfg, data.spec, data.vocab, data.ids, data.starts, job.root,
                      fingerprint(cfg, vocab, corpus), data.evaluator(), placement)
    result = trainer.run()
    seconds = result["train_seconds"]
    # Every worker's digest: sync workers are identical after the last exchange.
    write_json(job.root / "replicas" / f"{task.type}-{task.index}.json",
               {"step": result["steps"], "sha256": w2v.digest(trainer.model)})
    return {**{k: v for k, v in result.items() if k != "run_words"},
            "words_per_sec": round(result["run_words"] / seconds, 1) if seconds > 0 else 0.0,
            "exchange_every": placement.rounds_per_exchange, "exchanges": placement.exchanges,
            # time in the exchanges (sync: waits for slower workers included)
            "exchange_seconds": round(placement.exchange_seconds, 3),
            "model_obj": trainer.model}


def train_and_publish(cfg: Config, job: JobDir, task: Task) -> dict[str, Any]:
    """Train this task's part; the chief also evaluates and writes the stage's outputs."""
    started = time.perf_counter()
    data = w2v.TrainingData.load(cfg)
    result = run_trainer(cfg, job, task, data)
    model = result.pop("model_obj")
    if not task.is_chief:
        # Exit after the chief: leaving first would take this task out of the chief's
        # coordination service while it still evaluates and writes the outputs.
        # Bounded: if the chief dies while publishing, the launcher (or Kubernetes) restarts.
        deadline = time.monotonic() + min(cfg.distributed.timeout, PUBLISH_WAIT)
        while not job.result.is_file() and time.monotonic() < deadline:
            time.sleep(0.5)
        return result
    history = result.pop("history", [])
    published = w2v.publish(cfg, data, model, job, {**result, "history": history},
                            task.shape.tag)
    metrics = {**published, **result, "workers": task.shape.workers, "ps": task.shape.ps}
    tracking.set_tags({"resumed_from_step": result["resumed_from_step"]})
    metrics["wall_seconds"] = round(time.perf_counter() - started, 3)
    tracking.log_metrics(metrics)
    write_json(metrics_path(cfg, "word2vec"), metrics)
    tracking.log_artifact(metrics_path(cfg, "word2vec"), "metrics")
    job.write_result(metrics)
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.distributed.worker")
    parser.add_argument("--job", required=True, help="job id: folder under distributed.shared_path")
    parser.add_argument("--params", default=PARAMS_FILE)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    setup_logging()
    for noisy in ("absl", "tensorflow"):  # checkpoint and retracing chatter from every task
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        if "TF_CONFIG" not in os.environ:  # a Kubernetes pod: TensorFlow reads TF_CONFIG
            os.environ["TF_CONFIG"] = tf_config_from_pod_env(os.environ)
        task = current_task()
        cfg = load_params(args.params, parse_overrides(args.overrides))
        job = JobDir.of(cfg, args.job)
        backend = os.environ.get("DIST_BACKEND", cfg.distributed.backend)
        if backend == "local":
            exit_with_launcher()
        if task.shape.is_server_only(task.type):
            serve(task)
            return 0
        if not task.is_chief:
            train_and_publish(cfg, job, task)
            return 0
        tags = {"cluster_shape": task.shape.tag, "strategy": task.shape.strategy,
                "backend": backend, "distributed_job": args.job, "trainer": "distributed"}
        with tracking.stage_run(cfg, "word2vec", run_name=f"word2vec-{task.shape.tag}"):
            tracking.set_tags(tags)
            tracking.log_params({k: v for k, v in cfg.flat().items()
                                 if k.startswith("distributed.")})
            train_and_publish(cfg, job, task)
    except STAGE_ERRORS as exc:
        return report_error("word2vec (distributed)", exc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
