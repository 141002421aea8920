"""The one params parser: every bad params file fails before work, naming the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from tasks.core.errors import ParamsError
from tasks.core.params import Config, load_params, parse
from tasks.core.stage import parse_overrides

REPO = Path(__file__).resolve().parents[1]


def test_repo_params_parse_into_frozen_typed_config():
    cfg = load_params(REPO / "params.yaml")
    assert isinstance(cfg, Config)
    assert cfg.root == REPO
    assert isinstance(cfg.word2vec.dims, int)
    assert isinstance(cfg.vocab.sample, float)
    assert cfg.cnn.filter_windows == (3, 4, 5)
    assert cfg.path("vocab") == REPO / "data" / "vocab"
    assert cfg.mnist.protocol == "test-split" and cfg.mnist.cnn.filters == (16, 32)
    assert isinstance(cfg.mnist.cnn.epochs, float) and cfg.mnist.softmax.batch_size == 100
    # the standard protocol ignores test_fraction (it tests on the whole 10k)
    standard = parse(yaml.safe_load((REPO / "params.yaml").read_text()), REPO,
                     {"mnist.protocol": "standard", "mnist.test_fraction": 0.0})
    assert standard.mnist.protocol == "standard"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.word2vec.dims = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.data.custom["x"] = 1  # type: ignore[index]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"vocab.min_cont": 3}, "vocab.min_cont: unknown key"),
        ({"vocab.min_count": "five"}, "vocab.min_count: expected an integer"),
        ({"vocab.min_count": 0}, "vocab.min_count: must be >= 1"),
        ({"vocab.min_count": True}, "vocab.min_count: expected an integer"),
        ({"word2vec.model": "glove"}, "word2vec.model: expected one of"),
        ({"word2vec.learning_rate": -1}, "word2vec.learning_rate: must be > 0"),
        ({"word2vec.threads": 0}, "word2vec.threads: must be >= 1"),
        ({"word2vec.threads": 2.5}, "word2vec.threads: expected an integer"),
        ({"cnn.filter_windows": [3, "x"]}, "cnn.filter_windows[1]: expected an integer"),
        ({"cnn.filter_windows": []}, "cnn.filter_windows: need at least one window"),
        ({"prepare.dev_fraction": 0.6, "prepare.test_fraction": 0.5}, "prepare.dev_fraction"),
        ({"prepare.lowercase": "yes"}, "prepare.lowercase: expected true/false"),
        ({"data.corpus": ["brwon"]}, "data.corpus[0]: unknown dataset 'brwon'"),
        ({"data.labelled": "brown"}, "data.labelled: 'brown' is not a labelled dataset"),
        ({"data.custom.mine": {"format": "csv"}}, "data.custom.mine.file: format csv needs"),
        ({"data.custom.mine": {"format": "xls", "file": "a"}}, "data.custom.mine.format"),
        ({"paths.raw": 3}, "paths.raw: expected a string"),
        ({"word2vec.learning_rate": float("inf")}, "word2vec.learning_rate: expected a finite"),
        ({"cnn.dropout": float("nan")}, "cnn.dropout: expected a finite number"),
        ({"download.backoff": float("-inf")}, "download.backoff: expected a finite number"),
        ({"data.custom.mine": {"format": "class_files", "files": {
            "pos": "../../../etc/passwd", "neg": "/etc/services"}}},
         "data.custom.mine.files.pos: '../../../etc/passwd' resolves to /etc/passwd, outside"),
        ({"data.custom.mine": {"format": "csv", "file": "/etc/services"}},
         "data.custom.mine.file: '/etc/services' resolves to /etc/services, outside data/custom/"),
        ({"data.custom.mine": {"format": "csv", "file": "data/custom/../../c.csv"}},
         "data.custom.mine.file: 'data/custom/../../c.csv' resolves to"),
        ({"data.custom.mine": {"format": "csv", "file": "params.yaml"}},
         "data.custom.mine.file: 'params.yaml' resolves to"),
        ({"data.custom.mine": {"format": "csv", "file": "data/custom/a\0b"}},
         "data.custom.mine.file: bad path"),
        ({"data.corpus": ["mnist-t10k-images"]}, "data.corpus[0]: unknown dataset"),  # not text
        ({"mnist.protocol": "kfold"}, "mnist.protocol: expected one of 'test-split' | "
                                      "'standard'"),
        ({"mnist.dev_fraction": 0.5, "mnist.test_fraction": 0.5}, "mnist.dev_fraction: dev"),
        ({"mnist.test_fraction": 0.0}, "mnist.test_fraction: test-split needs a test part"),
        ({"mnist.softmax.learning_rate": 0}, "mnist.softmax.learning_rate: must be > 0"),
        ({"mnist.softmax.reduction": "max"}, "mnist.softmax.reduction: expected one of"),
        ({"mnist.softmax.steps": 2.5}, "mnist.softmax.steps: expected an integer"),
        ({"mnist.softmax.lr": 0.1}, "mnist.softmax.lr: unknown key"),
        ({"mnist.cnn.filters": [16]}, "mnist.cnn.filters: two conv layers"),
        ({"mnist.cnn.dropout": 1.0}, "mnist.cnn.dropout: must be < 1"),
        ({"mnist.cnn.epochs": 0}, "mnist.cnn.epochs: must be > 0"),
        ({"paths.mnist": None}, "paths.mnist: expected a string"),
    ],
)
def test_bad_values_name_the_key(repo_params, overrides, message):
    with pytest.raises(ParamsError) as info:
        parse(repo_params, ".", overrides)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_and_missing_keys_in_the_file(tmp_path, repo_params):
    bad = dict(repo_params, vocab={**repo_params["vocab"], "min_cuont": 2})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ParamsError, match=r"vocab.min_cuont: unknown key"):
        load_params(tmp_path / "params.yaml")
    missing = dict(repo_params)
    del missing["export"]
    with pytest.raises(ParamsError, match=r"^export: missing key"):
        parse(missing)
    with pytest.raises(ParamsError, match="not valid YAML"):
        (tmp_path / "broken.yaml").write_text("a: [1,\n")
        load_params(tmp_path / "broken.yaml")
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")


def test_custom_dataset_declared_in_params_is_a_labelled_choice(repo_params):
    cfg = parse(repo_params, ".", {
        "data.custom.tickets": {"format": "tsv", "file": "data/custom/t.tsv",
                                "text_column": "body", "label_column": "queue"},
        "data.labelled": "tickets",
    })
    assert cfg.data.labelled == "tickets"
    assert cfg.data.custom["tickets"].text_column == "body"


def test_custom_files_are_confined_to_data_custom_symlinks_followed(tmp_path, make_cfg):
    custom = tmp_path / "data" / "custom"
    custom.mkdir(parents=True)
    (custom / "pos.txt").write_text("good\n")
    (custom / "alias.txt").symlink_to(custom / "pos.txt")          # inside: fine
    (custom / "escape.txt").symlink_to("/etc/passwd")              # points out: refused
    spec = {"format": "class_files", "files": {"pos": "data/custom/alias.txt",
                                               "neg": "data/custom/sub/../pos.txt"}}
    cfg = make_cfg(**{"data.custom.mine": spec, "data.labelled": "mine"})
    assert cfg.data.custom["mine"].files["pos"] == "data/custom/alias.txt"
    spec = {"format": "csv", "file": "data/custom/escape.txt"}
    with pytest.raises(ParamsError, match=r"^data.custom.mine.file: 'data/custom/escape.txt' "
                                          r"resolves to /etc/passwd, outside data/custom/"):
        make_cfg(**{"data.custom.mine": spec})


def test_flat_view_and_cli_overrides(repo_params):
    cfg = parse(repo_params, ".", parse_overrides(["cnn.filter_windows=[2, 3]", "seed=7"]))
    flat = cfg.flat()
    assert flat["cnn.filter_windows"] == [2, 3]
    assert flat["seed"] == 7
    assert "root" not in flat
    with pytest.raises(ParamsError, match="key=value"):
        parse_overrides(["seed"])


def test_small_floats_written_by_dvc_are_read_as_numbers(repo_params):
    # DVC writes 0.00001 as `1e-05`, which PyYAML's YAML 1.1 resolver leaves a string.
    cfg = parse(repo_params, ".", {"vocab.sample": yaml.safe_load("1e-05")})
    assert cfg.vocab.sample == 1e-05
    with pytest.raises(ParamsError, match="vocab.sample: expected a number"):
        parse(repo_params, ".", {"vocab.sample": "small"})


def test_the_confinement_folder_is_what_dvc_tracks_for_download_and_prepare(repo_params):
    # data.custom files are confined to paths.custom, and that same folder is a DVC dep of
    # the stages reading them, so editing one re-runs them (docs/data.md).
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name in ("download", "prepare"):
        assert "${paths.custom}" in stages[name]["deps"], name
    assert repo_params["paths"]["custom"] == "data/custom"
    assert (REPO / "data" / "custom").is_dir()
