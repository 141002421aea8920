"""The two failures a user can fix, shared by every stage, command and flow.

Both are reported as one line `error: <where>: <what>` with exit code 2
(`tasks.core.stage.report_error`); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class PipelineError(RuntimeError):
    """An expected failure (bad input, network, data): reported as one line, exit code 2."""


class ParamsError(ValueError):
    """A params.yaml (or override) problem, always naming the dotted key."""
