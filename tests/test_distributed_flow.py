"""The `distributed` Prefect flow end to end in a throwaway git + DVC project.

A real Prefect server (tests/flowtools.py), real DVC, a real one-worker sync job and the real
`export` stage: the flow runs the stages before word2vec through DVC, trains with the local
backend, records the job's outputs as the word2vec stage's (`dvc commit`), then runs export
through DVC, which reads them. Afterwards `dvc status` finds nothing to do: a later
`dvc repro` would not retrain.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml

from tasks.text import vocabulary as vocab_stage
from tests.flowtools import (
    prefect_api_fixture,  # noqa: F401 (the prefect_api fixture)
    sub_env,
    task_runs,
)

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]

DVC_YAML = {"stages": {
    "vocab": {"cmd": "python -m tasks.vocab",
              "deps": ["data/prepared/corpus.txt", "tasks/vocab.py"], "params": ["vocab"],
              "outs": ["data/vocab"], "metrics": [{"metrics/vocab.json": {"cache": False}}]},
    "word2vec": {"cmd": "python -m tasks.word2vec",
                 "deps": ["data/prepared/corpus.txt", "data/vocab", "tasks/word2vec.py",
                          "tasks/embeddings/model.py", "tasks/embeddings/inputs.py"],
                 "params": ["seed", "word2vec"],
                 "outs": [{"data/word2vec": {"persist": True}}],
                 "metrics": [{"metrics/word2vec.json": {"cache": False}}],
                 "plots": [{"metrics/word2vec_loss.json": {"cache": False}}]},
    "export": {"cmd": "python -m tasks.export",
               "deps": ["data/word2vec/embeddings.npy", "data/vocab", "tasks/export.py"],
               "params": ["export"], "outs": ["data/export"],
               "metrics": [{"metrics/export.json": {"cache": False}}]},
}}


def make_project(root: Path) -> Path:
    for name in ("tasks", "flows"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["word2vec"].update(dims=8, epochs=1, batch_size=128, checkpoint_every=50,
                              analogy_file="eval/questions-words.txt",
                              wordsim_file="eval/wordsim353.tsv", restrict_vocab=100)
    params["vocab"]["min_count"] = 1
    params["export"]["projector_words"] = 20
    params["distributed"].update(max_restarts=0, timeout=600.0)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(40)]
    lines = [" ".join(rng.choice(words, rng.integers(4, 10))) for _ in range(600)]
    (root / "data" / "prepared").mkdir(parents=True)
    (root / "data" / "prepared" / "corpus.txt").write_text("\n".join(lines) + "\n")
    (root / "eval").mkdir()
    (root / "eval" / "questions-words.txt").write_text(": s\nw1 w2 w3 w4\n")
    (root / "eval" / "wordsim353.tsv").write_text("# a\tb\ts\nw1\tw2\t5\nw3\tw4\t2\n")
    env = sub_env()
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"],
                ["git", "add", "-A"],
                ["git", "-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=root, check=True, env=env, capture_output=True)
    return root


def test_flow_trains_records_and_export_consumes(tmp_path, prefect_api):
    root = make_project(tmp_path / "proj")
    env = sub_env(PREFECT_API_URL=prefect_api.api_url)
    proc = subprocess.run([sys.executable, "-m", "flows.distributed", "--backend", "local",
                           "--strategy", "sync", "--workers", "1", "--json"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["shape"] == "sync-1w" and summary["backend"] == "local"
    train = summary["stages"]["word2vec"]
    assert train["exit_codes"] == {"worker:0": [0]} and train["restarts"] == 0
    assert summary["stages"]["export"]["status"] == "ran"

    # The job's outputs are the word2vec stage's, locked by DVC; export consumed them.
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    outs = {o["path"]: o for o in lock["word2vec"]["outs"]}
    assert set(outs) == {"data/word2vec", "metrics/word2vec.json", "metrics/word2vec_loss.json"}
    assert outs["data/word2vec"]["md5"].endswith(".dir")
    model = json.loads((root / "data" / "word2vec" / "model.json").read_text())
    assert model["trainer"] == "distributed" and model["cluster_shape"] == "sync-1w"
    vocab = vocab_stage.load_vocab(root / "data" / "vocab")
    header = (root / "data" / "export" / "vectors.txt").read_text().splitlines()[0]
    assert header == f"{vocab.size - 2} 8"
    status = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=root,
                            env=env, capture_output=True, text=True, check=True)
    assert json.loads(status.stdout or "{}") == {}  # nothing left to (re)run

    names = [r.name for r in task_runs(summary["flow_run_id"])]
    assert names == ["vocab", "train", "record", "export"]
    runs = mlflow.search_runs(experiment_names=["w2v-cnn"], output_format="list")
    parent = next(r for r in runs if r.info.run_id == summary["mlflow_run_id"])
    assert parent.data.tags["cluster_shape"] == "sync-1w"
    assert "distributed.workers=1" in parent.data.tags["overrides"]  # the flow's parameters
    assert "variant" not in parent.data.tags  # no cnn stage in this dvc.yaml
    children = {r.data.tags["stage"]: r for r in runs
                if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert set(children) >= {"vocab", "word2vec", "export"}
    assert children["word2vec"].data.tags["cluster_shape"] == "sync-1w"


def test_bad_flow_parameters_fail_before_any_work(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "flows.distributed", "--strategy", "async",
                           "--ps", "0"], cwd=REPO, env=sub_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2
    assert "error: distributed: distributed.ps: strategy async needs" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "flows.distributed", "--set",
                           "word2vec.dims=3"], cwd=REPO, env=sub_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and "only overrides distributed" in proc.stderr


def test_cli_dry_run_prints_valid_manifests_and_starts_nothing(tmp_path):
    import kubernetes_validate

    # No Prefect server, and none may be needed: an API URL nothing listens on, and no
    # ephemeral server either (a dry run is not a flow run).
    env = sub_env(PREFECT_API_URL="http://127.0.0.1:9/api", PREFECT_HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "flows.distributed", "--backend", "kubernetes",
                           "--workers", "4", "--ps", "2", "--strategy", "async", "--image",
                           "registry.example.com/w2v:2", "--dry-run"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    docs = list(yaml.safe_load_all(proc.stdout))
    assert [d["kind"] for d in docs] == ["Service", "NetworkPolicy", "Job", "Job"]  # ps, worker
    for doc in docs:
        kubernetes_validate.validate(doc, "1.33.0", strict=True)
    worker = next(d for d in docs if d["metadata"]["name"].endswith("-worker"))
    pod = worker["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "registry.example.com/w2v:2"
    assert worker["spec"]["completions"] == 4
    assert not list(tmp_path.glob("**/*.db"))  # no Prefect database was created


@pytest.mark.timeout(2400)  # two flow runs, each importing TensorFlow in five processes
def test_sigterm_stops_every_task_and_a_rerun_resumes(tmp_path, prefect_api):
    """SIGTERM to `python -m flows.distributed` (what a Prefect cancellation or a worker
    shutdown sends) while the job trains: every task process is gone within seconds, the last
    checkpoint loads, and the same command afterwards resumes from it and finishes."""
    import os
    import re
    import signal
    import threading
    import time

    import tensorflow as tf

    root = make_project(tmp_path / "proj")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["word2vec"].update(epochs=60, checkpoint_every=20)  # long enough to be stopped
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = sub_env(PREFECT_API_URL=prefect_api.api_url)
    command = [sys.executable, "-m", "flows.distributed", "--backend", "local", "--strategy",
               "async", "--workers", "2", "--ps", "1", "--json"]
    proc = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    pids: dict[str, int] = {}
    lines: list[str] = []

    def drain() -> None:
        for line in proc.stdout:
            lines.append(line)
            started = re.search(r"\[launcher\] started (\S+) pid (\d+)", line)
            if started:
                pids[started.group(1)] = int(started.group(2))

    threading.Thread(target=drain, daemon=True).start()
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:  # until a first checkpoint
            markers = list((root / "data" / "distributed").glob("w2v-*/checkpoints/checkpoint"))
            if markers and len(pids) == 3:
                break
            time.sleep(0.1)
        ckpt_dirs = [m.parent for m in markers]
        assert proc.poll() is None and len(ckpt_dirs) == 1, "".join(lines[-30:])
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        proc.wait(timeout=60)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [n for n, p in pids.items() if _alive(p)] == []
        assert time.monotonic() - sent < 20
        assert proc.returncode != 0
    finally:  # a failed check must not leave the flow (and its job) running
        if proc.poll() is None:
            proc.kill()
        for pid in pids.values():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)

    latest = tf.train.latest_checkpoint(str(ckpt_dirs[0]))
    assert latest is not None
    stopped_at = int(latest.rsplit("-", 1)[1])
    reader = tf.train.load_checkpoint(latest)  # usable: every variable reads back
    assert any("input_embeddings" in name for name in reader.get_variable_to_shape_map())

    again = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True,
                           timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = re.search(r"resuming at step (\d+)", again.stdout + again.stderr)
    assert resumed and int(resumed.group(1)) >= stopped_at > 0
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert summary["stages"]["word2vec"]["metrics"]["resumed_from_step"] >= stopped_at


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()
