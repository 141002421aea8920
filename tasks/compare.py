"""Kim (2014) Table 2 with error bars: every CNN arm over the same seeds and folds, paired.

    make compare                          # = python -m tasks.compare --train (MR, default protocol)
    python -m tasks.compare --train --full              # Kim's 10-fold cross-validation
    python -m tasks.compare --train --seeds 10          # R = 10 seeds x the split
    python -m tasks.compare --train --dataset my_reviews  # a registry name or data.custom key
    python -m tasks.compare               # the collector alone, over runs that already exist

Arms and runs: tasks.classifier.comparison (four embedding variants with Adam, non-static with
Adadelta; default R = 5 seeds x the train/dev/test split, `--full` = prepare.folds folds).
`--train` runs `python -m tasks.cnn` once per (arm, seed, fold), each an MLflow child run of
this command's run (params `seed`, `cnn.fold`, ...), after the main pipeline (`make run`) has
produced the splits, vocabulary and embeddings. `--dataset D` (other than data.labelled) first
runs the prepare stage for D into data/compare/<D>/prepared; the CNN vocabulary and
embeddings stay the pipeline's, so words of D outside `data.corpus` map to <unk>.
Outputs in <paths.metrics>: compare.md (table), compare.png (one dot per run, mean and 95 %
t-interval per arm), compare.json (all figures and every run); `compare-<D>.*` for another
dataset; `--full` writes `compare[-<D>]-kfold.*` beside them. The MLflow parent run holds
the three. Same comparison under Prefect: flows/sweep.py. No params section of its own.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.classifier import comparison, comparison_report
from tasks.core import tracking
from tasks.core.atomic import atomic_file, write_json
from tasks.core.errors import PipelineError
from tasks.core.params import PARAMS_FILE, Config, load_params
from tasks.core.stage import guarded, parse_overrides, setup_logging


@dataclass(frozen=True)
class Options:
    train: bool = False
    seeds: int | None = None          # None: comparison.DEFAULT_SEEDS (1 under --full)
    full: bool = False
    dataset: str | None = None        # None: data.labelled
    params: str = PARAMS_FILE
    overrides: tuple[str, ...] = ()


def output_stem(cfg: Config, dataset: str, full: bool = False) -> str:
    """compare[-<dataset>][-kfold]: the default protocol and --full never overwrite each other."""
    stem = "compare" if dataset == cfg.data.labelled else f"compare-{comparison.slug(dataset)}"
    return f"{stem}-kfold" if full else stem


def prepare_dataset(cfg: Config, options: Options, dataset: str) -> list[str]:
    """The `--set` pairs pointing the cnn runs at `dataset`'s splits (prepared here if it is
    not data.labelled, whose splits the pipeline made)."""
    if dataset == cfg.data.labelled:
        return []
    if dataset not in cfg.data.custom:
        from tasks.core.catalog import registry

        if dataset not in registry():
            raise PipelineError(f"--dataset {dataset}: neither a registry name nor a "
                                "data.custom key")
    folder = f"data/compare/{comparison.slug(dataset)}"
    sets = [f"data.labelled={dataset}", f"paths.prepared={folder}/prepared"]
    if options.train:
        stage(options, "prepare", [*sets, f"paths.metrics={folder}/prepare-metrics"], {})
    return sets


def stage(options: Options, name: str, sets: list[str], env: dict[str, str]) -> None:
    """`python -m tasks.<name>` with the command's params file and overrides plus `sets`."""
    cmd = [sys.executable, "-m", f"tasks.{name}", "--params", options.params]
    for pair in [*options.overrides, *sets]:
        cmd += ["--set", pair]
    if subprocess.run(cmd, env={**os.environ, **env}, check=False).returncode != 0:
        raise PipelineError(f"{' '.join(sets[:4])}: the {name} stage failed (see its log above)")


def train(cfg: Config, options: Options, plan: comparison.Plan, dataset: str,
          data_sets: list[str], parent: str | None) -> None:
    """Every (seed, fold) for every arm, seed-major; each a child run of `parent`."""
    env = {"MLFLOW_PARENT_RUN_ID": parent} if parent else {}
    for seed, fold in plan.keys:
        for arm in comparison.arms():
            print(f"compare: {arm}, seed {seed}, {comparison.fold_label(fold)}", file=sys.stderr)
            sets = comparison.run_overrides(cfg, plan, dataset, arm, seed, fold)
            stage(options, "cnn", [*data_sets, *sets], env)


def run(cfg: Config, options: Options = Options(), parent: str | None = None) -> dict[str, Any]:
    """Train (with options.train) and summarise; write <stem>.md/.png/.json; return metrics."""
    started, load = time.perf_counter(), os.getloadavg()[0]
    dataset = options.dataset or cfg.data.labelled
    plan = comparison.plan(cfg, options.seeds, options.full)
    data_sets = prepare_dataset(cfg, options, dataset)
    if options.train:
        train(cfg, options, plan, dataset, data_sets, parent)
    records = comparison.collect(cfg, plan, dataset)
    results = comparison.analyse(records)
    minutes = (time.perf_counter() - started) / 60
    meta = {"dataset": dataset, "comparison": records[0]["comparison"], "parent_run_id": parent,
            "epochs": cfg.cnn.epochs, "patience": cfg.cnn.patience,
            "wall_minutes": round(minutes, 2) if options.train else 0.0,
            "load": f", load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at end "
                    "(2 cores)" if options.train else " (collector only, no training)"}
    out, stem = cfg.path("metrics"), output_stem(cfg, dataset, options.full)
    with atomic_file(out / f"{stem}.md") as handle:
        handle.write(comparison_report.table(results, plan, meta))
    comparison_report.chart(records, results, f"Kim CNN on {dataset}: "
                            f"{results[0].accuracy.n} paired runs per arm", out / f"{stem}.png")
    write_json(out / f"{stem}.json", comparison_report.as_json(results, records, plan, meta))
    tracking.set_tags({"comparison": meta["comparison"], "protocol": plan.protocol,
                       "dataset": dataset})
    tracking.log_params({"compare.runs_per_arm": len(plan.keys),
                         "compare.seeds": len(plan.seeds), "compare.folds": len(plan.folds)})
    for suffix in ("md", "png", "json"):
        tracking.log_artifact(out / f"{stem}.{suffix}", "compare")
    metrics = {}
    for r in results:
        metrics[r.arm] = {"accuracy_mean": r.accuracy.mean, "accuracy_low": r.accuracy.low,
                          "accuracy_high": r.accuracy.high, "macro_f1_mean": r.macro_f1.mean,
                          "epoch_cap_hits": r.cap_hits}
        if r.vs_baseline is not None:
            metrics[r.arm].update(minus_rand_mean=r.vs_baseline.mean,
                                  minus_rand_low=r.vs_baseline.low,
                                  minus_rand_high=r.vs_baseline.high)
    tracking.log_metrics({f"{arm.replace(' ', '_').replace('(', '').replace(')', '')}.{k}": v
                          for arm, m in metrics.items() for k, v in m.items()})
    return metrics


def parse(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m tasks.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default=PARAMS_FILE)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE")
    parser.add_argument("--train", action="store_true", help="train the runs first")
    parser.add_argument("--seeds", type=int, default=None, help="R seeds (default 5; 1 --full)")
    parser.add_argument("--full", action="store_true", help="Kim's k-fold cross-validation")
    parser.add_argument("--dataset", default=None, help="registry name or data.custom key")
    args = parser.parse_args(argv)
    return Options(args.train, args.seeds, args.full, args.dataset, args.params,
                   tuple(args.overrides))


def main(argv: list[str] | None = None) -> int:
    options = parse(list(sys.argv[1:] if argv is None else argv))
    setup_logging()

    def body() -> None:
        cfg = load_params(options.params, parse_overrides(list(options.overrides)))
        name = output_stem(cfg, options.dataset or cfg.data.labelled, options.full)
        with tracking.stage_run(cfg, "compare", run_name=name) as parent:
            run(cfg, options, parent)
        print(Path(cfg.path("metrics") / f"{name}.md").read_text())

    # one `error:` line per failure; TensorFlow's start-up lines kept off stderr
    return guarded("compare", body)


if __name__ == "__main__":
    raise SystemExit(main())
