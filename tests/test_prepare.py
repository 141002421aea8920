"""The prepare stage: corpus + seeded, stratified splits, on small raw trees."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import mlflow
import pytest
import yaml

from tasks import prepare
from tasks.core import tracking
from tasks.core.errors import PipelineError
from tasks.core.stage import run_stage
from tasks.text.normalize import clean_str

REPO = Path(__file__).resolve().parents[1]
ADJ = ["good", "bad", "slow", "witty", "dull", "bright", "odd", "long", "warm", "cold", "tame"]
NOUN = ["plot", "cast", "score", "script", "ending", "pace", "hero", "villain", "twist"]


def snippets(n: int, tag: str) -> str:
    # 7 tokens, or 9 for every fourth snippet.
    return "".join(f"the {ADJ[i % 11]} {NOUN[i % 9]} , {tag} {i} !{' truly so' * (i % 4 == 0)}\n"
                   for i in range(n))


def make_raw(root: Path, n_pos: int = 61, n_neg: int = 37) -> None:
    """sentence_polarity (imbalanced on purpose), brown and abc, extracted as the zips are."""
    raw = root / "data" / "raw"
    files = {
        "sentence_polarity/rt-polarity.pos": snippets(n_pos, "yes"),
        "sentence_polarity/rt-polarity.neg": snippets(n_neg, "no"),
        "brown/ca01": "\n\n\tThe/at jury/nn said/vbd ``/`` fine/jj ''/'' ./.\n\n\tNo/rb ./.\n",
        "brown/cats.txt": "ca01 news\n",
        "abc/rural.txt": "Rain fell on Tuesday. Farmers didn't mind!\n\n...\n",
    }
    for rel, text in files.items():
        name = rel.split("/")[0]
        path = raw / name / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def cfg(tmp_path, make_cfg):
    make_raw(tmp_path)

    def factory(**overrides):
        base = {"data.corpus": ["sentence_polarity", "brown", "abc"],
                "data.labelled": "sentence_polarity", "prepare.folds": 5}
        return make_cfg(tmp_path, **{**base, **overrides})

    return factory


def rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()]


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_outputs_and_metrics(cfg, tmp_path):
    # Not valid UTF-8 (0xe9 is latin-1 for é): decoded as latin-1 and counted.
    science = tmp_path / "data" / "raw" / "abc" / "abc" / "science.txt"
    science.write_bytes(b"Caf\xe9 owners rejoiced.\r\n")
    metrics = prepare.run(cfg())
    out = tmp_path / "data" / "prepared"
    assert sorted(p.name for p in out.iterdir()) == [
        "all.tsv", "corpus.txt", "dev.tsv", "labels.txt", "test.tsv", "train.tsv"]
    corpus = (out / "corpus.txt").read_text().splitlines()
    # Datasets in data.corpus order; the labelled dataset's text is included as sentences.
    assert corpus[0] == "the good plot , no 0 ! truly so"  # neg file is read before pos
    assert corpus[-5:] == ["the jury said fine", "no", "rain fell on tuesday",
                           "farmers did n't mind !", "caf owners rejoiced"]
    assert len(corpus) == 98 + 5 and metrics["dropped_sentences"] == 1  # "..." cleans to nothing
    assert metrics["corpus_sentences"] == len(corpus)
    assert metrics["corpus_tokens"] == sum(len(line.split(" ")) for line in corpus)
    assert metrics["tokens_brown"] == 5 and metrics["tokens_abc"] == 12
    assert metrics["datasets"]["abc"] == {"sentences": 3, "tokens": 12, "dropped": 1}
    assert (out / "labels.txt").read_text() == "neg\npos\n"
    table = rows(out / "all.tsv")
    assert table[0] == ["label", "text", "split", "fold"] and len(table) == 99
    assert all(len(r) == 4 for r in table)
    for split in ("train", "dev", "test"):
        part = rows(out / f"{split}.tsv")
        assert part[0] == ["label", "text"]
        assert part[1:] == [r[:2] for r in table[1:] if r[2] == split]
        assert metrics[f"{split}_pos"] + metrics[f"{split}_neg"] == len(part) - 1
        assert metrics["split_counts"][split] == {"neg": metrics[f"{split}_neg"],
                                                  "pos": metrics[f"{split}_pos"]}
    assert table[1][1] == clean_str("The good plot, no 0! Truly so")
    assert metrics["examples"] == 98 and metrics["classes"] == 2
    assert metrics["example_tokens_max"] == 9 and metrics["dropped_examples"] == 0
    assert metrics["example_tokens_mean"] == round((98 * 7 + (16 + 10) * 2) / 98, 3)
    assert metrics["latin1_files"] == 1
    flat = {k: v for k, v in metrics.items() if not isinstance(v, dict | list)}
    assert all(isinstance(v, int | float) for v in flat.values())


def test_split_is_stratified(cfg, tmp_path):
    c = cfg(**{"prepare.dev_fraction": 0.15, "prepare.test_fraction": 0.2})
    prepare.run(c)
    table = rows(tmp_path / "data" / "prepared" / "all.tsv")[1:]
    totals = Counter(r[0] for r in table)
    for split, fraction in (("dev", 0.15), ("test", 0.2), ("train", 0.65)):
        have = Counter(r[0] for r in table if r[2] == split)
        for label, n in totals.items():
            assert abs(have[label] - n * fraction) <= 1, (split, label, have[label])


def test_same_seed_same_bytes_other_seed_other_split(cfg, tmp_path):
    out = tmp_path / "data" / "prepared"
    prepare.run(cfg())
    first = digest(out)
    prepare.run(cfg())
    assert digest(out) == first
    prepare.run(cfg(seed=7))
    second = digest(out)
    assert second["corpus.txt"] == first["corpus.txt"]
    assert second["train.tsv"] != first["train.tsv"] and second["all.tsv"] != first["all.tsv"]


def test_folds_balanced_each_example_once(cfg, tmp_path):
    prepare.run(cfg(**{"prepare.folds": 4}))
    table = rows(tmp_path / "data" / "prepared" / "all.tsv")[1:]
    folds = [int(r[3]) for r in table]
    assert set(folds) == {0, 1, 2, 3}  # one fold id per row: each example in exactly one fold
    sizes = Counter(folds).values()
    assert max(sizes) - min(sizes) <= 1
    for label in ("pos", "neg"):
        per_class = Counter(int(r[3]) for r in table if r[0] == label).values()
        assert max(per_class) - min(per_class) <= 1
    prepare.run(cfg(**{"prepare.folds": 0}))
    assert {r[3] for r in rows(tmp_path / "data" / "prepared" / "all.tsv")[1:]} == {"-1"}


def test_min_tokens_drops_short_examples(cfg):
    metrics = prepare.run(cfg(**{"prepare.min_tokens": 3}))
    assert metrics["dropped_sentences"] == 2  # abc's "..." (0 tokens) and brown's "no"
    assert metrics["dropped_examples"] == 0
    metrics = prepare.run(cfg(**{"prepare.min_tokens": 8}))
    # Only every fourth snippet has 9 tokens: 16 of 61 pos, 10 of 37 neg are kept.
    assert metrics["dropped_examples"] == 98 - 26 and metrics["examples"] == 26
    assert metrics["train_pos"] + metrics["dev_pos"] + metrics["test_pos"] == 16
    assert metrics["corpus_sentences"] == 26


def custom(tmp_path: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)


def test_labels_differing_only_in_non_ascii_letters_get_distinct_metric_keys(cfg, tmp_path):
    # Issue #12: "très bien" and "trés bien" both became train_tr_s_bien (one overwrote the
    # other); an emoji label crashed MLflow. Now each label has its own valid key.
    labels = {"tr\u00e8s bien": "a", "tr\u00e9s bien": "b", "\U0001F600": "c", "neg": "d"}
    files = {}
    for i, (label, word) in enumerate(labels.items()):
        files[label] = f"data/custom/{i}.txt"
        custom(tmp_path, {files[label]: "".join(f"{word} film number {n}\n" for n in range(8))})
    c = cfg(**{"data.labelled": "mine", "tracking.enabled": True,
               "data.custom.mine": {"format": "class_files", "files": files}})
    metrics = run_stage("prepare", prepare.run, c)
    per_class = {k: v for k, v in metrics.items()
                 if k.startswith("train_") and k != "train_examples"}
    assert len(per_class) == 4 and sum(per_class.values()) == metrics["train_examples"]
    assert "train_neg" in per_class                      # plain labels keep their plain key
    assert tracking.safe_key("tr\u00e8s bien") != tracking.safe_key("tr\u00e9s bien")
    client = mlflow.MlflowClient()
    (found,) = client.search_runs([client.get_experiment_by_name("w2v-cnn").experiment_id])
    assert {k: int(v) for k, v in found.data.metrics.items() if k in per_class} == per_class


@pytest.mark.parametrize(
    ("overrides", "files", "message"),
    [
        ({"data.corpus": ["abc"], "data.labelled": "mine",
          "data.custom.mine": {"format": "csv", "file": "data/custom/c.csv"}},
         {"data/raw/abc/abc/rural.txt": "... ;;; --\n", "data/custom/c.csv": "text,label\na b,x\nc d,y\n"},
         r"^empty corpus: datasets abc gave no sentences with >= 1 tokens$"),
        ({"data.labelled": "mine", "data.custom.mine": {
            "format": "class_files", "files": {"pos": "data/custom/p.txt", "neg": "data/custom/n.txt"}}},
         {"data/custom/p.txt": "nice\n", "data/custom/n.txt": "\n\n"},
         r"n.txt: class file for label 'neg' has no lines$"),
        ({"data.labelled": "mine", "data.custom.mine": {"format": "csv", "file": "data/custom/c.csv"}},
         {"data/custom/c.csv": "text,label\nfine,x\ngood,x\n"},
         r"^labelled dataset 'mine' has a single class 'x': a classifier needs at least two$"),
        ({"data.corpus": ["brown", "webtext"]}, {},
         r"raw dataset folder .*webtext for 'webtext' is missing: run the download stage first"),
        ({"data.labelled": "mine", "data.custom.mine": {
            "format": "tsv", "file": "data/custom/c.tsv", "text_column": "body"}},
         {"data/custom/c.tsv": "label\ttext\nx\thi\n"},
         r"c.tsv: no column 'body' \(header: label, text\)$"),
    ],
    ids=["empty-corpus", "empty-class-file", "single-class", "missing-raw", "missing-column"],
)
def test_bad_input_fails_cleanly(cfg, tmp_path, overrides, files, message):
    custom(tmp_path, files)
    with pytest.raises(PipelineError, match=message) as info:
        prepare.run(cfg(**overrides))
    assert "\n" not in str(info.value)
    data = tmp_path / "data"
    # no output, no temp leftovers (data/custom holds the inputs)
    assert sorted(p.name for p in data.iterdir() if p.name != "custom") == ["raw"]


def test_failure_keeps_previous_output(cfg, tmp_path):
    prepare.run(cfg())
    before = digest(tmp_path / "data" / "prepared")
    with pytest.raises(PipelineError):
        prepare.run(cfg(**{"data.corpus": ["webtext"]}))
    assert digest(tmp_path / "data" / "prepared") == before


@pytest.mark.slow  # two stage processes + a fresh MLflow SQLite store: 20-50 s on busy cores
def test_cli(tmp_path, repo_params):
    make_raw(tmp_path)
    params = dict(repo_params, data={**repo_params["data"], "corpus": ["sentence_polarity", "abc"]})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    command = [sys.executable, "-m", "tasks.prepare", "--params", str(tmp_path / "params.yaml")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "metrics" / "prepare.json").read_text())
    assert metrics["corpus_sentences"] == 98 + 2 and metrics["examples"] == 98
    assert metrics["train_pos"] + metrics["dev_pos"] + metrics["test_pos"] == 61
    assert (tmp_path / "data" / "prepared" / "train.tsv").is_file()
    bad = subprocess.run([*command, "--set", "prepare.folds=1"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == \
        "error: params: prepare.folds: must be 0 (none) or >= 2, got 1"
