"""Kim's Table 2 as a paired experiment: which runs to train, where they live, what they show.

    arms()                       -> the compared rows: the four embedding variants (Adam) and
                                    non-static with Adadelta (Kim's optimiser, lr 1.0)
    plan(cfg, seeds, full)       -> Plan: every (seed, fold) each arm trains on
    run_overrides(...)           -> the `--set` pairs of one `python -m tasks.cnn` run
    collect(cfg, plan, dataset)  -> one record per finished run (test accuracy, macro F1, ...)
    analyse(records, plan)       -> per arm: Summary of accuracy and F1; per arm vs rand: the
                                    paired Difference (tasks.classifier.stats, Student t)

Pairing: every arm trains on the same (seed, fold) runs, so arm A's run i and rand's run i
share the test sentences, the dev slice, the shuffle order and the initial filters.
Default protocol: `seeds` seeds (cfg.seed, cfg.seed + 1, ...) x the train/dev/test split;
`full`: Kim's k-fold cross-validation, fold by fold (cnn.fold), k = prepare.folds.
Files of run (arm, seed, fold) of dataset D: data/compare/<D>/<arm>/seed<S>-<fold>/model
(paths.cnn) and .../metrics (paths.metrics: cnn.json). Params sections: `cnn`, `seed`,
`prepare.folds`, `data.labelled`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.classifier.stats import Difference, Summary, paired_difference, summarise
from tasks.core.errors import PipelineError
from tasks.core.params import CNN_VARIANTS, Config

BASELINE = "rand"
ADADELTA = "non-static (adadelta)"
KIM_MR = {"rand": 76.1, "static": 81.0, "non-static": 81.5, "multichannel": 81.1,
          ADADELTA: 81.5}  # Kim (2014) Table 2, MR, 10-fold CV, Adadelta throughout
DEFAULT_SEEDS = 5  # t(0.975, 4) = 2.78; at 3 seeds t = 4.30 (non-static on MR: +-3.4 points)


def arms() -> dict[str, dict[str, Any]]:
    """Arm name -> the cnn overrides that make it."""
    rows: dict[str, dict[str, Any]] = {v: {"cnn.embedding_init": v, "cnn.optimizer": "adam"}
                                       for v in CNN_VARIANTS}
    rows[ADADELTA] = {"cnn.embedding_init": "non-static", "cnn.optimizer": "adadelta",
                      "cnn.learning_rate": 1.0}
    return rows


@dataclass(frozen=True)
class Plan:
    protocol: str                     # "split" or "kfold"
    seeds: tuple[int, ...]
    folds: tuple[int, ...]            # (-1,) under split; 0..k-1 under kfold

    @property
    def keys(self) -> list[tuple[int, int]]:
        """(seed, fold) in training order: seed-major, so a cut-short run leaves whole pairs."""
        return [(s, f) for s in self.seeds for f in self.folds]

    def describe(self) -> str:
        where = ("the train/dev/test split" if self.protocol == "split"
                 else f"{len(self.folds)}-fold cross-validation")
        return f"R = {len(self.seeds)} seed(s) x {where} = {len(self.keys)} runs per arm"


def plan(cfg: Config, seeds: int | None = None, full: bool = False) -> Plan:
    """Default: DEFAULT_SEEDS seeds x the split. `full`: prepare.folds folds (x 1 seed)."""
    if full:
        if cfg.prepare.folds < 2:
            raise PipelineError("--full needs prepare.folds >= 2 (all.tsv fold ids)")
        count = seeds or 1
        folds = tuple(range(cfg.prepare.folds))
    else:
        count, folds = seeds or DEFAULT_SEEDS, (-1,)
    if count < 1:
        raise PipelineError(f"--seeds must be >= 1, got {count}")
    return Plan("kfold" if full else "split", tuple(cfg.seed + i for i in range(count)), folds)


def fold_label(fold: int) -> str:
    return "split" if fold < 0 else f"fold{fold:02d}"


def slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text).strip("-")


def run_folder(cfg: Config, dataset: str, arm: str, seed: int, fold: int) -> Path:
    return cfg.root / "data" / "compare" / slug(dataset) / slug(arm) / f"seed{seed}-{fold_label(fold)}"


def run_overrides(cfg: Config, plan_: Plan, dataset: str, arm: str, seed: int,
                  fold: int) -> list[str]:
    """`key=value` pairs for `python -m tasks.cnn --set ...` (paths relative to the root)."""
    folder = run_folder(cfg, dataset, arm, seed, fold).relative_to(cfg.root)
    sets = {**arms()[arm], "seed": seed, "cnn.protocol": plan_.protocol, "cnn.fold": fold,
            "paths.cnn": f"{folder}/model", "paths.metrics": f"{folder}/metrics"}
    return [f"{k}={v}" for k, v in sets.items()]


def collect(cfg: Config, plan_: Plan, dataset: str) -> list[dict[str, Any]]:
    """One record per (arm, seed, fold) run of the plan that has finished (cnn.json present).

    Raises when runs disagree on data or params (comparison ids) or no pair is complete."""
    records = []
    for arm in arms():
        for seed, fold in plan_.keys:
            folder = run_folder(cfg, dataset, arm, seed, fold)
            files = [folder / "metrics" / "cnn.json", folder / "model" / "model.json"]
            if not all(f.exists() for f in files):
                continue
            metrics, spec = (json.loads(f.read_text()) for f in files)
            stalled = metrics["epochs_run"] - metrics["best_epoch"] >= cfg.cnn.patience
            records.append({
                "arm": arm, "seed": seed, "fold": fold,
                **{k: metrics[k] for k in ("test_accuracy", "test_macro_f1", "dev_accuracy",
                                           "best_epoch", "epochs_run", "seconds_per_epoch")},
                "epoch_cap_hit": metrics["epochs_run"] >= cfg.cnn.epochs and not stalled,
                "comparison": spec.get("comparison"),
                "mlflow_run_id": spec.get("mlflow_run_id", "")})
    ids = sorted({str(r["comparison"]) for r in records})
    if len(ids) > 1:
        raise PipelineError(f"the runs were trained on different data or params (comparison "
                            f"ids {', '.join(ids)}); run `make compare` again")
    complete = complete_keys(records)
    if not complete:
        raise PipelineError(f"no (seed, fold) has finished for every arm under "
                            f"data/compare/{slug(dataset)}/ (run `make compare`)")
    return [r for r in records if (r["seed"], r["fold"]) in complete]


def complete_keys(records: list[dict[str, Any]]) -> set[tuple[int, int]]:
    """The (seed, fold) runs every arm has finished: only those pair up."""
    by_arm: dict[str, set] = {arm: set() for arm in arms()}
    for r in records:
        by_arm[r["arm"]].add((r["seed"], r["fold"]))
    return set.intersection(*by_arm.values())


@dataclass(frozen=True)
class ArmResult:
    arm: str
    accuracy: Summary
    macro_f1: Summary
    vs_baseline: Difference | None     # accuracy minus rand's, run by run; None for rand
    vs_baseline_f1: Difference | None
    epochs_run: float                  # mean over runs
    best_epoch: float
    cap_hits: int
    seconds_per_epoch: float
    run_ids: list[str]


def analyse(records: list[dict[str, Any]]) -> list[ArmResult]:
    """Per arm, in arms() order: Summary of test accuracy and macro F1 over its runs, and the
    paired Difference to rand (records matched on (seed, fold))."""
    def runs(arm: str) -> list[dict[str, Any]]:
        return sorted((r for r in records if r["arm"] == arm), key=lambda r: (r["seed"], r["fold"]))

    base = runs(BASELINE)
    out = []
    for arm in arms():
        rows = runs(arm)
        if [(r["seed"], r["fold"]) for r in rows] != [(r["seed"], r["fold"]) for r in base]:
            raise PipelineError(f"arm {arm}: its runs do not pair up with {BASELINE}'s")
        diff = diff_f1 = None
        if arm != BASELINE:
            diff = paired_difference([r["test_accuracy"] for r in rows],
                                     [r["test_accuracy"] for r in base])
            diff_f1 = paired_difference([r["test_macro_f1"] for r in rows],
                                        [r["test_macro_f1"] for r in base])
        out.append(ArmResult(
            arm, summarise([r["test_accuracy"] for r in rows]),
            summarise([r["test_macro_f1"] for r in rows]), diff, diff_f1,
            epochs_run=sum(r["epochs_run"] for r in rows) / len(rows),
            best_epoch=sum(r["best_epoch"] for r in rows) / len(rows),
            cap_hits=sum(bool(r["epoch_cap_hit"]) for r in rows),
            seconds_per_epoch=sum(r["seconds_per_epoch"] for r in rows) / len(rows),
            run_ids=[r["mlflow_run_id"] for r in rows]))
    return out
