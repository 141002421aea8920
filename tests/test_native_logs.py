"""tasks/core/native_logs.py: TensorFlow's native start-up lines stay off the CLIs' stderr.

Real subprocesses with real TensorFlow: `python -m tasks.mnist predict` on a tiny saved
softmax model, and a `guarded` body that imports TensorFlow, runs one op and fails. What the
machine prints at start-up depends on it (here, without a GPU: absl's InitializeLog notice,
`cudart_stub.cc` and a `cuInit` error line); the assertions hold for any of them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from digits_fixtures import synthetic_digits
from PIL import Image

from tasks.core.native_logs import NATIVE_LINE, is_startup_noise, sort_lines

REPO = Path(__file__).resolve().parents[1]

# What TF 2.21 printed on this machine (CPU only), plus lines a person must still see.
ABSL_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
CUDART = ("I0000 00:00:1796262812.205172   10074 cudart_stub.cc:31] Could not find cuda drivers"
          " on your machine, GPU will not be used.")
CUINIT = ("E0000 00:00:1796262824.077501   10074 cuda_platform.cc:52] failed call to cuInit: "
          "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)")
TSL_INFO = ("2026-12-02 20:30:01.123456: I tensorflow/core/util/port.cc:113] oneDNN custom "
            "operations are on.")
REAL_ERROR = "E0000 00:00:1796262824.1   10074 op_kernel.cc:1840] OP_REQUIRES failed at x.cc:9"
PY_WARNING = "/x/site-packages/keras/src/foo.py:12: UserWarning: something to know"
AOT = ("E0000 00:00:1796349812.203112   21521 cpu_aot_loader.cc:220] Loading XLA:CPU AOT result. "
       "Target machine feature +{} is not  supported on the host machine. Machine type used for "
       "XLA:CPU compilation doesn't match ... This could lead to execution errors such as SIGILL.")


def native_lines(text: str) -> list[str]:
    return [line for line in text.splitlines()
            if NATIVE_LINE.match(line) or "absl::InitializeLog" in line or "cudart_stub" in line]


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "PIPELINE_LOG_LEVEL"}
    full_env.update(PYTHONPATH=str(REPO), **env)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=300)


def test_start_up_notices_are_noise_and_real_errors_and_warnings_are_not():
    assert all(is_startup_noise(line) for line in (ABSL_NOTICE, CUDART, CUINIT, TSL_INFO))
    assert not any(is_startup_noise(line) for line in (
        REAL_ERROR, PY_WARNING, "Traceback (most recent call last):", "error: cnn: bad input"))
    noise, keep = sort_lines("\n".join([ABSL_NOTICE, CUDART, PY_WARNING, "", CUINIT, REAL_ERROR]))
    assert noise == [ABSL_NOTICE, CUDART, CUINIT]
    assert keep == [PY_WARNING, REAL_ERROR]


def test_xla_tuning_hints_are_noise_and_a_missing_instruction_set_is_not():
    # prefer-no-scatter/gather are LLVM tuning hints no host reports; avx512f is a real ISA.
    assert is_startup_noise(AOT.format("prefer-no-scatter"))
    assert is_startup_noise(AOT.format("prefer-no-gather"))
    assert not is_startup_noise(AOT.format("avx512f"))
    assert not is_startup_noise(AOT.format("amx-tile"))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkout whose mnist stage produced a (tiny) softmax model, and a digit image."""
    from tasks.digits import split
    from tasks.digits.models import save_keras
    from tasks.digits.train import train_softmax

    root = tmp_path_factory.mktemp("native-logs")
    (root / "params.yaml").write_text((REPO / "params.yaml").read_text())
    images, labels = synthetic_digits(20, seed=0)
    parts = split.split_test_set(images, labels, dev_fraction=0.1, test_fraction=0.2, seed=0)
    result = train_softmax(parts.train, parts.test, steps=20, eval_every=20)
    save_keras(result.model, root / "data" / "mnist" / "softmax.keras")
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 12:16] = 255
    Image.fromarray(digit).save(root / "digit.png")
    return root


def test_predict_cli_prints_only_its_result(project: Path):
    done = run(["-m", "tasks.mnist", "predict", "digit.png", "--model", "softmax"], project)
    assert done.returncode == 0, done.stderr
    image, digit, probability = done.stdout.strip().split("\t")
    assert image == "digit.png" and 0 <= int(digit) <= 9 and 0 < float(probability) <= 1
    assert native_lines(done.stderr) == [], done.stderr
    assert done.stderr.strip() == ""


def test_verbose_shows_the_start_up_lines_and_errors_stay_one_line(project: Path):
    verbose = run(["-m", "tasks.mnist", "predict", "digit.png", "--model", "softmax",
                   "--verbose"], project)
    assert verbose.returncode == 0, verbose.stderr
    assert native_lines(verbose.stderr), verbose.stderr  # what TensorFlow prints, as it prints
    (project / "bad.png").write_text("not an image")
    bad = run(["-m", "tasks.mnist", "predict", "bad.png", "--model", "softmax"], project)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.splitlines() == [
        "error: mnist: bad.png: not a readable image (PNG, JPEG, ...)"]


GUARDED_BODY = """
import sys
from tasks.core.stage import guarded

def body():
    import tensorflow as tf
    print(float((tf.constant([2.0]) * 3)[0]))
    print("a line of ours", file=sys.stderr)
    raise ValueError("boom")

sys.exit(guarded("probe", body))
"""


def test_guarded_keeps_python_output_and_tracebacks(tmp_path: Path):
    (tmp_path / "probe.py").write_text(GUARDED_BODY)
    quiet = run(["probe.py"], tmp_path)
    assert (quiet.returncode, quiet.stdout) == (1, "6.0\n")
    assert quiet.stderr.splitlines() == ["a line of ours",
                                         "error: probe: unexpected ValueError: boom"]
    debug = run(["probe.py"], tmp_path, PIPELINE_LOG_LEVEL="DEBUG")
    assert debug.returncode == 1
    assert "Traceback (most recent call last):" in debug.stderr
    assert 'raise ValueError("boom")' in debug.stderr
    assert native_lines(debug.stderr)
