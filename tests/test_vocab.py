"""The vocab stage: counts, reserved rows, word2vec.c sub-sampling, noise, loader, encoder."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tasks import vocab
from tasks.core.errors import PipelineError
from tasks.text.vocabulary import PAD, UNK, encode_file, load_vocab

REPO = Path(__file__).resolve().parents[1]
# Counts: a 6, b 4, c 4, d 2, e 1  (b and c tie: ordered by word).
CORPUS = "a b c a\nc b a a\n\nd e a b\nc c b a d\n"


def write_corpus(root: Path, text: str = CORPUS) -> Path:
    path = root / "data" / "prepared" / "corpus.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def read_tsv(root: Path) -> list[list[str]]:
    return [r.split("\t") for r in (root / "data" / "vocab" / "vocab.tsv").read_text().splitlines()]


def test_table_order_reserved_rows_and_counts(tmp_path, make_cfg):
    write_corpus(tmp_path)
    metrics = vocab.run(make_cfg(**{"vocab.min_count": 2, "vocab.sample": 0.0}))
    table = read_tsv(tmp_path)
    assert table[0] == ["index", "word", "count", "keep_prob", "noise_prob"]
    assert [(r[0], r[1], r[2]) for r in table[1:]] == [
        ("0", "<pad>", "0"), ("1", "<unk>", "1"), ("2", "a", "6"), ("3", "b", "4"),
        ("4", "c", "4"), ("5", "d", "2")]
    assert [r[3] for r in table[1:3]] == ["0", "0"] and [r[4] for r in table[1:3]] == ["0", "0"]
    assert {r[3] for r in table[3:]} == {"1"}  # sample 0: keep everything
    assert metrics == {
        "vocab_size": 6, "corpus_tokens": 17, "corpus_sentences": 5, "corpus_types": 5,
        "oov_tokens": 1, "oov_rate": round(1 / 17, 6), "coverage": round(16 / 17, 6),
        "type_coverage": 0.8, "kept_fraction": 1.0}


def test_keep_prob_and_noise_match_hand_computation(tmp_path, make_cfg):
    write_corpus(tmp_path)
    vocab.run(make_cfg(**{"vocab.min_count": 2, "vocab.sample": 0.05, "vocab.noise_power": 0.75}))
    v = load_vocab(tmp_path / "data" / "vocab")
    # In-vocabulary total T = 6 + 4 + 4 + 2 = 16, t*T = 0.8.
    # keep(a) = (sqrt(6/0.8) + 1) * 0.8/6 = 0.49848; keep(b) = (sqrt(5) + 1) * 0.2 = 0.64721;
    # keep(d) = (sqrt(2.5) + 1) * 0.4 = 1.0325 -> capped at 1.
    assert v.keep_prob[2] == pytest.approx(0.498482, abs=1e-6)
    assert v.keep_prob[3] == v.keep_prob[4] == pytest.approx(0.647214, abs=1e-6)
    assert v.keep_prob[5] == 1.0
    assert v.keep_prob[2] == pytest.approx((math.sqrt(6 / 0.8) + 1) * 0.8 / 6, rel=1e-6)
    noise = np.array([6, 4, 4, 2]) ** 0.75
    np.testing.assert_allclose(v.noise_prob[2:], noise / noise.sum(), rtol=1e-6)
    assert v.noise_prob.sum() == pytest.approx(1.0, abs=1e-6)
    assert v.noise_prob[PAD] == v.noise_prob[UNK] == 0 and v.keep_prob[:2].tolist() == [0, 0]
    # The TSV carries the same numbers as the npz.
    tsv = read_tsv(tmp_path)[1:]
    np.testing.assert_allclose([float(r[3]) for r in tsv], v.keep_prob, rtol=1e-6)
    np.testing.assert_allclose([float(r[4]) for r in tsv], v.noise_prob, rtol=1e-6)


def test_min_count_and_max_size(tmp_path, make_cfg):
    write_corpus(tmp_path)
    metrics = vocab.run(make_cfg(**{"vocab.min_count": 1, "vocab.max_size": 4}))
    assert [r[1] for r in read_tsv(tmp_path)[1:]] == ["<pad>", "<unk>", "a", "b"]
    assert read_tsv(tmp_path)[2][2] == "7"  # <unk> = c (4) + d (2) + e (1)
    assert metrics["vocab_size"] == 4 and metrics["oov_tokens"] == 7
    vocab.run(make_cfg(**{"vocab.min_count": 1}))
    assert [r[1] for r in read_tsv(tmp_path)[1:]] == ["<pad>", "<unk>", "a", "b", "c", "d", "e"]
    vocab.run(make_cfg(**{"vocab.min_count": 4}))
    assert [r[1] for r in read_tsv(tmp_path)[1:]] == ["<pad>", "<unk>", "a", "b", "c"]


def test_load_vocab_round_trip_and_encode(tmp_path, make_cfg):
    write_corpus(tmp_path)
    vocab.run(make_cfg(**{"vocab.min_count": 2}))
    v = load_vocab(tmp_path / "data" / "vocab")
    assert v.words == ["<pad>", "<unk>", "a", "b", "c", "d"] and v.size == 6
    assert v.index == {w: i for i, w in enumerate(v.words)}
    assert v.counts.dtype == np.int64 and v.counts.tolist() == [0, 1, 6, 4, 4, 2]
    assert v.keep_prob.dtype == np.float32 and v.noise_prob.dtype == np.float32
    assert (PAD, UNK) == (0, 1) == (v.PAD, v.UNK)
    ids = v.encode(["d", "zzz", "a", "e"])
    assert ids.dtype == np.int32 and ids.tolist() == [5, UNK, 2, UNK]
    assert v.encode("a b  q").tolist() == [2, 3, UNK] and v.encode([]).shape == (0,)
    with pytest.raises(PipelineError, match=r"run the vocab stage first"):
        load_vocab(tmp_path / "nowhere")


def test_encode_file(tmp_path, make_cfg):
    path = write_corpus(tmp_path)
    vocab.run(make_cfg(**{"vocab.min_count": 2}))
    v = load_vocab(tmp_path / "data" / "vocab")
    ids, starts = encode_file(path, v)
    assert ids.dtype == np.int32 and starts.dtype == np.int64
    expected = [v.encode(line).tolist() for line in CORPUS.splitlines() if line]
    assert ids.tolist() == sum(expected, [])
    assert starts.tolist() == [0, 4, 8, 12]  # the blank line is not a sentence
    assert np.split(ids, starts[1:])[3].tolist() == expected[3]


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ("\n\n", {}, r"empty corpus \(no tokens\)"),
        ("a b c\n", {"vocab.min_count": 2},
         r"^all-unknown corpus: no word occurs >= vocab.min_count = 2 times$"),
        (None, {}, r"corpus.txt not found: run the prepare stage first"),
    ],
)
def test_bad_corpus_fails_without_output(tmp_path, make_cfg, text, overrides, message):
    if text is not None:
        write_corpus(tmp_path, text)
    with pytest.raises(PipelineError, match=message):
        vocab.run(make_cfg(**overrides))
    assert not (tmp_path / "data" / "vocab").exists()


@pytest.mark.slow  # two stage processes + a fresh MLflow SQLite store: 20-50 s on busy cores
def test_cli_metrics_and_mlflow_artifact(tmp_path, repo_params):
    import mlflow

    write_corpus(tmp_path)
    params = dict(repo_params, vocab={**repo_params["vocab"], "min_count": 2})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    command = [sys.executable, "-m", "tasks.vocab", "--params", str(tmp_path / "params.yaml")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "metrics" / "vocab.json").read_text())
    assert metrics["vocab_size"] == 6 and metrics["oov_tokens"] == 1
    assert 0 < metrics["kept_fraction"] < 1  # sample 1e-3 on a tiny corpus discards a lot
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    (run,) = mlflow.search_runs(experiment_names=[params["tracking"]["experiment"]],
                                output_format="list")
    assert run.data.metrics["vocab_size"] == 6 and run.data.tags["stage"] == "vocab"
    artifacts = mlflow.MlflowClient().list_artifacts(run.info.run_id)
    assert "vocab.tsv" in {a.path for a in artifacts}
    bad = subprocess.run([*command, "--set", "vocab.max_size=2"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == (
        "error: params: vocab.max_size: must be 0 (no limit) or >= 3 (<pad>, <unk>, a word)")


def test_encode_file_irregular_spacing_and_empty_file(tmp_path, make_cfg):
    write_corpus(tmp_path)
    vocab.run(make_cfg(**{"vocab.min_count": 2}))
    v = load_vocab(tmp_path / "data" / "vocab")
    odd = tmp_path / "odd.txt"
    lines = CORPUS.splitlines()
    odd.write_text("  " + "   ".join(lines[0].split()) + " \n\n\t\n" + "\n".join(lines[1:]) + "\n")
    ids, starts = encode_file(odd, v)
    expected = [v.encode(line).tolist() for line in lines if line.strip()]
    assert ids.tolist() == sum(expected, [])
    assert np.diff([*starts.tolist(), len(ids)]).tolist() == [len(e) for e in expected]
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    ids, starts = encode_file(empty, v)
    assert ids.shape == (0,) and starts.shape == (0,) and ids.dtype == np.int32
