"""The log level of one output line of a DVC or stage process (no Prefect here).

flows/pipeline.py turns every line a stage prints into one Prefect log record; `line_level`
decides its level from the line's own format, so warnings stay warnings and start-up chatter
stays out of the run's logs (Prefect keeps INFO and up by default; DEBUG records show with
`PREFECT_LOGGING_LEVEL=DEBUG`):

- DVC (`ERROR: ...`, `WARNING: ...`), Python logging as the stages (`2026-12-02 20:30:01,123
  WARNING tasks: ...`) and MLflow (`2026/12/02 20:30:01 WARNING mlflow.x: ...`) print it, and
  `WARNING:absl:...`: the level the line names;
- TensorFlow's native log lines (`2026-12-02 20:30:01.123456: I tensorflow/...cc:113] ...`,
  absl's `E0000 00:00:1733... cuda_dnn.cc:8310] ...`): DEBUG for the informational ones and
  for the start-up notices every process prints (no CUDA, oneDNN, CPU instructions, cuDNN /
  cuFFT / cuBLAS factories, absl::InitializeLog) and XLA's cache-loader tuning-hint lines;
  other W lines WARNING, E/F lines ERROR;
- Python warnings (`file.py:12: UserWarning: ...`): WARNING; a stage's `error: <stage>: ...`
  (tasks.core.stage.report_error) and a lock wait message of DVC: ERROR / WARNING;
- anything else: INFO.

The native-line and start-up-notice patterns are tasks/core/native_logs.py's (which keeps
the same lines off the CLIs' stderr in the first place).
`clean(line)` drops ANSI escape codes and keeps the last carriage-return segment (what a
terminal would show of a progress bar).
"""

from __future__ import annotations

import logging
import re

from tasks.core.native_logs import NATIVE_LINE as TF_NATIVE
from tasks.core.native_logs import STARTUP_NOTICE as STARTUP_NOISE
from tasks.core.native_logs import TUNING_HINT_MISMATCH

NAMED_LEVEL = re.compile(
    r"^(?:\d{4}[-/]\d\d[-/]\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?:? )?"
    r"(?P<level>DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\b[: ]")
PY_WARNING = re.compile(r"^\S+\.py:\d+: \w*Warning\b")
STAGE_ERROR = re.compile(r"^error: \S+: ")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING,
          "WARN": logging.WARNING, "ERROR": logging.ERROR, "CRITICAL": logging.CRITICAL,
          "FATAL": logging.CRITICAL}
TF_LEVELS = {"I": logging.INFO, "W": logging.WARNING, "E": logging.ERROR, "F": logging.CRITICAL}
LOCK_WAIT = ("Unable to acquire lock", "is busy, it is being blocked by",
             "DVC lock held by another run")


def clean(line: str) -> str:
    """`line` without ANSI codes, as a terminal would leave it after carriage returns."""
    line = ANSI.sub("", line.rstrip("\r\n"))
    return line.rsplit("\r", 1)[-1] if "\r" in line else line


def line_level(line: str) -> int:
    """The logging level for one output line (see the module docstring)."""
    if any(marker in line for marker in LOCK_WAIT):
        return logging.WARNING  # another run holds DVC's lock: expected, waited for
    native = TF_NATIVE.match(line)
    if native:
        level = TF_LEVELS[native.group("tsl") or native.group("absl")]
        quiet = (level == logging.INFO or STARTUP_NOISE.search(line)
                 or TUNING_HINT_MISMATCH.search(line))
        return logging.DEBUG if quiet else level
    if line.startswith("WARNING: All log messages before absl::InitializeLog()"):
        return logging.DEBUG
    named = NAMED_LEVEL.match(line)
    if named:
        return LEVELS[named.group("level")]
    if PY_WARNING.match(line):
        return logging.WARNING
    if STAGE_ERROR.match(line):
        return logging.ERROR
    return logging.INFO
