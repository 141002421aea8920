"""Words/second and analogy accuracy of distributed word2vec vs the single-process stage.

    .venv/bin/python benchmarks/distributed_scaling.py --root /tmp/distbench \
        [--epochs 1] [--repeats 3] [--runs single,sync1,sync2,async2] [--set word2vec.dims=100 ...]

`--root` is a project folder whose params.yaml points at a prepared corpus and vocabulary
(`<paths.prepared>/corpus.txt`, `<paths.vocab>/`, e.g. built with
`python -m tasks.{download,prepare,vocab} --params <root>/params.yaml` and
DATA_MIRROR=../shared/mirror/nltk). Each run writes its own outputs
(`paths.word2vec=data/bench-<run>`, `paths.metrics=metrics-bench/<run>`) and the table goes
to stdout and `benchmarks/results/distributed_scaling.json`: `runs` [{name, workers,
words_per_sec, efficiency, analogy_accuracy, wordsim353_spearman, bytes_per_1k_words}] are
MEDIANS over `--repeats` paired rounds (each round runs every configuration once, and a run's
efficiency is against the `single` of its own round, so a load spike hits both sides of the
ratio); `rounds` keeps every measurement, and `load_average` before and after (the machine is
shared: say so next to any figure). Every run starts fresh (its output folder is removed
and the distributed job gets a new id): a benchmark must not resume an earlier run.

bytes_per_1k_words is an UPPER BOUND, not a per-worker measurement: the growth of the
loopback interface's transmit counter (/proc/net/dev `lo`) during the run, divided by the
number of training processes and by thousands of words trained. Every other process on the
machine that talks over 127.0.0.1 (other engineers' tests, MLflow, Prefect) adds to it.

Runs: `single` = `python -m tasks.word2vec` (the stage itself); `sync1`, `sync2` =
MultiWorkerMirroredStrategy with 1 and 2 local workers; `async2` = 2 workers + 1 parameter
server. Words/second = corpus tokens x epochs / training seconds (the training
loop, without process start-up and evaluation); wall = the whole job. This is a report, not
a test: on a 2-core machine more processes only add gRPC and scheduling overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tasks.core.params import load_params  # noqa: E402
from tasks.core.stage import parse_overrides  # noqa: E402
from tasks.distributed import ClusterShape, launch, new_job_id  # noqa: E402

RUNS = {
    "single": None,
    "sync1": {"distributed.strategy": "sync", "distributed.workers": 1},
    "sync2": {"distributed.strategy": "sync", "distributed.workers": 2},
    "async2": {"distributed.strategy": "async", "distributed.workers": 2, "distributed.ps": 1},
}
KEYS = ("words_per_sec", "efficiency", "analogy_accuracy", "wordsim353_spearman", "train_seconds",
        "exchange_seconds",
        "bytes_per_1k_words")


def loopback_tx_bytes() -> int:
    """Bytes sent on the loopback interface since boot (/proc/net/dev, `lo` row)."""
    for row in Path("/proc/net/dev").read_text().splitlines():
        name, _, data = row.partition(":")
        if name.strip() == "lo":
            return int(data.split()[8])
    return 0


def run_one(root: Path, name: str, base: dict[str, Any]) -> dict[str, Any]:
    overrides = {**base, "paths.word2vec": f"data/bench-{name}",
                 "paths.metrics": f"metrics-bench/{name}", "distributed.backend": "local"}
    import shutil

    shutil.rmtree(root / f"data/bench-{name}", ignore_errors=True)  # never resume a run
    started, tx0 = time.perf_counter(), loopback_tx_bytes()
    if RUNS[name] is None:
        cmd = [sys.executable, "-m", "tasks.word2vec", "--params", str(root / "params.yaml")]
        for key, value in overrides.items():
            cmd += ["--set", f"{key}={json.dumps(value)}"]
        subprocess.run(cmd, cwd=REPO, check=True)
        metrics = json.loads((root / f"metrics-bench/{name}/word2vec.json").read_text())
    else:
        overrides.update(RUNS[name])
        cfg = load_params(root / "params.yaml", overrides)
        job = new_job_id(ClusterShape.from_config(cfg.distributed))
        metrics = launch(cfg, root / "params.yaml", overrides, job=job,
                         on_line=lambda line: print(line, flush=True)).metrics
    sent = loopback_tx_bytes() - tx0
    workers = (RUNS[name] or {}).get("distributed.workers", 1)
    words = metrics.get("words_per_sec", 0) * metrics.get("train_seconds", 0)
    metrics["workers"] = workers
    metrics["bytes_per_1k_words"] = (round(sent / workers / (words / 1000), 1)
                                     if RUNS[name] is not None and words else 0.0)
    metrics["wall_seconds_total"] = round(time.perf_counter() - started, 1)
    return metrics


def one_round(root: Path, names: list[str], base: dict[str, Any]) -> dict[str, dict]:
    """Every run once, in order; efficiency is against this round's own `single` (paired)."""
    results = {}
    for name in names:
        print(f"== {name}", flush=True)
        results[name] = run_one(root, name, base)
        results[name]["load_average_after"] = os.getloadavg()
    single = results.get("single", {}).get("words_per_sec")
    for metrics in results.values():
        metrics["efficiency"] = (round(metrics["words_per_sec"] / single, 3)
                                 if single else None)
    return results


def median_of(rounds: list[dict[str, dict]], name: str, key: str) -> float | None:
    values = [r[name].get(key) for r in rounds if r[name].get(key) is not None]
    return round(statistics.median(values), 4) if values else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1,
                        help="paired rounds (every run once per round); the table shows medians")
    parser.add_argument("--runs", default=",".join(RUNS))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{args.root.resolve()}/mlflow.db")
    base = {"word2vec.epochs": args.epochs, **parse_overrides(args.overrides)}
    names = args.runs.split(",")
    load_before = os.getloadavg()
    rounds = []
    for index in range(args.repeats):
        print(f"==== round {index + 1}/{args.repeats}", flush=True)
        rounds.append(one_round(args.root.resolve(), names, base))
    runs = [{"name": name, "workers": rounds[0][name]["workers"],
             **{key: median_of(rounds, name, key) for key in KEYS},
             "efficiency_per_round": [r[name].get("efficiency") for r in rounds]}
            for name in names]
    out = REPO / "benchmarks" / "results" / "distributed_scaling.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"base": base, "repeats": args.repeats, "load_average": {
        "before": load_before, "after": os.getloadavg()}, "runs": runs, "rounds": rounds},
        indent=1, default=str))
    print(f"medians of {args.repeats} paired round(s); load average before {load_before}, "
          f"after {os.getloadavg()}")
    print("| run | " + " | ".join(KEYS) + " | efficiency per round |")
    print("|---" * (len(KEYS) + 2) + "|")
    for run in runs:
        cells = [run.get(key) for key in KEYS]
        print(f"| {run['name']} | " + " | ".join("-" if c is None else f"{c:.4g}" for c in cells)
              + f" | {run['efficiency_per_round']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
