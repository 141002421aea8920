"""Real distributed word2vec jobs on loopback: TensorFlow gRPC, the real model, tiny data.

Each test runs a whole job through `tasks.distributed.launch` (local backend) and kills one
task with SIGKILL after the first checkpoint:
- sync, 2 workers (MultiWorkerMirroredStrategy around the stage's own Trainer): the launcher
  restarts the job, which resumes from the checkpoint and finishes; workers end identical and
  trained exactly the stage's steps; with 1 worker the job's vectors are the stage's, bit for
  bit (one trainer);
- async, 2 workers + 1 ps (the stage's Trainer on each worker, tables on the parameter
  server): the chief trains on while the launcher restarts the killed worker alone, which
  resumes at its last exchange.
The outputs must be the word2vec stage's: embeddings.npy [V, d] + model.json, metrics, and
one MLflow run from the chief with the cluster tags. gRPC logs connection errors while
servers go down; they are expected.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml

from tasks.core.params import Config, load_params
from tasks.distributed import LaunchResult, launch
from tasks.distributed.runtime import JobDir
from tasks.text import vocabulary as vocab_stage

pytestmark = pytest.mark.slow

TINY = {"word2vec.dims": 8, "word2vec.epochs": 2, "word2vec.batch_size": 128,
        "word2vec.checkpoint_every": 20, "word2vec.learning_rate": 0.05,
        "word2vec.analogy_file": "eval/questions-words.txt",
        "word2vec.wordsim_file": "eval/wordsim353.tsv", "word2vec.restrict_vocab": 100,
        "distributed.max_restarts": 1,
        "distributed.timeout": 600.0}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A folder with params.yaml, a prepared corpus (5 topics x 12 words) and its vocabulary."""
    root = tmp_path_factory.mktemp("dist")
    rng = np.random.default_rng(0)
    topics = [[f"t{t}w{i}" for i in range(12)] for t in range(5)]
    lines = [" ".join(topic[j] for j in rng.integers(0, 12, rng.integers(4, 12)))
             for topic in (topics[k] for k in rng.integers(0, 5, 1500))]
    (root / "data" / "prepared").mkdir(parents=True)
    (root / "data" / "prepared" / "corpus.txt").write_text("\n".join(lines) + "\n")
    table = vocab_stage.build(Counter(" ".join(lines).split()), 1, 0, 1e-3, 0.75)
    (root / "data" / "vocab").mkdir(parents=True)
    vocab_stage.write(table, root / "data" / "vocab")
    (root / "eval").mkdir()
    (root / "eval" / "questions-words.txt").write_text(": topics\nt0w1 t0w2 t1w1 t1w2\n")
    (root / "eval" / "wordsim353.tsv").write_text("# w1\tw2\tscore\nt0w1\tt0w2\t9\nt0w1\tt1w1\t1\n")
    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    for dotted, value in TINY.items():
        section, key = dotted.split(".")
        params[section][key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def run_with_kill(root: Path, overrides: dict, job: str, victim: str) -> tuple[
        LaunchResult, Config, list[str]]:
    """Launch the job; SIGKILL `victim` (e.g. "worker:1") once the first checkpoint exists."""
    cfg = load_params(root / "params.yaml", overrides)
    lines: list[str] = []
    pids: dict[str, int] = {}
    killed = threading.Event()

    def on_line(line: str) -> None:
        lines.append(line)
        started = re.match(r"\[launcher\] started (\S+) pid (\d+)", line)
        if started:
            pids[started.group(1)] = int(started.group(2))

    def killer() -> None:
        marker = JobDir.of(cfg, job).checkpoints / "checkpoint"
        deadline = time.monotonic() + 500
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        if marker.exists():
            os.kill(pids[victim], signal.SIGKILL)
            killed.set()

    threading.Thread(target=killer, daemon=True).start()
    result = launch(cfg, root / "params.yaml", overrides, on_line=on_line, job=job)
    assert killed.is_set(), "the job ended before its first checkpoint"
    return result, cfg, lines


def check_outputs(cfg: Config, result: LaunchResult) -> np.ndarray:
    from tasks.embeddings.model import Word2VecModel, Word2VecSpec

    out = cfg.path("word2vec")
    emb = np.load(out / "embeddings.npy")
    vocab = vocab_stage.load_vocab(cfg.path("vocab"))
    assert emb.shape == (vocab.size, 8) and emb.dtype == np.float32
    assert np.isfinite(emb).all()
    spec_json = json.loads((out / "model.json").read_text())
    assert spec_json["dims"] == 8 and spec_json["vocab_size"] == vocab.size
    spec = Word2VecSpec(vocab_size=vocab.size, dims=8, seed=cfg.seed)
    init = Word2VecModel(spec, vocab.noise_prob).input_embeddings.numpy()
    moved = np.abs(emb - init).max(axis=1)
    assert (moved[2:] > 1e-3).mean() > 0.9        # real words were trained
    metrics = json.loads((cfg.path("metrics") / "word2vec.json").read_text())
    assert metrics == result.metrics and metrics["steps"] > 0
    assert np.isfinite(metrics["final_loss"]) and metrics["words_per_sec"] > 0
    # The single-process stage's metric names, evaluated on the tiny analogy/wordsim files.
    assert metrics["analogy_total"] == 1 and "wordsim353_spearman" in metrics
    losses = json.loads((cfg.path("metrics") / "word2vec_loss.json").read_text())
    assert [h["epoch"] for h in losses] == [1, 2]
    assert (out / "tensorboard" / "projector_config.pbtxt").is_file()
    assert (out / "checkpoints" / "distributed" / "checkpoint").is_file()
    return emb


def chief_run(tags: dict, chief_starts: int) -> mlflow.entities.Run:
    """The one finished MLflow run; a chief killed with the job leaves a failed run."""
    runs = mlflow.search_runs(experiment_names=["w2v-cnn"], output_format="list")
    # A chief killed (under load) before it opened its run leaves none: at most one run per
    # chief start, never one from a worker.
    assert 1 <= len(runs) <= chief_starts, "only the chief logs to MLflow"
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert len(finished) == 1
    run = finished[0]
    assert {k: run.data.tags[k] for k in tags} == tags
    assert run.data.tags["stage"] == "word2vec"
    assert run.data.metrics["steps"] > 0 and run.data.metrics["words_per_sec"] > 0
    return run


def stage_metrics(root: Path) -> dict:
    """The single-process word2vec stage on the same project (its own output folders)."""
    import subprocess
    import sys

    sets = {"paths.word2vec": "data/stage-word2vec", "paths.metrics": "metrics-stage",
            "tracking.enabled": "false"}
    args = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    metrics = root / "metrics-stage" / "word2vec.json"
    if not metrics.is_file():
        subprocess.run([sys.executable, "-m", "tasks.word2vec", "--params",
                        str(root / "params.yaml"), *args], check=True,
                       cwd=Path(__file__).resolve().parents[1])
    return json.loads(metrics.read_text())


def test_one_sync_worker_trains_the_stages_vectors(project):
    overrides = {"distributed.strategy": "sync", "distributed.workers": 1}
    cfg = load_params(project / "params.yaml", overrides)
    result = launch(cfg, project / "params.yaml", overrides, on_line=lambda _: None,
                    job="w2v-test-sync1")
    assert result.ok
    emb = check_outputs(cfg, result)
    stage = stage_metrics(project)
    assert result.metrics["steps"] == stage["steps"]
    assert np.array_equal(emb, np.load(project / "data/stage-word2vec/embeddings.npy"))


def test_sync_job_survives_a_killed_worker_and_resumes(project):
    overrides = {"distributed.strategy": "sync", "distributed.workers": 2}
    result, cfg, lines = run_with_kill(project, overrides, "w2v-test-sync", "worker:1")
    assert result.ok and result.restarts == 1
    assert result.tasks["worker:1"]["exit_codes"][0] == -signal.SIGKILL
    assert result.tasks["worker:0"]["starts"] == 2  # the whole job was restarted
    check_outputs(cfg, result)
    metrics = result.metrics
    assert 0 < metrics["resumed_from_step"] < metrics["steps"]  # continued, not restarted
    assert any(f"resuming at step {metrics['resumed_from_step']} (" in line for line in lines)
    # the stage's input pipeline and calls, shared out: the same number of steps
    assert metrics["steps"] == stage_metrics(project)["steps"]
    replicas = [json.loads(p.read_text()) for p in
                sorted((JobDir.of(cfg, "w2v-test-sync").root / "replicas").glob("*.json"))]
    assert len(replicas) == 2 and replicas[0] == replicas[1]  # identical replicas
    run = chief_run({"cluster_shape": "sync-2w", "strategy": "sync", "backend": "local"}, 2)
    assert run.data.params["distributed.workers"] == "2"


def test_async_job_carries_on_when_a_worker_is_killed(project):
    overrides = {"distributed.strategy": "async", "distributed.workers": 2,
                 "distributed.ps": 1}
    result, cfg, lines = run_with_kill(project, overrides, "w2v-test-async", "worker:1")
    assert result.ok and result.restarts == 1
    worker = result.tasks["worker:1"]
    assert worker["exit_codes"][0] == -signal.SIGKILL and worker["starts"] == 2
    # No job restart: the chief and the parameter server ran once.
    assert result.tasks["worker:0"]["starts"] == 1 and result.tasks["ps:0"]["starts"] == 1
    assert result.tasks["worker:0"]["exit_codes"] == [0]
    assert any("[launcher] restarting worker:1 alone" in line for line in lines)
    # the restarted worker took its position from the parameter server: where its last
    # exchange left it (step 0 if it was killed before its first one; which one depends on
    # timing, tests/test_embeddings_parameter_servers.py checks the position itself)
    starts = [re.search(r"\[worker:1\].*(resuming|starting) at step (\d+)", line)
              for line in lines]
    starts = [(m.group(1), int(m.group(2))) for m in starts if m]
    assert len(starts) == 2 and starts[0] == ("starting", 0)
    assert starts[1][0] == ("resuming" if starts[1][1] else "starting")
    check_outputs(cfg, result)
    metrics = result.metrics
    # the stage's rounds, shared out: the same step count; a fresh start for the chief
    assert metrics["steps"] == stage_metrics(project)["steps"]
    assert metrics["resumed_from_step"] == 0 and metrics["ps"] == 1
    assert metrics["exchanges"] > 0
    chief_run({"cluster_shape": "async-2w-1ps", "strategy": "async", "backend": "local"}, 1)
