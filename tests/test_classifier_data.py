"""tasks.classifier.data: in-graph clean_str, vectorisation, splits/folds and bad classifier inputs."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from cnn_fixtures import DIMS, TINY, read_vocab_words, write_inputs, write_tsv

from tasks.classifier.data import (
    SentenceVectorizer,
    load_embeddings,
    load_folds,
    make_dataset,
    read_labels,
    vectorize,
    vocabulary_words,
)
from tasks.core.errors import PipelineError
from tasks.text.normalize import clean_str

TRICKY = [
    "It's good, isn't it?", "We'll see (maybe)!", "they've  gone\tHOME\n", "a -- b ; c", "",
    "   ", "Don't you'd've?!", "café crème brûlée", "l'été à Paris", "``Quoted'' text",
    "emoji 🙂 in the middle", "tabs\t\tand\nnewlines\r\n", "(((nested)))", "A.B.C. e-mail",
    "n't 's 've 're 'd 'll", "ALL CAPS SHOUTING!!!", "mixed\u00a0nbsp\u2009thin space",
    "zero\u200bwidth", "1,000,000 dollars?", "back`tick`s", "'s'll'd", "trailing    ",
]


def graph_tokens(texts: list[str], lowercase: bool = True) -> list[list[str]]:
    layer = SentenceVectorizer(["<pad>", "<unk>", "the"], max_length=4, lowercase=lowercase)
    cleaned = layer.clean(tf.constant(texts, dtype=tf.string)).numpy()
    return [t.decode("utf-8").split() for t in cleaned]


@pytest.mark.parametrize("lowercase", [True, False])
def test_in_graph_normalisation_matches_clean_str(lowercase):
    expected = [clean_str(t, lowercase).split() for t in TRICKY]
    assert graph_tokens(TRICKY, lowercase) == expected
    if lowercase:
        assert expected[6] == ["do", "n't", "you", "'d", "'ve", "?", "!"]
    # Prepared text is already clean: a second pass (as in training) changes nothing.
    again = [" ".join(t) for t in expected]
    assert graph_tokens(again, lowercase) == expected


def test_vectorizer_ids_are_vocab_rows_with_unk_pad_and_truncation():
    words = ["<pad>", "<unk>", "the", "movie", "is", "good", "n't"]
    layer = SentenceVectorizer(words, max_length=5)
    ids = vectorize(layer, ["The movie is GOOD!", "zzz qqq", "", "isn't the movie the movie good"])
    assert ids.dtype == np.int32 and ids.shape == (4, 5)
    assert ids[0].tolist() == [2, 3, 4, 5, 1]  # "!" is not in the vocabulary -> <unk>
    assert ids[1].tolist() == [1, 1, 0, 0, 0]  # only unknown words: all <unk>, then <pad>
    assert ids[2].tolist() == [0, 0, 0, 0, 0]  # empty sentence: all <pad>
    assert ids[3].tolist() == [4, 6, 2, 3, 2]  # "is n't the movie the" + truncated tail
    assert vectorize(layer, []).shape == (0, 5)


def test_dataset_shuffle_is_seeded_per_epoch():
    ids = np.arange(40, dtype=np.int32).reshape(20, 2)
    labels = np.arange(20, dtype=np.int32)

    def order(seed):
        return np.concatenate([y.numpy() for _, y in make_dataset(ids, labels, 6, seed)]).tolist()

    assert order(1) == order(1)
    assert order(1) != order(2)
    assert sorted(order(1)) == list(range(20))
    assert order(None) == list(range(20))


def test_split_protocol_reads_contract_files(tmp_path, make_cfg):
    paths = write_inputs(tmp_path, sizes=(10, 4, 4))
    cfg = make_cfg(**TINY)
    names = read_labels(paths["prepared"])
    [fold] = load_folds(cfg, names)
    assert names == ["neg", "pos"] and fold.name == "split"
    assert len(fold.train.texts) == 10 and set(fold.train.labels.tolist()) == {0, 1}
    first = (paths["prepared"] / "train.tsv").read_text().splitlines()[1].split("\t")
    assert fold.train.texts[0] == first[1] and names[fold.train.labels[0]] == first[0]
    assert vocabulary_words(paths["vocab"]) == read_vocab_words(paths["vocab"])


def test_kfold_protocol_partitions_all_tsv(tmp_path, make_cfg):
    write_inputs(tmp_path, sizes=(30, 10, 10), folds=5)
    cfg = make_cfg(**{**TINY, "prepare.folds": 5, "cnn.protocol": "kfold"})
    folds = load_folds(cfg, ["neg", "pos"])
    assert [f.name for f in folds] == [f"fold-{k:02d}" for k in range(5)]
    tests = [t for f in folds for t in f.test.texts]
    assert len(tests) == 50  # every example is tested exactly once
    for f in folds:
        assert len(f.train.texts) + len(f.dev.texts) + len(f.test.texts) == 50
        assert len(f.dev.texts) == 4  # dev_fraction 0.1 of each class of the 40 training rows
        assert set(f.dev.labels.tolist()) == {0, 1}
    cfg = make_cfg(**{**TINY, "prepare.folds": 4, "cnn.protocol": "kfold"})
    with pytest.raises(PipelineError, match="prepare.folds >= 2 and all.tsv folds 0..3"):
        load_folds(cfg, ["neg", "pos"])


def test_one_fold_alone_is_the_same_fold_as_in_the_full_run(tmp_path, make_cfg):
    write_inputs(tmp_path, sizes=(30, 10, 10), folds=5)
    every = load_folds(make_cfg(**{**TINY, "prepare.folds": 5, "cnn.protocol": "kfold"}),
                       ["neg", "pos"])
    for k in (0, 3):
        cfg = make_cfg(**{**TINY, "prepare.folds": 5, "cnn.protocol": "kfold", "cnn.fold": k})
        [alone] = load_folds(cfg, ["neg", "pos"])
        assert alone.name == every[k].name
        for split in ("train", "dev", "test"):  # same rows, same seeded dev slice
            assert getattr(alone, split).texts == getattr(every[k], split).texts
    cfg = make_cfg(**{**TINY, "prepare.folds": 5, "cnn.protocol": "kfold", "cnn.fold": 5})
    with pytest.raises(PipelineError, match="cnn.fold is 5 but prepare.folds gives folds 0..4"):
        load_folds(cfg, ["neg", "pos"])


def test_bad_splits_fail_with_one_line_reasons(tmp_path, make_cfg):
    paths = write_inputs(tmp_path, sizes=(10, 4, 4))
    cfg, names = make_cfg(**TINY), ["neg", "pos"]
    train = paths["prepared"] / "train.tsv"
    cases = [
        ([], "the training split is empty"),
        ([["pos", "good movie"], ["pos", "great film"]], "one class ('pos'); need at least two"),
        ([["pos", "good"], ["meh", "so so"]], "label 'meh' is not in labels.txt"),
    ]
    for rows, message in cases:
        write_tsv(train, ["label", "text"], rows)
        with pytest.raises(PipelineError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_folds(cfg, names)
    write_tsv(train, ["label", "text"], [["neg", "bad film"], ["pos", "good"]])
    (paths["prepared"] / "labels.txt").write_text("neg\npos\nmixed\n")
    write_tsv(paths["prepared"] / "test.tsv", ["label", "text"], [["mixed", "good but bad"]])
    with pytest.raises(PipelineError, match="label 'mixed' in the test split does not occur"):
        load_folds(cfg, ["neg", "pos", "mixed"])
    write_tsv(paths["prepared"] / "dev.tsv", ["label", "text"], [])
    with pytest.raises(PipelineError, match="the dev split is empty"):
        load_folds(cfg, ["neg", "pos", "mixed"])


def test_embeddings_checks(tmp_path):
    paths = write_inputs(tmp_path)
    words, vectors = load_embeddings(paths["export"], DIMS)
    assert vectors.shape == (len(words), DIMS) and vectors.dtype == np.float32
    with pytest.raises(PipelineError, match=f"cnn.embedding_dims is 300 but .* holds {DIMS}-dim"):
        load_embeddings(paths["export"], 300)
    np.save(paths["export"] / "embeddings.npy", vectors[:-1])
    with pytest.raises(PipelineError, match="words but .* rows"):
        load_embeddings(paths["export"], DIMS)
    (paths["export"] / "embeddings.npy").unlink()
    with pytest.raises(PipelineError, match="embeddings.npy: not found .*embedding_init: rand"):
        load_embeddings(paths["export"], DIMS)
