"""TensorFlow's native (C++/absl) start-up lines kept off the terminal of every CLI.

TF_CPP_MIN_LOG_LEVEL (tasks/__init__.py) silences TensorFlow's own C++ INFO/WARNING lines, but
not what absl logs before anything calls `absl::InitializeLog()`: that goes straight to file
descriptor 2, whatever the level (abseil-cpp ignores its thresholds until initialised; there
is no environment knob). With TF 2.21 on a machine without a GPU every process prints

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1796... cudart_stub.cc:31] Could not find cuda drivers on your machine, ...
    E0000 00:00:1796... cuda_platform.cc:52] failed call to cuInit: ...

the first two while `import tensorflow` runs, the last one at the first device use.

`quiet_tensorflow_startup()` (used by tasks.core.stage.guarded, so by every stage and query
CLI) installs an import hook: when (and only if) the body imports TensorFlow, fd 2 points at
a temporary file while the import runs and the devices are listed (which initialises them;
GPU selection stays TensorFlow's own, nothing is hidden from it). Then fd 2 is restored and
the captured text is sorted line by line:

- native log lines that are informational, warnings, or CUDA/cuDNN start-up notices, and
  absl's InitializeLog notice: logged at DEBUG on the `tasks.native` logger (a log file
  handler at DEBUG keeps them; PIPELINE_LOG_LEVEL=DEBUG shows them);
- anything else (a Python warning, a real native error): written back to stderr.

If the import fails, everything captured is written back before the exception propagates, so
Python tracebacks and the `error:` lines of tasks.core.stage are never hidden. With `--verbose`
(or PIPELINE_LOG_LEVEL=DEBUG) nothing is captured: the lines show as TensorFlow prints them.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

log = logging.getLogger("tasks.native")

# `I0000 00:00:1796262812.205172   10074 cudart_stub.cc:31] ...` (absl) and
# `2026-12-02 20:30:01.123456: I tensorflow/core/...cc:113] ...` (TensorFlow's own format).
NATIVE_LINE = re.compile(
    r"^(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: (?P<tsl>[IWEF]) "
    r"|(?P<absl>[IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ )\S+:\d+\]")
STARTUP_NOTICE = re.compile(
    r"absl::InitializeLog|cuda|cuInit|cuDNN|cuFFT|cuBLAS|TensorRT|TF-TRT|oneDNN"
    r"|cpu_feature_guard|optimized to use available CPU instructions|computation placer"
    r"|Unable to register|rebuild TensorFlow with the appropriate compiler flags", re.IGNORECASE)
# XLA:CPU loading a program from the persistent compilation cache (tasks/embeddings/replicas.py)
# compares the features it was compiled for with the host's. `+prefer-no-scatter` and
# `+prefer-no-gather` are LLVM tuning hints, not instructions, so no host ever reports them
# and every cached program logs an ERROR line that warns of SIGILL (~50 per distributed job
# here). A missing real instruction set extension (avx512f, amx-tile...) is still shown.
TUNING_HINT_MISMATCH = re.compile(
    r"cpu_aot_loader\.cc:\d+\] .*Target machine feature \+prefer-no-(?:scatter|gather) is not ")


def is_startup_noise(line: str) -> bool:
    """True for a native line that is INFO/WARNING, a start-up notice (no CUDA, oneDNN...) or
    XLA's tuning-hint mismatch (TUNING_HINT_MISMATCH); False for any other native ERROR/FATAL
    line and for any non-native text."""
    native = NATIVE_LINE.match(line)
    if native is None:
        return "absl::InitializeLog" in line
    level = native.group("tsl") or native.group("absl")
    return (level in "IW" or bool(STARTUP_NOTICE.search(line))
            or bool(TUNING_HINT_MISMATCH.search(line)))


def sort_lines(text: str) -> tuple[list[str], list[str]]:
    """`text` split into (noise lines, lines a person must see), in their order."""
    noise, keep = [], []
    for line in text.splitlines():
        if line.strip():
            (noise if is_startup_noise(line) else keep).append(line)
    return noise, keep


@contextlib.contextmanager
def fd2_captured(captured: list[str]) -> Iterator[None]:
    """Point fd 2 (C++ and Python alike) at a temporary file for the body; on exit (also on
    an exception) restore it and append the captured text to `captured`. Python's sys.stderr
    is flushed first so nothing written before the body lands in the file."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read().decode("utf-8", "replace"))


def replay(lines: Sequence[str]) -> None:
    if lines:
        sys.stderr.write("".join(f"{line}\n" for line in lines))
        sys.stderr.flush()


def initialise_devices(tf: ModuleType) -> None:
    """Listing the physical devices initialises the platforms (where cuInit runs and
    complains on a machine without a GPU). Selection stays TensorFlow's own. A failure here
    must not fail `import tensorflow`: the first real device use raises it again, visibly."""
    try:
        tf.config.list_physical_devices()
    except Exception as exc:  # noqa: BLE001 - re-raised by TensorFlow at first use
        log.debug("listing TensorFlow's devices failed: %s", exc)


class _QuietLoader(importlib.abc.Loader):
    """Runs the real loader of `tensorflow` with fd 2 captured, then initialises devices."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self.loader  # the module keeps its real loader (reload, resources)
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        captured: list[str] = []
        failed = True
        try:
            with fd2_captured(captured):
                self.loader.exec_module(module)
                initialise_devices(module)
            failed = False
        finally:
            text = "".join(captured)
            if failed:  # the traceback follows: show everything TensorFlow printed before it
                replay(text.splitlines())
            else:
                noise, keep = sort_lines(text)
                for line in noise:
                    log.debug("%s", line)
                replay(keep)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Meta-path hook: finds `tensorflow` like the normal path finder, with a quiet loader."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _QuietLoader(spec.loader)
        return spec


@contextlib.contextmanager
def quiet_tensorflow_startup(verbose: bool = False) -> Iterator[None]:
    """While the body runs, a first `import tensorflow` (direct, or through Keras) keeps the
    native start-up lines off stderr (see the module docstring). A no-op with `verbose` or
    when TensorFlow is already imported."""
    if verbose or "tensorflow" in sys.modules:
        yield
        return
    finder = _QuietTensorFlowFinder()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)
