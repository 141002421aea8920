"""flows/logs.py: the level of each output line a stage process prints (lines as printed by
TensorFlow 2.21, absl, MLflow, DVC 3.67 and tasks.core.stage on this machine)."""

from __future__ import annotations

import logging

import pytest

from flows.logs import clean, line_level

DEBUG, INFO, WARNING, ERROR = logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR


@pytest.mark.parametrize(("line", "level"), [
    # TensorFlow / absl start-up chatter, printed by every stage process: out of the logs
    ("I0000 00:00:1796243332.455919   19631 cudart_stub.cc:31] Could not find cuda drivers "
     "on your machine, GPU will not be used.", DEBUG),
    ("E0000 00:00:1796243411.211405   19631 cuda_platform.cc:52] failed call to cuInit: "
     "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)", DEBUG),
    ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
     DEBUG),
    ("2026-12-02 20:30:01.123456: I tensorflow/core/util/port.cc:153] oneDNN custom operations "
     "are on. You may see slightly different numerical results", DEBUG),
    ("2026-12-02 20:30:01.223456: I tensorflow/core/platform/cpu_feature_guard.cc:210] This "
     "TensorFlow binary is optimized to use available CPU instructions", DEBUG),
    # other native TensorFlow lines keep their letter's level
    ("2026-12-02 20:30:05.000001: W tensorflow/core/framework/local_rendezvous.cc:404] Local "
     "rendezvous is aborting with status: OUT_OF_RANGE: End of sequence", WARNING),
    ("E0000 00:00:1796243411.211405   19631 op_kernel.cc:1830] OP_REQUIRES failed", ERROR),
    # XLA's cache loader: an LLVM tuning hint no host reports is noise, a missing ISA is not
    ("E0000 00:00:1796349812.2   21521 cpu_aot_loader.cc:220] Loading XLA:CPU AOT result. Target "
     "machine feature +prefer-no-gather is not  supported on the host machine.", DEBUG),
    ("E0000 00:00:1796349812.2   21521 cpu_aot_loader.cc:220] Loading XLA:CPU AOT result. Target "
     "machine feature +avx512f is not  supported on the host machine.", ERROR),
    # MLflow and the stages' own logging (Python logging formats): the level they name
    ("2026/12/02 20:31:02 WARNING mlflow.models.model: Model logged without a signature and "
     "input example.", WARNING),
    ("2026/12/02 20:31:02 INFO mlflow.tracking.fluent: Experiment with name 'x' does not "
     "exist. Creating a new experiment.", INFO),
    ("2026-12-02 20:38:12,524 INFO tasks: export done in 141.5 s", INFO),
    ("2026-12-02 20:38:12,524 ERROR tasks: cnn failed", ERROR),
    ("WARNING:absl:You are saving your model as an HDF5 file", WARNING),
    # DVC, Python warnings, a stage's one-line error
    ("ERROR: failed to reproduce 'cnn': failed to run: python -m tasks.cnn, exited with 2",
     ERROR),
    ("WARNING: 'data/custom' is empty.", WARNING),
    ("/work/.venv/lib/python3.11/site-packages/keras/src/x.py:82: UserWarning: Do not pass",
     WARNING),
    ("error: cnn: params.yaml: cnn.epochs: must be >= 1", ERROR),
    ("ERROR: Unable to acquire lock. Most likely another DVC process is running", WARNING),
    # everything else
    ("Running stage 'cnn':", INFO),
    ("> python -m tasks.cnn", INFO),
    ("epoch 3/8: loss 0.35 acc 0.86 dev_acc 0.77 (8.6 s)", INFO),
])
def test_line_level(line, level):
    assert line_level(line) == level


def test_clean_drops_escape_codes_and_overwritten_progress():
    bar = "\x1b[1m1/1\x1b[0m \x1b[32m━━━━━━━━━━━━━━━━━━━━\x1b[0m\x1b[37m\x1b[0m \x1b[1m0s\x1b[0m 100ms/step"
    assert clean(bar + "\n") == "1/1 ━━━━━━━━━━━━━━━━━━━━ 0s 100ms/step"
    assert clean("10% ...\r50% ...\r100% done\r\n") == "100% done"
    assert clean("plain line") == "plain line"
