"""tasks/embeddings/replicas.py: replicas trained side by side and merged by summing updates.

Real TensorFlow on a tiny vocabulary: the merge is checked against models trained alone on
the same calls, the single-thread path against the model's own trainer, and the runtime
settings in a fresh interpreter (they only take effect before TF starts).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from tasks.embeddings.model import Word2VecModel, Word2VecSpec
from tasks.embeddings.replicas import CALLS_PER_REPLICA, Replicas, prune_cache

REPO = Path(__file__).resolve().parents[1]
V, D = 20, 8


def model(seed: int = 3) -> Word2VecModel:
    noise = np.r_[0.0, 0.0, np.linspace(1.0, 2.0, V - 2)]
    m = Word2VecModel(Word2VecSpec(V, D, "skipgram", "neg", 3, 2, seed), noise / noise.sum())
    m.output_embeddings.assign(np.random.default_rng(seed).normal(0, 0.1, (V, D)))
    return m


def call(seed: int, steps: int = 3, rows: int = 4, width: int = 2):
    """One compiled-trainer call: (batch, lr0, lr1) with stacked [S, B] / [S, B, C] arrays."""
    rng = np.random.default_rng(seed)
    batch = (rng.integers(2, V, (steps, rows)).astype(np.int32),
             rng.integers(2, V, (steps, rows, width)).astype(np.int32),
             np.ones((steps, rows, width), np.float32),
             np.stack([np.full(steps, 7, np.int64), np.arange(steps) + 100 * seed], 1))
    return _Batch(*batch), 0.05, 0.04


class _Batch(tuple):
    """The attribute names `Replicas.train_round` reads (inputs.Batch's fields)."""

    def __new__(cls, *parts):
        return super().__new__(cls, parts)

    centers = property(lambda self: self[0])
    contexts = property(lambda self: self[1])
    context_mask = property(lambda self: self[2])
    seed = property(lambda self: self[3])


def tables(m: Word2VecModel) -> list[np.ndarray]:
    return [v.numpy().copy() for v in m.variables_by_name().values()]


def train_alone(calls) -> list[np.ndarray]:
    """A fresh copy of the starting model trained on `calls` one after another."""
    m = model()
    run = m.compiled_trainer()
    for batch, lr0, lr1 in calls:
        run(*batch, tf.constant(lr0), tf.constant(lr1))
    return tables(m)


def test_a_round_merges_the_sum_of_the_replicas_updates():
    calls = [call(s) for s in range(2 * CALLS_PER_REPLICA)]
    start = tables(model())
    # call i goes to replica i mod 2; each replica starts from the same tables
    alone = [train_alone(calls[r::2]) for r in range(2)]
    master = model()
    replicas = Replicas(master, threads=2)
    try:
        loss_sum, pairs = replicas.train_round(calls)
    finally:
        replicas.close()
    for j, table in enumerate(tables(master)):
        expected = start[j] + (alone[0][j] - start[j]) + (alone[1][j] - start[j])
        np.testing.assert_allclose(table, expected, rtol=1e-5, atol=1e-6)
        assert not np.array_equal(table, start[j])             # the round trained something
    assert pairs == 2 * CALLS_PER_REPLICA * 3 * 4 * 2 and np.isfinite(loss_sum)
    # after the merge every replica holds the master's tables (the next round's start)
    for replica_run in replicas.trainers:
        for held, table in zip(replica_run.args[0], tables(master), strict=True):
            np.testing.assert_array_equal(held.numpy(), table)


def test_rows_one_replica_touched_get_exactly_its_update():
    """Skip-gram input rows are the centres'; with disjoint centres each replica's input rows
    end up exactly as that replica left them, and untouched rows keep their start value."""
    def with_centres(seed: int, low: int, high: int):
        batch, lr0, lr1 = call(seed)
        centres = np.random.default_rng(seed).integers(low, high, batch.centers.shape)
        return _Batch(centres.astype(np.int32), *batch[1:]), lr0, lr1

    calls = [with_centres(1, 2, 8), with_centres(2, 8, 14)]
    start = tables(model())[0]
    master = model()
    replicas = Replicas(master, threads=2)
    try:
        replicas.train_round(calls)
    finally:
        replicas.close()
    merged = tables(master)[0]
    for c in calls:
        rows = np.unique(c[0].centers)
        # equal up to the rounding of base + (replica - base)
        np.testing.assert_allclose(merged[rows], train_alone([c])[0][rows], rtol=1e-6,
                                   atol=1e-9)
    np.testing.assert_array_equal(merged[14:], start[14:])   # no call's centre


def test_one_thread_trains_the_master_itself():
    calls = [call(s) for s in range(3)]
    master = model()
    replicas = Replicas(master, threads=1)
    assert replicas.round_size == 1 and replicas.trainers[0].args[0][0] is \
        master.input_embeddings
    for c in calls:
        replicas.train_round([c])
    replicas.close()
    for a, b in zip(tables(master), train_alone(calls), strict=True):
        np.testing.assert_array_equal(a, b)


def run_fresh(code: str, **env: str | None) -> str:
    """Run `code` in a new interpreter (TF not started yet) with `env` applied (None = unset);
    return its last line of output."""
    environ = {**os.environ}
    for key, value in env.items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, env=environ, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_runtime_settings_in_a_fresh_process(tmp_path):
    """One intra-op thread, and compiled programs land in $PIPELINE_XLA_CACHE."""
    code = (
        "import json, os, numpy as np, tensorflow as tf\n"
        "from tasks.embeddings.replicas import configure_runtime\n"
        "configure_runtime()\n"
        "from tasks.embeddings.model import Word2VecModel, Word2VecSpec\n"
        "m = Word2VecModel(Word2VecSpec(6, 4, 'skipgram', 'neg', 2, 1, 0), np.r_[0, 0, [.25] * 4])\n"
        "c = np.full((2, 3), 2, np.int32)\n"
        "m.compiled_trainer()(c, np.full((2, 3, 2), 3, np.int32), np.ones((2, 3, 2), np.float32),"
        " np.ones((2, 2), np.int64), tf.constant(.1), tf.constant(.1))\n"
        "print(json.dumps([tf.config.threading.get_intra_op_parallelism_threads(),"
        " os.environ['TF_XLA_FLAGS']]))\n")
    intra, flags = json.loads(run_fresh(code, PIPELINE_XLA_CACHE=str(tmp_path / "xla"),
                                        TF_XLA_FLAGS=None))
    assert intra == 1
    assert f"--tf_xla_persistent_cache_directory={tmp_path / 'xla'}" in flags
    assert list((tmp_path / "xla").glob("*.pb"))                   # the program was cached


def test_a_users_own_cache_flag_is_kept(tmp_path):
    user_flags = "--tf_xla_persistent_cache_directory=/elsewhere"
    code = ("import os\nfrom tasks.embeddings.replicas import configure_runtime\n"
            "configure_runtime()\nprint(os.environ['TF_XLA_FLAGS'])\n")
    assert run_fresh(code, PIPELINE_XLA_CACHE=str(tmp_path), TF_XLA_FLAGS=user_flags) == \
        user_flags


def test_the_cache_keeps_the_newest_programs_under_its_size(tmp_path):
    for i in range(5):
        path = tmp_path / f"program{i}.pb"
        path.write_bytes(b"x" * 1000)
        os.utime(path, (1000 + i, 1000 + i))                 # program4 is the newest
    (tmp_path / "notes.txt").write_text("not a program")
    prune_cache(tmp_path, max_bytes=2500)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "program3.pb",
                                                          "program4.pb"]
    prune_cache(tmp_path / "missing")                        # no folder yet: nothing to do


def test_an_unwritable_cache_folder_only_turns_the_cache_off(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder's parent should be")
    code = ("import os\nfrom tasks.embeddings.replicas import configure_runtime\n"
            "configure_runtime()\nprint(repr(os.environ.get('TF_XLA_FLAGS', '')))\n")
    flags = run_fresh(code, PIPELINE_XLA_CACHE=str(blocker / "xla"), TF_XLA_FLAGS=None)
    assert "persistent_cache" not in flags
