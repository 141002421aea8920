"""`make run`: `dvc repro`, then a compact summary a person can read (<= 100 columns).

    python -m tasks.repro [DVC REPRO ARGS ...]     # what `make run` calls

`dvc repro` runs attached to this terminal (its own output and the stages' progress lines are
untouched). Afterwards one line per dvc.yaml stage: `ran` (its metrics file was rewritten by
this run) or `skipped` (nothing changed), the stage's own `wall_seconds`, and two or three
headline metrics from `<paths.metrics>/<stage>.json`. The full table stays one command away:
`.venv/bin/dvc metrics show` (or `--json`). Exit code: dvc's.
No params section of its own; reads `paths.metrics` from params.yaml.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from tasks.core.params import PARAMS_FILE, load_params

WIDTH = 100


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def _fixed3(value: float) -> str:
    return f"{value:.3f}"


def _megabytes(value: float) -> str:
    return f"{value / 1e6:,.1f} MB"


# stage -> (label, metrics key, formatter): the two or three numbers people look at first.
HEADLINES: dict[str, list[tuple[str, str, Callable[[float], str]]]] = {
    "download": [("datasets", "datasets", _count), ("archives", "archive_bytes", _megabytes)],
    "prepare": [("sentences", "corpus_sentences", _count), ("tokens", "corpus_tokens", _count)],
    "vocab": [("vocab", "vocab_size", _count), ("token coverage", "coverage", _percent)],
    "word2vec": [("analogy", "analogy_accuracy", _percent),
                 ("WS353", "wordsim353_spearman", _fixed3),
                 ("words/s", "words_per_sec", _count)],
    "export": [("words", "words_exported", _count), ("projector", "projector_words", _count)],
    "cnn": [("test acc", "test_accuracy", _percent), ("macro F1", "test_macro_f1", _fixed3),
            ("best epoch", "best_epoch", _count)],
    "mnist": [("softmax acc", "softmax.test_accuracy", _percent),
              ("cnn acc", "cnn.test_accuracy", _percent)],
}


def headline(stage: str, metrics: dict[str, Any]) -> str:
    """`analogy 11.7%  WS353 0.361  words/s 170,977` (keys missing from `metrics` are left out)."""
    values = [(label, _lookup(metrics, key), fmt) for label, key, fmt in HEADLINES.get(stage, [])]
    return "  ".join(f"{label} {fmt(v)}" for label, v, fmt in values
                     if isinstance(v, (int, float)) and not isinstance(v, bool))


def _lookup(metrics: dict[str, Any], dotted: str) -> Any:
    """`metrics["softmax"]["test_accuracy"]` for "softmax.test_accuracy" (None if absent)."""
    value: Any = metrics
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def stage_names(dvc_yaml: Path) -> list[str]:
    return list(yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")).get("stages", {}))


def _mtimes(files: dict[str, Path]) -> dict[str, float]:
    return {stage: f.stat().st_mtime_ns if f.exists() else 0.0 for stage, f in files.items()}


def summary(rows: Sequence[tuple[str, str, str, str]], total_seconds: float) -> list[str]:
    """The table's lines, each cut to WIDTH columns."""
    lines = [f"{'stage':<10} {'status':<8} {'seconds':>8}  headline metrics",
             *(f"{stage:<10} {status:<8} {seconds:>8}  {text}"
               for stage, status, seconds, text in rows),
             f"total {total_seconds:.1f} s; every metric: .venv/bin/dvc metrics show"]
    return [line if len(line) <= WIDTH else line[: WIDTH - 3] + "..." for line in lines]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tasks.repro",
        description="Run `dvc repro` (extra arguments are passed to it), then print one line "
                    "per stage: ran/skipped, seconds, headline metrics.")
    parser.add_argument("dvc_args", nargs=argparse.REMAINDER,
                        help="arguments for `dvc repro` (e.g. --force, a stage name)")
    args = parser.parse_args(argv)
    metrics_dir = load_params(PARAMS_FILE).path("metrics")
    stages = stage_names(Path("dvc.yaml"))
    files = {stage: metrics_dir / f"{stage}.json" for stage in stages}
    before = _mtimes(files)
    started = time.perf_counter()
    code = subprocess.call([sys.executable, "-m", "dvc", "repro", *args.dvc_args])
    total = time.perf_counter() - started
    after = _mtimes(files)
    rows = []
    for stage in stages:
        metrics = json.loads(files[stage].read_text()) if files[stage].exists() else {}
        ran = after[stage] != before[stage]
        seconds = f"{metrics['wall_seconds']:.1f}" if ran and "wall_seconds" in metrics else "-"
        status = "ran" if ran else ("skipped" if metrics and code == 0 else "not run")
        rows.append((stage, status, seconds, headline(stage, metrics)))
    print("\n".join(summary(rows, total)), flush=True)
    if code:
        print(f"error: dvc repro exited with code {code} (its message is above)", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
