"""The four Kim-CNN embedding variants side by side (Kim 2014, Table 2).

    make compare                     # = python -m tasks.compare --train: all four, then the table
    python -m tasks.compare          # the collector alone, over outputs that already exist

`--train` runs `python -m tasks.cnn` once per variant with `cnn.embedding_init=<variant>`,
`paths.cnn=<paths.cnn>-<variant>` and `paths.metrics=<paths.metrics>/compare/<variant>`, after
the main pipeline (`dvc repro`) has produced the splits, vocabulary and embeddings. The same
comparison as DVC experiments + MLflow: `python -m flows.sweep` (docs/orchestration.md).
Inputs: <paths.metrics>/compare/<variant>/cnn.json and <paths.cnn>-<variant>/model.json.
Outputs: <paths.metrics>/compare.md (markdown table), compare.png (test accuracy bars; error
bars = std over folds under the kfold protocol) and compare.json (stage_main's metrics).
MLflow: this run and the four variant runs share the tag `comparison` (a hash of the data and
params other than cnn.embedding_init), so `mlflow ui` can filter and compare them.
No params section of its own: the variants are cnn.embedding_init's four values.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tasks.classifier.model import VARIANTS
from tasks.core import tracking
from tasks.core.atomic import atomic_file
from tasks.core.errors import PipelineError
from tasks.core.params import PARAMS_FILE, Config, load_params
from tasks.core.stage import guarded, parse_overrides, stage_main

KIM_MR = {"rand": 76.1, "static": 81.0, "non-static": 81.5, "multichannel": 81.1}  # Table 2


def variant_paths(cfg: Config, variant: str) -> tuple[Path, Path]:
    """(<paths.cnn>-<variant>, <paths.metrics>/compare/<variant>), where `--train` writes."""
    cnn = cfg.path("cnn")
    return cnn.with_name(f"{cnn.name}-{variant}"), cfg.path("metrics") / "compare" / variant


def collect(cfg: Config) -> list[dict[str, Any]]:
    """One row per variant: its cnn.json metrics plus variant, comparison id and MLflow run."""
    rows = []
    for variant in VARIANTS:
        model_dir, metrics_dir = variant_paths(cfg, variant)
        files = [metrics_dir / "cnn.json", model_dir / "model.json"]
        missing = [str(f) for f in files if not f.exists()]
        if missing:
            raise PipelineError(f"variant {variant}: {missing[0]} not found "
                                "(run `make compare`)")
        metrics, spec = (json.loads(f.read_text()) for f in files)
        rows.append({**metrics, "variant": variant, "comparison": spec.get("comparison"),
                     "mlflow_run_id": spec.get("mlflow_run_id", ""),
                     "protocol": spec.get("protocol", "split")})
    ids = sorted({str(r["comparison"]) for r in rows})
    if len(ids) > 1:
        raise PipelineError(f"the variants were trained on different data or params "
                            f"(comparison ids {', '.join(ids)}); run `make compare`")
    return rows


def pct(value: float) -> str:
    return f"{100 * value:.2f}"


def table(rows: list[dict[str, Any]], dataset: str) -> str:
    kfold = "test_accuracy_std" in rows[0]
    head = ["variant", "test accuracy %" + (" (mean ± std)" if kfold else ""), "macro F1 %",
            "dev accuracy %", "best epoch", "epochs run", "s / epoch", "Kim (2014) MR %",
            "MLflow run"]
    lines = [f"# CNN embedding variants on `{dataset}`", "",
             f"Protocol `{rows[0]['protocol']}`"
             + (f" ({rows[0]['folds']} folds)" if kfold else "")
             + f"; comparison id `{rows[0]['comparison']}` (MLflow tag `comparison`).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        acc = pct(r["test_accuracy"]) + (f" ± {pct(r['test_accuracy_std'])}" if kfold else "")
        cells = [r["variant"], acc, pct(r["test_macro_f1"]), pct(r["dev_accuracy"]),
                 str(r["best_epoch"]), str(r["epochs_run"]), f"{r['seconds_per_epoch']:.1f}",
                 str(KIM_MR[r["variant"]]), f"`{r['mlflow_run_id']}`" if r["mlflow_run_id"] else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def chart(rows: list[dict[str, Any]], dataset: str, path: Path) -> None:
    """Test accuracy per variant; error bars when k-fold; Kim's MR numbers as markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = range(len(rows))
    acc = [100 * r["test_accuracy"] for r in rows]
    err = [100 * r["test_accuracy_std"] for r in rows] if "test_accuracy_std" in rows[0] else None
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.bar(x, acc, yerr=err, capsize=6 if err else 0, color="#4C72B0", label="this pipeline")
    ax.scatter(x, [KIM_MR[r["variant"]] for r in rows], marker="_", s=900, color="black",
               zorder=3, label="Kim (2014), MR")
    for i, a in enumerate(acc):
        ax.text(i, a / 2, f"{a:.1f}", ha="center", color="white")
    ax.set(xticks=list(x), xticklabels=[r["variant"] for r in rows], ylabel="test accuracy %",
           ylim=(0, 100), title=f"Kim CNN embedding variants on {dataset}")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncols=2, frameon=False)
    fig.tight_layout()
    with atomic_file(path, "wb") as handle:
        fig.savefig(handle, format="png")
    plt.close(fig)


def run(cfg: Config) -> dict[str, Any]:
    rows = collect(cfg)
    out = cfg.path("metrics")
    with atomic_file(out / "compare.md") as handle:
        handle.write(table(rows, cfg.data.labelled))
    chart(rows, cfg.data.labelled, out / "compare.png")
    tracking.set_tags({"comparison": rows[0]["comparison"], "protocol": rows[0]["protocol"]})
    tracking.log_artifact(out / "compare.md", "compare")
    tracking.log_artifact(out / "compare.png", "compare")
    keys = ("test_accuracy", "test_accuracy_std", "test_macro_f1", "dev_accuracy")
    metrics = {r["variant"]: {k: r[k] for k in keys if k in r} for r in rows}
    tracking.log_metrics({f"{v}.{k}": x for v, m in metrics.items() for k, x in m.items()})
    return metrics


def train_variants(params: str, overrides: list[str]) -> None:
    """Train every variant through the cnn stage's own CLI (one MLflow run each)."""
    cfg = load_params(params, parse_overrides(overrides))
    for variant in VARIANTS:
        model_dir, metrics_dir = variant_paths(cfg, variant)
        sets = [*overrides, f"cnn.embedding_init={variant}",
                f"paths.cnn={model_dir.relative_to(cfg.root)}",
                f"paths.metrics={metrics_dir.relative_to(cfg.root)}"]
        cmd = [sys.executable, "-m", "tasks.cnn", "--params", params]
        for pair in sets:
            cmd += ["--set", pair]
        if subprocess.run(cmd, check=False).returncode != 0:
            raise PipelineError(f"variant {variant}: the cnn stage failed (see its log above)")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--train" in argv and not {"-h", "--help"} & set(argv):   # --help never trains
        argv.remove("--train")
        known = argparse.ArgumentParser(add_help=False)
        known.add_argument("--params", default=PARAMS_FILE)
        known.add_argument("--set", dest="overrides", action="append", default=[])
        args, _ = known.parse_known_args(argv)
        code = guarded("compare", lambda: train_variants(args.params, args.overrides),
                       "--verbose" in argv)
        if code:
            return code
    return stage_main("compare", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
