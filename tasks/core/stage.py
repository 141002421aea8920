"""The thin `main()` every stage shares: parse params, open the MLflow run, write metrics.

    # tasks/vocab.py
    def run(cfg: Config) -> dict: ...
    def main(argv=None) -> int:
        return stage_main("vocab", run, argv)

`python -m tasks.<stage> [--params params.yaml] [--set key=value ...]` is what `dvc.yaml`
calls. The metrics `run` returns are written atomically to `<paths.metrics>/<stage>.json`
(the DVC metrics file) and logged to MLflow. Expected failures (`PipelineError`, missing
files) print one line `error: <stage>: ...` and exit with code 2; a params problem is
reported as `error: params: <section>.<key>: ...` (the section it is in, not the stage that
happened to read it). Anything unforeseen prints one line `error: <stage>: unexpected
<Type>: ...` first and exits with code 1; its traceback goes to the log at DEBUG level and is
printed with `--verbose` (or PIPELINE_LOG_LEVEL=DEBUG). `guarded()` does this for every CLI,
and keeps TensorFlow's native start-up lines (no CUDA driver, absl::InitializeLog) off stderr
unless verbose (tasks/core/native_logs.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from tasks.core import tracking
from tasks.core.atomic import write_json
from tasks.core.errors import ParamsError, PipelineError
from tasks.core.native_logs import quiet_tensorflow_startup
from tasks.core.params import PARAMS_FILE, Config, load_params

log = logging.getLogger("tasks")


# Errors a user can fix (bad params, bad or missing input): one line on stderr, exit code 2.
STAGE_ERRORS = (PipelineError, ParamsError, OSError)


def report_error(label: str, problem: BaseException | str, code: int = 2) -> int:
    """Print `error: <label>: <first line of problem>` to stderr; return `code`.

    The one error reporter of every stage, command and flow CLI: 2 for what the user can fix
    (bad params or input), 1 for a failed run."""
    text = str(problem)
    message = text.splitlines()[0] if text.strip() else type(problem).__name__
    print(f"error: {label}: {message}", file=sys.stderr)
    return code


def verbose_wanted(verbose: bool = False) -> bool:
    """--verbose given, or PIPELINE_LOG_LEVEL=DEBUG: print tracebacks of unforeseen errors."""
    return verbose or os.environ.get("PIPELINE_LOG_LEVEL", "").upper() == "DEBUG"


def guarded(label: str, body: Callable[[], int | None], verbose: bool = False) -> int:
    """Run a CLI body and turn every failure into one `error:` line and an exit code.

    ParamsError -> `error: params: <key>: ...` (2); PipelineError / missing file ->
    `error: <label>: ...` (2); any other Exception -> `error: <label>: unexpected <Type>: ...`
    (1), its traceback logged at DEBUG and printed after the line when `verbose_wanted`.
    TensorFlow's native start-up lines stay off stderr unless `verbose_wanted`
    (tasks/core/native_logs.py)."""
    try:
        with quiet_tensorflow_startup(verbose_wanted(verbose)):
            return body() or 0
    except ParamsError as exc:
        return report_error("params", exc)
    except STAGE_ERRORS as exc:
        return report_error(label, exc)
    except Exception as exc:  # a bug or an unforeseen input: one line first, then details
        code = report_error(label, f"unexpected {type(exc).__name__}: {exc}", 1)
        if verbose_wanted(verbose) and not log.isEnabledFor(logging.DEBUG):
            traceback.print_exception(exc, file=sys.stderr)
        log.debug("traceback of the error above", exc_info=exc)
        return code


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """`["a.b=3", "c=[1, 2]"]` -> `{"a.b": 3, "c": [1, 2]}` (values parsed as YAML)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ParamsError(f"{pair}: an override is key=value")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            why = " ".join(str(exc).split())[:200]
            raise ParamsError(f"{key.strip()}: override value {value!r} is not YAML ({why})") \
                from None
    return out


def setup_logging() -> None:
    level = os.environ.get("PIPELINE_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    # TensorFlow's C++ start-up lines: TF_CPP_MIN_LOG_LEVEL, set in tasks/__init__.py (it must
    # be set before TensorFlow loads). Python-side absl INFO chatter stays out too:
    logging.getLogger("absl").setLevel(max(logging.WARNING, logging.getLogger().level))


def metrics_path(cfg: Config, stage: str) -> Path:
    return cfg.path("metrics") / f"{stage}.json"


def run_stage(stage: str, run: Callable[[Config], dict[str, Any]], cfg: Config) -> dict[str, Any]:
    """Run one stage inside its MLflow run; write and log its metrics."""
    started = time.perf_counter()
    with tracking.stage_run(cfg, stage):
        metrics = dict(run(cfg))
        metrics.setdefault("wall_seconds", round(time.perf_counter() - started, 3))
        tracking.log_metrics(metrics)
        write_json(metrics_path(cfg, stage), metrics)
        tracking.log_artifact(metrics_path(cfg, stage), "metrics")
    log.info("%s done in %.1f s", stage, metrics["wall_seconds"])
    return metrics


def describe(module_doc: str | None, module: str) -> str:
    """`--help` text from an entry module's docstring: its first line (what the stage does) and
    its indented command lines (sub-commands such as `predict`, `nearby`, `analogy`)."""
    lines = (module_doc or "").strip().splitlines()
    commands = [line for line in lines
                if line.startswith("    ") and line.lstrip().startswith(("python -m ", "make "))]
    text = lines[0] if lines else ""
    if commands:
        text += "\n\ncommands:\n" + "\n".join(commands)
    return text + f"\n\nparams, inputs, outputs: .venv/bin/python -m pydoc {module}"


def stage_main(stage: str, run: Callable[[Config], dict[str, Any]],
               argv: Sequence[str] | None = None) -> int:
    """Entry point for `python -m tasks.<stage>`; returns the process exit code."""
    parser = argparse.ArgumentParser(prog=f"python -m tasks.{stage}",
                                     description=describe(sys.modules[run.__module__].__doc__,
                                                          f"tasks.{stage}"),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default=PARAMS_FILE, help="params file (default params.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a params key (validated)")
    parser.add_argument("--verbose", action="store_true",
                        help="print the traceback of an unexpected error")
    args = parser.parse_args(argv)
    setup_logging()

    def body() -> None:
        run_stage(stage, run, load_params(args.params, parse_overrides(args.overrides)))

    return guarded(stage, body, args.verbose)
