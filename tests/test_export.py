"""The export stage: word2vec text format (read back by gensim), the aligned matrix, the vocab
list, the TensorBoard projector, MLflow artifacts, and clean failures."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest
import tensorflow as tf
from gensim.models import KeyedVectors
from w2v_fixtures import workspace

from tasks import export
from tasks.core.errors import PipelineError
from tasks.core.stage import run_stage
from tasks.embeddings.queries import analogy, load_embeddings, nearby
from tasks.text.vocabulary import load_vocab


def trained_workspace(root, tracking: bool = False):
    """A workspace whose word2vec output is a known random matrix (the stage's file contract)."""
    cfg = workspace(root, **{"tracking.enabled": tracking})
    size = load_vocab(cfg.path("vocab")).size
    emb = np.random.default_rng(0).normal(size=(size, 16)).astype(np.float32)
    cfg.path("word2vec").mkdir(parents=True)
    np.save(cfg.path("word2vec") / "embeddings.npy", emb)
    return cfg, emb


@pytest.fixture
def trained_like(tmp_path):
    return trained_workspace(tmp_path)


def test_export_round_trips_through_gensim(trained_like):
    cfg, emb = trained_like
    metrics = run_stage("export", export.run, cfg)
    words = load_vocab(cfg.path("vocab")).words
    out = cfg.path("export")
    kv = KeyedVectors.load_word2vec_format(str(out / "vectors.txt"), binary=False)
    assert kv.index_to_key == words[2:]                      # real words, vocab order
    np.testing.assert_allclose(kv.vectors, emb[2:], rtol=1e-6, atol=1e-7)
    matrix = np.load(out / "embeddings.npy")
    assert matrix.dtype == np.float32 and matrix.shape == emb.shape
    assert not matrix[0].any()                               # <pad>
    np.testing.assert_allclose(matrix[1], emb[2:].mean(axis=0), rtol=1e-5)   # <unk>
    np.testing.assert_array_equal(matrix[2:], emb[2:])
    assert (out / "vocab.tsv").read_text().splitlines() == words
    assert metrics["words_exported"] == len(words) - 2 and metrics["dims"] == 16
    saved = json.loads((cfg.path("metrics") / "export.json").read_text())
    assert saved["projector_words"] == 10


def test_projector_and_mlflow_artifacts(tmp_path):
    cfg, emb = trained_workspace(tmp_path, tracking=True)
    run_stage("export", export.run, cfg)
    projector = cfg.path("export") / "projector"
    words = load_vocab(cfg.path("vocab")).words
    assert (projector / "metadata.tsv").read_text().splitlines() == words[2:12]
    config = (projector / "projector_config.pbtxt").read_text()
    assert 'tensor_name: "embedding/.ATTRIBUTES/VARIABLE_VALUE"' in config
    assert 'metadata_path: "metadata.tsv"' in config
    reader = tf.train.load_checkpoint(str(projector / "embedding.ckpt"))
    np.testing.assert_array_equal(reader.get_tensor("embedding/.ATTRIBUTES/VARIABLE_VALUE"),
                                  emb[2:12])
    client = mlflow.MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("w2v-cnn").experiment_id])
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "export")}
    assert {"export/vectors.txt", "export/vocab.tsv", "export/projector"} <= logged


def test_queries_work_on_the_export_folder(trained_like):
    cfg, _ = trained_like
    run_stage("export", export.run, cfg)
    from_export, from_w2v = load_embeddings(cfg, "export"), load_embeddings(cfg, "word2vec")
    # <unk> differs (mean vector in the export) but is never an answer: same neighbours.
    assert nearby(from_export, ["a0", "b3"], 4) == nearby(from_w2v, ["a0", "b3"], 4)
    assert analogy(from_export, "a0", "a1", "b0") == analogy(from_w2v, "a0", "a1", "b0")


def test_bad_input_fails_cleanly_without_partial_output(trained_like):
    cfg, emb = trained_like
    np.save(cfg.path("word2vec") / "embeddings.npy", emb[:-1])
    with pytest.raises(PipelineError, match="does not match the vocabulary"):
        export.run(cfg)
    emb[3, 0] = np.nan
    np.save(cfg.path("word2vec") / "embeddings.npy", emb)
    with pytest.raises(PipelineError, match="NaN"):
        export.run(cfg)
    (cfg.path("word2vec") / "embeddings.npy").unlink()
    with pytest.raises(PipelineError, match="run the word2vec stage first"):
        export.run(cfg)
    assert not cfg.path("export").exists()
    assert not list(cfg.path("export").parent.glob(".export.*"))


def projector_points(folder) -> tuple[list[str], np.ndarray]:
    """Ask TensorBoard's own projector plugin (its HTTP routes, in process) what it shows for
    `tensorboard --logdir folder`: the labels and the [n, d] tensor of the one run."""
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.projector.projector_plugin import ProjectorPlugin
    from werkzeug.test import Client

    plugin = ProjectorPlugin(base_plugin.TBContext(logdir=str(folder), data_provider=None))
    client = Client(lambda env, start: plugin.get_plugin_apps()[env["PATH_INFO"]](env, start))
    runs = json.loads(client.get("/runs").get_data())
    assert runs == ["."], f"the projector finds no checkpoint in {folder}: runs {runs}"
    config = json.loads(client.get("/info", query_string={"run": "."}).get_data())
    (embedding,) = config["embeddings"]
    name = embedding["tensorName"]
    labels = client.get("/metadata", query_string={"run": ".", "name": name}).get_data(True)
    raw = client.get("/tensor", query_string={"run": ".", "name": name}).get_data()
    shape = embedding["tensorShape"]
    return labels.splitlines(), np.frombuffer(raw, np.float32).reshape(shape)


def test_tensorboard_projector_shows_labelled_points(tmp_path):
    """`tensorboard --logdir data/export/projector` (and data/word2vec/tensorboard, the same
    writer) opens the projector with one labelled point per word."""
    cfg, emb = trained_workspace(tmp_path)
    run_stage("export", export.run, cfg)
    labels, points = projector_points(cfg.path("export") / "projector")
    assert labels == load_vocab(cfg.path("vocab")).words[2:12]
    np.testing.assert_array_equal(points, emb[2:12])
