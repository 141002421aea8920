"""Scale benchmark: prepare -> vocab -> word2vec (1 epoch) at ~4M, ~25M and ~100M tokens.

    .venv/bin/python benchmarks/scale.py                         # 4M (the real corpus), 25M, 100M
    .venv/bin/python benchmarks/scale.py --tokens 0 25e6         # 0 = the source corpus as is

It measures COST, not embedding quality: a corpus of T tokens is built from the real prepared
corpus (`--source`, default <paths.prepared>/corpus.txt) as ceil(T / source tokens) copies,
each with its sentences in a different seeded order (the last copy cut at T tokens), written as
a raw `plain_text` dataset (registered through DATASET_REGISTRY) so that prepare reads and
cleans it like any raw corpus. The labelled dataset is a small `data.custom` class_files pair
(1000 lines of the source): the labelled half of prepare stays constant-size on purpose.

Each stage runs as its own child process (`python -m tasks.<stage> --params <work>/params.yaml`,
tracking off, word2vec.epochs 1, everything else from params.yaml); wall time comes from
perf_counter around the child, peak RSS from os.wait4's rusage of that child (ru_maxrss).
word2vec's seconds include TF start-up and its epoch-end evaluation (a fixed cost); its own
`train_seconds` metric is recorded beside it.

Output: benchmarks/results/scale.json (`rows`: [{tokens, stage, seconds, peak_rss_bytes,
...}], plus load averages) and benchmarks/results/scale.png (log-log time and memory vs tokens).
The working folder (`--workdir`, default a temporary one) is deleted per size unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STAGES = ("prepare", "vocab", "word2vec")
DATASET = "scaled_corpus"
LABELLED_LINES = 500   # per class of the constant-size labelled dataset


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def build_corpus(lines: list[str], tokens_per_line: np.ndarray, target: int, folder: Path,
                 seed: int) -> int:
    """Write copies of `lines` (one sentence each), each shuffled by seed + copy, into
    folder/part-NNN.txt until `target` tokens; returns the tokens written."""
    folder.mkdir(parents=True, exist_ok=True)
    total, copy = 0, 0
    while total < target:
        order = np.random.default_rng([seed, copy]).permutation(len(lines))
        room = target - total
        cum = np.cumsum(tokens_per_line[order])
        if cum[-1] > room:                       # the last copy is cut at the target
            order = order[: int(np.searchsorted(cum, room)) + 1]
        with open(folder / f"part-{copy:03d}.txt", "w", encoding="utf-8") as out:
            out.writelines(lines[i] for i in order)
        total += int(tokens_per_line[order].sum())
        copy += 1
    return total


def setup(work: Path, source_lines: list[str], tokens_per_line: np.ndarray, target: int,
          params_file: Path, seed: int) -> tuple[Path, dict[str, str], int]:
    """The working folder for one size: raw dataset, labelled files, params, registry."""
    tokens = build_corpus(source_lines, tokens_per_line, target, work / "data/raw" / DATASET,
                          seed)
    per_class = min(LABELLED_LINES, len(source_lines) // 2)
    for k, label in enumerate(("pos", "neg")):
        part = source_lines[k * per_class:(k + 1) * per_class]
        (work / "data/custom/labelled").mkdir(parents=True, exist_ok=True)
        (work / "data/custom/labelled" / f"{label}.txt").write_text("".join(part), encoding="utf-8")
    params = yaml.safe_load(params_file.read_text(encoding="utf-8"))
    params["data"] = {"corpus": [DATASET], "labelled": "scaled_labelled",
                      "custom": {"scaled_labelled": {"format": "class_files", "files": {
                          "pos": "data/custom/labelled/pos.txt", "neg": "data/custom/labelled/neg.txt"}}}}
    params["tracking"]["enabled"] = False
    params["word2vec"]["epochs"] = 1
    for key in ("analogy_file", "wordsim_file"):     # relative to the repo, not to `work`
        params["word2vec"][key] = str((params_file.parent / params["word2vec"][key]).resolve())
    work_params = work / "params.yaml"
    work_params.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    # The registry entry only names the reader: the raw folder exists, nothing is downloaded.
    registry = work / "registry.yaml"
    registry.write_text(yaml.safe_dump({DATASET: {
        "url": "file:///nonexistent/scaled_corpus.zip", "sha256": "0" * 64,
        "reader": "plain_text"}}), encoding="utf-8")
    env = {**os.environ, "DATASET_REGISTRY": str(registry), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return work_params, env, tokens


def run_stage(stage: str, work_params: Path, env: dict[str, str], log: Path) -> dict[str, Any]:
    """One stage as a child process: wall seconds and that child's peak RSS (os.wait4)."""
    cmd = [sys.executable, "-m", f"tasks.{stage}", "--params", str(work_params)]
    before = load()
    t0 = time.perf_counter()
    with open(log, "a", encoding="utf-8") as out:
        child = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - t0
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"error: {stage} failed (exit {child.returncode}); see {log}")
    return {"seconds": round(seconds, 2), "peak_rss_bytes": int(usage.ru_maxrss) * 1024,
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
            "loadavg_before": before, "loadavg_after": load()}


def stage_metrics(work: Path, stage: str) -> dict[str, Any]:
    path = work / "metrics" / f"{stage}.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    keep = {"prepare": ("corpus_tokens",), "vocab": ("corpus_tokens", "vocab_size"),
            "word2vec": ("train_seconds", "words_per_sec")}[stage]
    return {k: data[k] for k in keep if k in data}


def plot(rows: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for stage in STAGES:
        mine = sorted((r for r in rows if r["stage"] == stage), key=lambda r: r["tokens"])
        x = [r["tokens"] for r in mine]
        axes[0].plot(x, [r["seconds"] for r in mine], "o-", label=stage)
        axes[1].plot(x, [r["peak_rss_bytes"] / 2**30 for r in mine], "o-", label=stage)
    if rows:
        lo = min(r["tokens"] for r in rows)
        hi = max(r["tokens"] for r in rows)
        first = min((r for r in rows if r["stage"] == "word2vec"), key=lambda r: r["tokens"],
                    default=None)
        if first and hi > lo:
            rate = first["seconds"] / first["tokens"]
            axes[0].plot([lo, hi], [rate * lo, rate * hi], "k:", label="linear (word2vec)")
    axes[1].axhline(2.5e9 / 2**30, color="r", ls="--", label="2.5 GB target")
    for ax, ylabel in zip(axes, ("wall seconds", "peak RSS (GiB)"), strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("corpus tokens")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    peak_load = max((max(r.get("loadavg_after", [0.0])[:1]) for r in rows), default=0.0)
    fig.suptitle(f"prepare -> vocab -> word2vec (1 epoch), {os.cpu_count()} cores "
                 f"(1-min load average up to {peak_load:.1f})")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per stage and size: wall and CPU seconds per token relative to the smallest size
    (target <= 1.15 at 100M) and peak RSS in GB (target <= 2.5). CPU seconds are reported
    beside wall time because other jobs on a shared machine inflate wall time unevenly."""
    out: dict[str, Any] = {}
    for stage in STAGES:
        mine = sorted((r for r in rows if r["stage"] == stage), key=lambda r: r["tokens"])
        if not mine:
            continue
        wall0 = mine[0]["seconds"] / mine[0]["tokens"]
        cpu0 = mine[0]["cpu_seconds"] / mine[0]["tokens"]
        out[stage] = {str(r["tokens"]): {
            "wall_per_token_vs_smallest": round(r["seconds"] / r["tokens"] / wall0, 3),
            "cpu_per_token_vs_smallest": round(r["cpu_seconds"] / r["tokens"] / cpu0, 3),
            "peak_rss_gb": round(r["peak_rss_bytes"] / 1e9, 3)} for r in mine}
    return out


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """tokens | stage | seconds | s per M tokens | CPU-s per M tokens | peak RSS (docs table)."""
    lines = ["| tokens | stage | seconds | s per M tokens | CPU-s per M tokens | peak RSS |",
             "|---:|---|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: (r["tokens"], STAGES.index(r["stage"]))):
        lines.append(f"| {r['tokens']:,} | {r['stage']} | {r['seconds']:.1f} | "
                     f"{r['seconds_per_m_tokens']:.2f} | "
                     f"{r['cpu_seconds'] / (r['tokens'] / 1e6):.2f} | "
                     f"{r['peak_rss_bytes'] / 2**30:.2f} GiB |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from tasks.core.params import load_params

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", default=str(REPO / "params.yaml"))
    parser.add_argument("--source", help="prepared corpus (default <paths.prepared>/corpus.txt)")
    parser.add_argument("--tokens", nargs="+", type=float, default=[0, 25e6, 100e6],
                        help="target sizes; 0 = the source corpus itself (one copy)")
    parser.add_argument("--workdir", help="where the corpora are built (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep each size's working folder")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "scale.json"))
    parser.add_argument("--replot", action="store_true",
                        help="only recompute the summary and the PNG of an existing --out")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.replot:
        report = json.loads(out.read_text())
        report["summary"] = summarise(report["rows"])
        out.write_text(json.dumps(report, indent=2) + "\n")
        plot(report["rows"], out.with_suffix(".png"))
        print(markdown_table(report["rows"]))
        return 0
    cfg = load_params(args.params)
    source = Path(args.source) if args.source else cfg.path("prepared") / "corpus.txt"
    if not source.is_file():
        raise SystemExit(f"error: {source} not found (run the prepare stage or pass --source)")
    lines = [line for line in source.read_text(encoding="utf-8").splitlines(keepends=True)
             if line.strip()]
    per_line = np.array([len(line.split()) for line in lines], np.int64)
    out.parent.mkdir(parents=True, exist_ok=True)
    base = Path(args.workdir or tempfile.mkdtemp(prefix="w2v-scale-"))
    report: dict[str, Any] = {"source": str(source), "source_tokens": int(per_line.sum()),
                              "cpus": os.cpu_count(), "loadavg_start": load(), "rows": []}
    for target in args.tokens:
        want = int(per_line.sum()) if target <= 0 else int(target)
        work = base / f"t{want}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        t0 = time.perf_counter()
        work_params, env, tokens = setup(work, lines, per_line, want, Path(args.params),
                                         cfg.seed)
        print(f"{tokens:,} tokens: corpus built in {time.perf_counter() - t0:.1f} s "
              f"(load {load()})", flush=True)
        for stage in STAGES:
            row = {"tokens": tokens, "stage": stage,
                   **run_stage(stage, work_params, env, work / "stages.log"),
                   **stage_metrics(work, stage)}
            row["seconds_per_m_tokens"] = round(row["seconds"] / (tokens / 1e6), 3)
            report["rows"].append(row)
            print(json.dumps(row), flush=True)
            # written after every stage: a long run that is stopped keeps what it measured
            report["summary"] = summarise(report["rows"])
            report["loadavg_end"] = load()
            out.write_text(json.dumps(report, indent=2) + "\n")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if not args.workdir and not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    plot(report["rows"], out.with_suffix(".png"))
    print(markdown_table(report["rows"]))
    print(f"-> {out}, {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
