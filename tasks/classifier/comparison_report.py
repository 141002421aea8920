"""The comparison as people read it: markdown table, JSON and a PNG of every run.

    table(results, plan, meta)          -> markdown (compare.md)
    as_json(results, records, plan, meta) -> dict (compare.json; every run kept)
    chart(records, results, title, path) -> PNG: one dot per run, the mean and its 95 % interval
                                           per arm, Kim's MR figure as a black bar

Figures are percentages with two decimals; intervals are Student-t 95 % intervals over runs
(tasks.classifier.stats). No params section.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tasks.classifier.comparison import BASELINE, KIM_MR, ArmResult, Plan
from tasks.classifier.stats import Summary
from tasks.core.atomic import atomic_file


def pct(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.2f}"


def interval(s: Summary) -> str:
    return "n/a (1 run)" if s.n < 2 else f"[{pct(s.low)}, {pct(s.high)}]"


def table(results: list[ArmResult], plan: Plan, meta: dict[str, Any]) -> str:
    """Two tables: per arm (mean, std, 95 % CI of accuracy and F1) and per arm vs rand."""
    n = results[0].accuracy.n
    cap = sum(r.cap_hits for r in results)
    lines = [f"# Kim CNN variants on `{meta['dataset']}`, {n} paired run(s) per arm", "",
             f"Protocol: {plan.describe()}"
             + ("" if n == len(plan.keys) else f" planned, {n} finished for every arm")
             + f"; seeds {', '.join(map(str, plan.seeds))}. Comparison id "
             f"`{meta['comparison']}` (MLflow tag `comparison`; parent run "
             f"`{meta.get('parent_run_id') or '-'}`). Intervals: Student t, 95 %, over runs. "
             f"Epoch cap `cnn.epochs` = {meta['epochs']}, patience {meta['patience']}: the cap "
             f"ended {cap} of {n * len(results)} runs (early stopping the others). "
             f"Wall time {meta['wall_minutes']:.1f} min{meta.get('load', '')}.", "",
             "| arm | test accuracy % mean | std | 95 % CI | macro F1 % mean | std | 95 % CI "
             "| best epoch (mean) | epochs run (mean) | cap hit | s / epoch | Kim (2014) MR % |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        a, f = r.accuracy, r.macro_f1
        lines.append(f"| {r.arm} | {pct(a.mean)} | {pct(a.std)} | {interval(a)} | "
                     f"{pct(f.mean)} | {pct(f.std)} | {interval(f)} | {r.best_epoch:.1f} | "
                     f"{r.epochs_run:.1f} | {r.cap_hits}/{a.n} | {r.seconds_per_epoch:.1f} | "
                     f"{KIM_MR.get(r.arm, '-')} |")
    lines += ["", f"Paired differences to `{BASELINE}` (same seed and fold; points of %):", "",
              "| arm | accuracy diff mean | 95 % CI | excludes 0 | macro F1 diff mean | 95 % CI "
              "| excludes 0 |", "|---|---|---|---|---|---|---|"]
    for r in results:
        if r.vs_baseline is None:
            continue
        d, g = r.vs_baseline, r.vs_baseline_f1
        lines.append(f"| {r.arm} - {BASELINE} | {sign(d.mean)} | {interval(d)} | "
                     f"{yes(d)} | {sign(g.mean)} | {interval(g)} | {yes(g)} |")
    return "\n".join(lines) + "\n"


def sign(value: float) -> str:
    return f"{100 * value:+.2f}"


def yes(d) -> str:
    if d.n < 2:
        return "n/a"
    return "yes" if d.excludes_zero else "no"


def as_json(results: list[ArmResult], records: list[dict[str, Any]], plan: Plan,
            meta: dict[str, Any]) -> dict[str, Any]:
    """Everything the table shows plus every run (seed, fold, scores, MLflow run id)."""
    arms = {}
    for r in results:
        arms[r.arm] = {"accuracy": r.accuracy.as_dict(), "macro_f1": r.macro_f1.as_dict(),
                       "epochs_run_mean": r.epochs_run, "best_epoch_mean": r.best_epoch,
                       "epoch_cap_hits": r.cap_hits, "seconds_per_epoch": r.seconds_per_epoch}
        if r.vs_baseline is not None:
            arms[r.arm][f"accuracy_minus_{BASELINE}"] = r.vs_baseline.as_dict()
            arms[r.arm][f"macro_f1_minus_{BASELINE}"] = r.vs_baseline_f1.as_dict()
    return {**meta, "protocol": plan.protocol, "seeds": list(plan.seeds),
            "folds": list(plan.folds), "runs_per_arm": results[0].accuracy.n,
            "interval": "student-t 95%", "arms": arms, "runs": records}


def chart(records: list[dict[str, Any]], results: list[ArmResult], title: str,
          path: Path) -> None:
    """Test accuracy: a dot per run (jittered), mean ± 95 % interval per arm, Kim as a bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=100)
    for i, r in enumerate(results):
        values = [100 * x["test_accuracy"] for x in records if x["arm"] == r.arm]
        offsets = [(k - (len(values) - 1) / 2) * 0.25 / max(len(values), 1)
                   for k in range(len(values))]
        ax.scatter([i - 0.15 + o for o in offsets], values, s=14, color="#4C72B0", alpha=0.7,
                   label="one run" if i == 0 else None)
        a = r.accuracy
        err = None if a.n < 2 else [[100 * (a.mean - a.low)], [100 * (a.high - a.mean)]]
        ax.errorbar([i + 0.15], [100 * a.mean], yerr=err, fmt="o", color="#C44E52",
                    capsize=5, label="mean, 95 % t-interval" if i == 0 else None)
        if r.arm in KIM_MR:
            ax.scatter([i], [KIM_MR[r.arm]], marker="_", s=500, color="black",
                       label="Kim (2014), MR" if i == 0 else None)
    ax.set(xticks=range(len(results)), ylabel="test accuracy %", title=title)
    ax.set_xticklabels([r.arm.replace(" (", "\n(") for r in results])
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=3, frameon=False)
    fig.tight_layout()
    with atomic_file(path, "wb") as handle:
        fig.savefig(handle, format="png")
    plt.close(fig)
