"""Analogy and WordSim-353 evaluation on hand-made vectors with known answers, cross-checked
against gensim's own evaluators (the reference the stage's numbers are compared with)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from gensim.models import KeyedVectors

from tasks.core.errors import PipelineError
from tasks.embeddings.evaluation import analogy_accuracy, evaluate, wordsim_spearman

# Words are sums of orthogonal attribute directions, so 3CosAdd has exact answers:
# king - man + woman = queen, paris - france + italy = rome. The syntactic question
# (big : bigger :: small : smaller) is answered wrongly on purpose: "tiny" lies exactly on
# the target while "smaller" leans off it.
WORDS = ["<pad>", "<unk>", "man", "woman", "king", "queen", "france", "paris", "italy",
         "rome", "big", "bigger", "small", "smaller", "tiny"]
DIMS = ["male", "female", "person", "royal", "c1", "c2", "country", "capital", "s1", "s2",
        "adj", "comparative", "x"]
PARTS = {"man": "male person", "woman": "female person", "king": "male royal",
         "queen": "female royal", "france": "c1 country", "paris": "c1 capital",
         "italy": "c2 country", "rome": "c2 capital", "big": "s1 adj",
         "bigger": "s1 comparative", "small": "s2 adj", "smaller": "s2 comparative x",
         "tiny": "s2 comparative"}
VECTORS = np.array([[float(d in PARTS.get(w, "").split()) for d in DIMS] for w in WORDS],
                   np.float32)
QUESTIONS = """: family
man king woman queen
MAN KING Woman Queen
man king woman unknownword
: capital-common-countries
france paris italy rome
: gram2-comparative
big bigger small smaller
"""


@pytest.fixture
def files(tmp_path):
    (tmp_path / "q.txt").write_text(QUESTIONS)
    (tmp_path / "ws.tsv").write_text(
        "# comment line\tignored\nking\tqueen\t9.0\nman\twoman\t8.0\nking\tsmall\t1.0\n"
        "paris\tsmall\t0.5\nrome\tnowhere\t3.0\n")
    return tmp_path


def keyed(words, vectors) -> KeyedVectors:
    kv = KeyedVectors(vectors.shape[1])
    kv.add_vectors(list(words[2:]), vectors[2:])
    return kv


def test_analogies_known_answers_and_gensim_agreement(files):
    got = analogy_accuracy(WORDS, VECTORS, files / "q.txt", restrict_vocab=30000)
    assert got["analogy_total"] == 5 and got["analogy_seen"] == 4      # one OOV question
    assert got["analogy_semantic"] == 1.0 and got["analogy_syntactic"] == 0.0
    assert got["analogy_accuracy"] == 0.75
    assert got["analogy_sections"]["family"] == {"correct": 2, "seen": 2, "total": 3,
                                                 "accuracy": 1.0}
    score, sections = keyed(WORDS, VECTORS).evaluate_word_analogies(files / "q.txt",
                                                                    restrict_vocab=30000)
    assert got["analogy_accuracy"] == pytest.approx(score)
    total = next(s for s in sections if s["section"] == "Total accuracy")
    assert len(total["correct"]) + len(total["incorrect"]) == got["analogy_seen"]


def test_restrict_vocab_skips_questions_outside_the_top_words(files):
    # The first 11 real words exclude small/smaller/tiny: the syntactic question is skipped.
    got = analogy_accuracy(WORDS, VECTORS, files / "q.txt", restrict_vocab=11)
    assert got["analogy_seen"] == 3 and got["analogy_accuracy"] == 1.0
    score, _ = keyed(WORDS, VECTORS).evaluate_word_analogies(files / "q.txt", restrict_vocab=11)
    assert score == pytest.approx(got["analogy_accuracy"])


def test_wordsim_spearman_skips_and_counts_oov(files):
    got = wordsim_spearman(WORDS, VECTORS, files / "ws.tsv")
    assert got["wordsim353_pairs"] == 4 and got["wordsim353_oov"] == 1
    pearson, spearman, oov = keyed(WORDS, VECTORS).evaluate_word_pairs(files / "ws.tsv")
    assert got["wordsim353_spearman"] == pytest.approx(spearman.statistic, abs=1e-6)
    assert oov == pytest.approx(20.0)                  # gensim reports the OOV percentage


def test_evaluate_reads_params_and_names_a_missing_file(files, make_cfg):
    cfg = make_cfg(files, **{"word2vec.analogy_file": "q.txt", "word2vec.wordsim_file": "ws.tsv"})
    metrics = evaluate(cfg, SimpleNamespace(words=WORDS), VECTORS)
    assert metrics["analogy_accuracy"] == 0.75 and metrics["wordsim353_pairs"] == 4
    bad = make_cfg(files, **{"word2vec.analogy_file": "none.txt"})
    with pytest.raises(PipelineError, match=r"^word2vec.analogy_file: .*none.txt not found"):
        evaluate(bad, SimpleNamespace(words=WORDS), VECTORS)
