"""The word2vec stage on tiny planted-topic corpora: learning, determinism, resume, NaN guard,
outputs, MLflow, query CLI, and the model's closed-form gradients against autodiff."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import mlflow
import numpy as np
import pytest
import tensorflow as tf
from w2v_fixtures import REPO, TOPIC_A, TOPIC_B, workspace

from tasks import word2vec
from tasks.core.errors import PipelineError
from tasks.core.stage import run_stage
from tasks.embeddings.model import Word2VecModel, Word2VecSpec
from tasks.embeddings.queries import load_embeddings, nearby
from tasks.embeddings.training import build_trainer

FAST = {"word2vec.window": 1}   # one radius bucket: one XLA compilation per run


def cross_topic(cfg) -> list[str]:
    """Words with a top-3 neighbour from the other topic (a0.. vs b0..)."""
    hits = nearby(load_embeddings(cfg), TOPIC_A + TOPIC_B, k=3)
    return [w for w, near in hits.items() if any(n[0][0] != w[0] for n in near)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One uninterrupted skip-gram/neg run, shared by the comparisons below."""
    cfg = workspace(tmp_path_factory.mktemp("w2v"), **FAST)
    metrics = run_stage("word2vec", word2vec.run, cfg)
    return cfg, metrics, np.load(cfg.path("word2vec") / "embeddings.npy")


def test_skipgram_learns_topics_and_writes_outputs(trained):
    cfg, metrics, emb = trained
    assert cross_topic(cfg) == []
    out = cfg.path("word2vec")
    assert emb.shape == (18, 16) and emb.dtype == np.float32      # <pad>, <unk>, 16 words
    spec = json.loads((out / "model.json").read_text())
    assert spec["model"] == "skipgram" and spec["dims"] == 16 and spec["steps"] == metrics["steps"]
    assert (out / "checkpoints" / "fingerprint.json").is_file()
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert "metadata.tsv" in (out / "tensorboard" / "projector_config.pbtxt").read_text()
    assert metrics["analogy_total"] == 3 and metrics["analogy_seen"] == 2   # zz is OOV
    assert metrics["wordsim353_pairs"] == 4 and metrics["wordsim353_oov"] == 1
    assert metrics["wordsim353_spearman"] > 0.5            # same-topic pairs score higher
    assert metrics["epochs"] == 3 and metrics["words_per_sec"] > 0
    assert np.isfinite(metrics["final_loss"]) and metrics["resumed_from_step"] == 0
    saved = json.loads((cfg.path("metrics") / "word2vec.json").read_text())
    assert saved["steps"] == metrics["steps"]
    curve = json.loads((cfg.path("metrics") / "word2vec_loss.json").read_text())
    assert [p["epoch"] for p in curve] == [1, 2, 3]
    assert curve[-1]["loss"] < curve[0]["loss"]


@pytest.mark.parametrize("model,loss", [("cbow", "neg"), ("skipgram", "nce"), ("cbow", "nce")])
def test_other_models_learn_topics(tmp_path, model, loss):
    tracked = model == "cbow" and loss == "neg"     # one run also checks MLflow logging
    cfg = workspace(tmp_path, **FAST, **{"word2vec.model": model, "word2vec.loss": loss,
                                         "tracking.enabled": tracked})
    metrics = run_stage("word2vec", word2vec.run, cfg)
    assert cross_topic(cfg) == [], (model, loss)
    assert np.isfinite(metrics["final_loss"])
    if tracked:
        client = mlflow.MlflowClient()
        (run,) = client.search_runs([client.get_experiment_by_name("w2v-cnn").experiment_id])
        assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2, 3]
        assert run.data.metrics["analogy_accuracy"] == metrics["analogy_accuracy"]
        assert "tensorboard" in [a.path for a in client.list_artifacts(run.info.run_id)]


def test_same_seed_same_loss_curve(trained, tmp_path):
    cfg, metrics, emb = trained
    again = workspace(tmp_path, **FAST)
    second = word2vec.run(again)
    first = json.loads((cfg.path("metrics") / "word2vec_loss.json").read_text())
    assert json.loads((again.path("metrics") / "word2vec_loss.json").read_text()) == first
    np.testing.assert_array_equal(np.load(again.path("word2vec") / "embeddings.npy"), emb)
    assert second["steps"] == metrics["steps"]


def test_interrupted_run_resumes_where_it_stopped(trained, tmp_path):
    cfg, metrics, emb = trained
    again = workspace(tmp_path, **FAST)
    trainer = build_trainer(again)
    seen = []

    def stop_in_epoch_two(vectors):
        seen.append(1)
        if len(seen) == 2:
            raise KeyboardInterrupt  # as if killed after epoch 2's last mid-epoch checkpoint
        return {}

    trainer.evaluate = stop_in_epoch_two
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    resumed = word2vec.run(again)
    assert 0 < resumed["resumed_from_step"] < metrics["steps"]
    assert resumed["steps"] == metrics["steps"]            # step count continued, not restarted
    np.testing.assert_array_equal(np.load(again.path("word2vec") / "embeddings.npy"), emb)
    curve = json.loads((again.path("metrics") / "word2vec_loss.json").read_text())
    assert [p["epoch"] for p in curve] == [1, 2, 3]         # every epoch once (issue #12)
    # Different params: the fingerprint no longer matches, so training starts over.
    changed = workspace(tmp_path, **FAST, **{"word2vec.negatives": 2})
    assert word2vec.run(changed)["resumed_from_step"] == 0


def test_rerun_after_a_completed_run_keeps_the_full_history(trained, tmp_path):
    """Issue #12: a forced re-run (dvc repro -f) restores the final checkpoint, trains nothing
    and must publish the same metrics and the whole loss history (it crashed with 1 epoch
    and dropped the last epoch otherwise)."""
    cfg, metrics, emb = trained
    first_curve = json.loads((cfg.path("metrics") / "word2vec_loss.json").read_text())
    again = workspace(tmp_path, **FAST)
    word2vec.run(again)
    rerun = run_stage("word2vec", word2vec.run, again)
    timing = ("words_per_sec", "train_seconds", "wall_seconds", "resumed_from_step")
    assert {k: v for k, v in rerun.items() if k not in timing} == {
        k: v for k, v in metrics.items() if k not in timing}
    assert rerun["resumed_from_step"] == metrics["steps"] and rerun["words_per_sec"] > 0
    curve = json.loads((again.path("metrics") / "word2vec_loss.json").read_text())
    assert curve == first_curve and [p["epoch"] for p in curve] == [1, 2, 3]
    np.testing.assert_array_equal(np.load(again.path("word2vec") / "embeddings.npy"), emb)


def test_rerun_of_a_one_epoch_run_does_not_crash(tmp_path, capsys):
    cfg = workspace(tmp_path, **FAST, **{"word2vec.epochs": 1})
    params = ["--params", str(tmp_path / "params.yaml")]
    assert word2vec.main(params) == 0
    assert word2vec.main(params) == 0, capsys.readouterr().err
    curve = json.loads((cfg.path("metrics") / "word2vec_loss.json").read_text())
    assert [p["epoch"] for p in curve] == [1]


@pytest.mark.slow
def test_kill_9_then_rerun_resumes(trained, tmp_path):
    _, metrics, _ = trained
    cfg = workspace(tmp_path, **FAST, **{"word2vec.epochs": 12})
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen([sys.executable, "-m", "tasks.word2vec", "--params",
                             str(tmp_path / "params.yaml")], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    index = cfg.path("word2vec") / "checkpoints" / "checkpoint"
    deadline = time.monotonic() + 240
    while not index.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the stage ended before it could be killed"
    resumed = word2vec.run(cfg)
    assert resumed["resumed_from_step"] > 0
    assert resumed["steps"] == metrics["steps"] // 3 * 12  # = an uninterrupted run's count


def test_nan_loss_stops_with_clear_error_and_keeps_good_checkpoint(tmp_path):
    cfg = workspace(tmp_path, **FAST, **{"word2vec.learning_rate": 5.0,
                                         "word2vec.checkpoint_every": 5})
    with pytest.raises(PipelineError, match=r"loss is (nan|inf) in steps .* diverged"):
        word2vec.run(cfg)
    ckpt_dir = cfg.path("word2vec") / "checkpoints"
    latest = tf.train.latest_checkpoint(str(ckpt_dir))
    assert latest is not None
    reader = tf.train.load_checkpoint(latest)
    for name in ("input_embeddings", "output_embeddings"):
        assert np.isfinite(reader.get_tensor(f"model/{name}/.ATTRIBUTES/VARIABLE_VALUE")).all()
    assert not (cfg.path("word2vec") / "embeddings.npy").exists()


def test_missing_eval_file_fails_before_training(tmp_path, capsys):
    workspace(tmp_path, **{"word2vec.wordsim_file": "eval/missing.tsv"})
    code = word2vec.main(["--params", str(tmp_path / "params.yaml")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: word2vec: word2vec.wordsim_file:")
    assert "missing.tsv not found" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "data" / "word2vec" / "checkpoints").exists()


def test_query_cli(trained, capsys):
    cfg, _, _ = trained
    params = str(cfg.root / "params.yaml")
    assert word2vec.main(["nearby", "a0", "b1", "--k", "3", "--params", params]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("a0: a") and lines[1].startswith("b1: b") and len(lines) == 2
    assert all(n.split()[0].startswith("a") for n in lines[0][4:].split(", "))
    assert word2vec.main(["analogy", "a0", "a1", "b0", "--params", params]) == 0
    assert capsys.readouterr().out.startswith("a0 : a1 :: b0 : b")
    for k in ("0", "-5"):                                  # issue #12: printed an empty list
        assert word2vec.main(["nearby", "a0", "--k", k, "--params", params]) == 2
        assert capsys.readouterr().err.splitlines() == [f"error: word2vec: --k: must be >= 1, got {k}"]
    # A real process: unknown word -> one line on stderr, exit code 2, no traceback.
    done = subprocess.run([sys.executable, "-m", "tasks.word2vec", "nearby", "a0", "nosuch",
                           "--params", params], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "error: word2vec: unknown word 'nosuch' (not in the vocabulary)"]


# -- the model API the distributed trainer relies on ---------------------------------------

def dense(grad: tf.IndexedSlices, shape) -> np.ndarray:
    return tf.math.unsorted_segment_sum(grad.values, grad.indices, shape[0]).numpy()


@pytest.mark.parametrize("model,grouped", [("skipgram", False), ("skipgram", True),
                                           ("cbow", True)])
def test_closed_form_gradients_match_autodiff(model, grouped):
    """compute_gradients' IndexedSlices == autodiff of its own summed loss (CBOW inputs: the
    word2vec.c convention, the hidden gradient undivided, i.e. autodiff x context count)."""
    v, d, rng = 12, 4, np.random.default_rng(3)
    noise = np.r_[0.0, 0.0, rng.random(v - 2)]
    m = Word2VecModel(Word2VecSpec(v, d, model, "neg", 3, 2, 7), noise / noise.sum())
    m.output_embeddings.assign(rng.normal(size=(v, d)).astype(np.float32))
    centers = rng.integers(2, v, 6).astype(np.int32)
    if grouped:
        contexts = rng.integers(2, v, (6, 4)).astype(np.int32)
        mask = (rng.random((6, 4)) < 0.7).astype(np.float32)
        mask[:, 0] = 1.0
    else:
        contexts, mask = rng.integers(2, v, 6).astype(np.int32), np.ones(6, np.float32)
    batch = {"centers": centers, "contexts": contexts, "context_mask": mask,
             "seed": np.array([1, 2], np.int64)}
    loss_sum, count, grads = m.forward(batch)
    assert isinstance(grads["input_embeddings"], tf.IndexedSlices)
    with tf.GradientTape() as tape:
        again, _, _ = m.forward(batch)             # same seed: the same negatives
    auto = tape.gradient(again, [m.input_embeddings, m.output_embeddings])
    np.testing.assert_allclose(float(again), float(loss_sum), rtol=1e-6)
    np.testing.assert_allclose(dense(grads["output_embeddings"], (v, d)),
                               dense(auto[1], (v, d)), rtol=1e-4, atol=1e-6)
    expected_in = _cbow_expected(m, batch, d) if model == "cbow" else dense(auto[0], (v, d))
    np.testing.assert_allclose(dense(grads["input_embeddings"], (v, d)), expected_in,
                               rtol=1e-4, atol=1e-6)


def _cbow_expected(m: Word2VecModel, batch: dict, d: int) -> np.ndarray:
    """Per-centre autodiff of the loss w.r.t. the hidden vector, added to every context."""
    contexts, mask = batch["contexts"], batch["context_mask"]
    rows = tf.nn.embedding_lookup(m.input_embeddings, contexts)
    count = tf.reduce_sum(mask, 1, keepdims=True)
    h = tf.reduce_sum(rows * mask[:, :, None], 1) / count
    neg = m.sample_negatives(tf.constant(batch["seed"]), [len(contexts), m.spec.negatives])
    with tf.GradientTape() as tape:
        tape.watch(h)
        targets = tf.concat([batch["centers"][:, None], neg], 1)
        logits = tf.einsum("bd,btd->bt", h, tf.nn.embedding_lookup(m.output_embeddings, targets))
        valid = tf.cast(tf.concat([tf.ones_like(count), tf.cast(
            neg != batch["centers"][:, None], tf.float32)], 1), tf.float32)
        labels = tf.concat([tf.ones_like(count), tf.zeros_like(valid[:, 1:])], 1)
        loss = -tf.reduce_sum(valid * tf.math.log_sigmoid(tf.where(labels > 0, logits, -logits)))
    grad_h = tape.gradient(loss, h).numpy()
    out = np.zeros((m.spec.vocab_size, d), np.float32)
    for row, ctx in enumerate(contexts):
        for j, c in enumerate(ctx):
            out[c] += mask[row, j] * grad_h[row]
    return out


def test_model_builds_under_a_strategy_and_trains_a_step():
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        m = Word2VecModel(Word2VecSpec(10, 4, "skipgram", "neg", 2, 2, 0), np.r_[0, 0, [.125] * 8])
    before = m.input_embeddings.numpy().copy()
    batch = (np.array([2, 3], np.int32), np.array([4, 5], np.int32), np.ones(2, np.float32),
             np.array([0, 1], np.int64))
    m.output_embeddings.assign(tf.ones([10, 4]))
    loss = strategy.run(m.train_step, args=(batch, 0.5))
    assert np.isfinite(float(loss))
    changed = np.nonzero((m.input_embeddings.numpy() != before).any(axis=1))[0]
    assert changed.tolist() == [2, 3]                # only the batch's rows were touched
