"""Project distributed word2vec words/s to 4, 16 and 64 workers on 10 and 100 Gb/s links.

    .venv/bin/python benchmarks/distributed_projection.py [--inputs inputs.json]

Writes benchmarks/results/distributed_projection.{json,png}. A back-of-the-envelope model, not
a simulation: every figure it starts from is a per-worker measurement on this 2-core box
(defaults below, taken from docs/distributed.md "Performance on this machine"; pass --inputs
with the same keys to use newer ones). One worker = one machine like this box.

Inputs (per worker):
- `single_words_per_sec`: the single-process stage (XLA, both cores) = the compute rate of a
  worker that trains locally with the stage's compiled call;
- `sparse_compute_words_per_sec`: the current distributed step without its all-reduce;
- `words_per_step`: words one worker covers in one step;
- `bytes_per_step`: bytes of its own sparse gradient rows per step (rows x dims x 4, both
  tables);
- `model_bytes`: both [V, d] float32 tables (what model averaging all-reduces);
- `latency_s`: per message hop.

Placements modelled (t = time per step or per exchange, B = link bandwidth in bytes/s):
- `sync, sparse all-gather every step` (today's MirroredStrategy loop): a ring all-gather of
  IndexedSlices sends (N-1) x bytes_per_step per worker:
  t = w/R_sparse + (N-1) b/B + 2(N-1) latency.
- `sync, model averaging every H words` (local steps with the stage's compiled call, then a
  ring all-reduce of both tables, 2(N-1)/N x model_bytes per worker): t = H/R_single +
  2(N-1)/N M/B + 2(N-1) latency. Trade-off: replicas drift apart between exchanges (local SGD);
  H bounds the drift, and the bigger H the less communication.
- `async, parameter servers` (P = max(1, N/4) servers): each worker pulls its rows and pushes
  their gradients, 2b per step on its link; the servers' links carry all of it:
  words/s = min(N w / (w/R_sparse + 2b/B), P B w / (2 b)).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results"

# Measured on this box (docs/distributed.md, quiet machine, 3 epochs, 100 dims, 30k words):
# single 399,009 words/s; sync-2w 46 ms/step with the all-reduce, 15 ms without it,
# ~14k rows x 100 dims x 4 B = 5.7 MB per worker per step; sync-2w 16,510 words/s x 46 ms
# = ~760 words per global step = ~380 per worker.
DEFAULTS = {
    "single_words_per_sec": 399_009.0,
    "sparse_compute_words_per_sec": 380 / 0.015,
    "words_per_step": 380.0,
    "bytes_per_step": 5.7e6,
    "model_bytes": 2 * 29_903 * 100 * 4.0,
    "latency_s": 50e-6,
    "average_every_words": 200_000.0,
    "source": "docs/distributed.md, quiet-machine figures of 2026-11-26 (load < 1)",
}
WORKERS = (1, 2, 4, 8, 16, 32, 64)
LINKS_GBPS = (10, 100)


def project(inputs: dict, workers: int, gbps: float) -> dict[str, float]:
    """words/s of the whole job for each placement, `workers` machines, `gbps` links."""
    bw = gbps * 1e9 / 8
    w, b = inputs["words_per_step"], inputs["bytes_per_step"]
    r_sparse, r_single = inputs["sparse_compute_words_per_sec"], inputs["single_words_per_sec"]
    lat, n = inputs["latency_s"], workers
    t_sparse = w / r_sparse + (n - 1) * b / bw + 2 * (n - 1) * lat
    h, m = inputs["average_every_words"], inputs["model_bytes"]
    t_avg = h / r_single + (2 * (n - 1) / n) * m / bw + 2 * (n - 1) * lat
    ps = max(1, n // 4)
    async_rate = min(n * w / (w / r_sparse + 2 * b / bw), ps * bw * w / (2 * b))
    return {"sync_sparse_allgather": n * w / t_sparse,
            "sync_model_averaging": n * h / t_avg,
            "async_parameter_servers": async_rate,
            "ideal": n * r_single}


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
    print("| link | workers | sync all-gather | sync averaging | async PS | ideal |")
    print("|---|---|---|---|---|---|")
    for link, rows in table.items():
        for n in (4, 16, 64):
            r = rows[n]
            print(f"| {link} | {n} | {r['sync_sparse_allgather']:,.0f} | "
                  f"{r['sync_model_averaging']:,.0f} | {r['async_parameter_servers']:,.0f} | "
                  f"{r['ideal']:,.0f} |")
    draw(table, OUT / "distributed_projection.png")
    return 0


def draw(table: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(table), figsize=(11, 4.2), sharey=True)
    labels = {"sync_sparse_allgather": "sync, sparse all-gather every step (today)",
              "sync_model_averaging": "sync, model averaging every 200k words",
              "async_parameter_servers": "async, N/4 parameter servers",
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
