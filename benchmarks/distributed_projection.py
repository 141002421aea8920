"""Project distributed word2vec words/s to 4, 16 and 64 workers on 10 and 100 Gb/s links.

    .venv/bin/python benchmarks/distributed_projection.py [--inputs inputs.json]

Writes benchmarks/results/distributed_projection.{json,png}. A back-of-the-envelope model, not
a simulation: every figure it starts from is a per-worker measurement on this 2-core box
(defaults below, taken from docs/distributed.md "Performance on this machine"; pass --inputs
with the same keys to use newer ones). One worker = one machine like this box.

Inputs (per worker):
- `single_words_per_sec` (R): the single-process stage (XLA, both cores) = the compute rate
  of a worker on a 2-core machine: every worker runs the stage's Trainer;
- `sync_words_per_exchange`, `async_words_per_exchange` (h): words one worker trains
  between two exchanges (`exchange_every` / `push_every` local rounds, from the benchmark's
  exchange counts);
- `model_bytes` (M): both [V, d] float32 tables; async sends them as float16 (M/2 each way);
- `sync_exchange_cpu_s`: one all-reduce of the dense tables between 2 loopback workers
  (serialisation and the reduction: it does not shrink with faster links);
- `async_worker_cpu_s`, `async_server_cpu_s`: CPU of one push + pull in the worker and in
  the parameter servers (together);
- `latency_s`: per message hop.

Placements modelled (B = link bandwidth in bytes/s, N workers):
- `sync` (periodic model averaging, placement.SyncWorkers): a ring all-reduce of both tables,
  2(N-1)/N x M per worker: t = h/R + c_sync + 2(N-1)/N M/B + 2(N-1) latency; every worker
  waits for the slowest, which the model ignores (it assumes identical machines).
- `async` (parameter_servers.AsyncWorkers, P = max(1, N/4) servers): a worker's cycle is
  t = h/R + c_w + M/B + 2 latency (M/2 pushed + M/2 pulled); the servers serve at most
  P / c_s exchanges per second on their CPU and P B / M on their links:
  words/s = min(N h / t, P h / c_s, P B h / M).

Where it stops being trustworthy: it projects words/s, not quality. Beyond 2 replicas in all
the merge scales updates down (placement.MERGE_WIDTH), and async staleness grows with N
(each pull brings N-1 others' updates): measured only up to 2 workers (4 replicas: slower
learning per word). The CPU costs are from one 2-core box; another CPU, or TensorFlow's gRPC
on real NICs, changes them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results"

# Measured on this box (docs/distributed.md, 2026-12-04 02:27 invocation: medians of 3 paired
# rounds on a quiet machine, 3 epochs, 100 dims, 29,903 words, 4,330,578 tokens; sync2 85
# exchanges at exchange_every 6, async2 63 at push_every 8): single 642,400 words/s;
# 12,991,734 words / (exchanges x 2 workers) per worker exchange; CPU costs from the
# isolated measurements described in tasks/embeddings/parameter_servers.py and placement.py.
DEFAULTS = {
    "single_words_per_sec": 642_400.0,
    "sync_words_per_exchange": 12_991_734 / (85 * 2),
    "async_words_per_exchange": 12_991_734 / (63 * 2),
    "model_bytes": 2 * 29_903 * 100 * 4.0,
    "sync_exchange_cpu_s": 0.110,
    "async_worker_cpu_s": 0.055,
    "async_server_cpu_s": 0.057,
    "latency_s": 50e-6,
    "source": "docs/distributed.md, benchmark of 2026-12-04 02:27 UTC (quiet machine, medians "
              "of 3 paired rounds) and isolated exchange measurements on an idle box",
}
WORKERS = (1, 2, 4, 8, 16, 32, 64)
LINKS_GBPS = (10, 100)


def project(inputs: dict, workers: int, gbps: float) -> dict[str, float]:
    """words/s of the whole job for each placement, `workers` machines, `gbps` links."""
    bw = gbps * 1e9 / 8
    n, lat, r = workers, inputs["latency_s"], inputs["single_words_per_sec"]
    m = inputs["model_bytes"]
    h = inputs["sync_words_per_exchange"]
    t_sync = h / r + inputs["sync_exchange_cpu_s"] + (2 * (n - 1) / n) * m / bw + 2 * (n - 1) * lat
    sync = n * h / t_sync if n > 1 else r   # one worker: no exchange at all
    h = inputs["async_words_per_exchange"]
    t_async = h / r + inputs["async_worker_cpu_s"] + m / bw + 2 * lat
    servers = max(1, n // 4)
    async_rate = min(n * h / t_async, servers * h / inputs["async_server_cpu_s"],
                     servers * bw * h / m)
    return {"sync_model_averaging": sync, "async_parameter_servers": async_rate,
            "ideal": n * r}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=Path, help="JSON with keys of DEFAULTS to override")
    args = parser.parse_args(argv)
    inputs = dict(DEFAULTS)
    if args.inputs:
        inputs.update(json.loads(args.inputs.read_text()))
    table = {f"{g}Gbps": {n: project(inputs, n, g) for n in WORKERS} for g in LINKS_GBPS}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "distributed_projection.json").write_text(
        json.dumps({"inputs": inputs, "projection": table}, indent=1))
    print("| link | workers | sync averaging | async PS | ideal |")
    print("|---|---|---|---|---|")
    for link, rows in table.items():
        for n in (4, 16, 64):
            r = rows[n]
            print(f"| {link} | {n} | {r['sync_model_averaging']:,.0f} | "
                  f"{r['async_parameter_servers']:,.0f} | {r['ideal']:,.0f} |")
    draw(table, OUT / "distributed_projection.png")
    return 0


def draw(table: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(table), figsize=(11, 4.2), sharey=True)
    labels = {"sync_model_averaging": "sync: all-reduce of the tables every exchange_every",
              "async_parameter_servers": "async: push + pull every push_every, N/4 servers",
              "ideal": "N x single process (ideal)"}
    for ax, (link, rows) in zip(axes, table.items(), strict=True):
        for key, label in labels.items():
            ax.plot(WORKERS, [rows[n][key] for n in WORKERS], marker="o",
                    linestyle="--" if key == "ideal" else "-", label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"{link} links")
        ax.set_xlabel("workers (one 2-core machine each)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("projected words/s of the job")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle("word2vec, 100 dims, 30k words: a model from one box's measurements")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
