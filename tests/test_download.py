"""The download stage: registry selection, DATASET_REGISTRY, custom files, idempotence, CLI.

The datasets are the tiny fixture zips (tests/fixtures.py), served from a local mirror folder
or a real loopback HTTP server; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml
from fixtures import (
    NLTK_NAMES,
    Fault,
    FaultyServer,
    build_fixtures,
    build_raw_tree,
    fixture_env,
    fixture_registry,
)

from tasks.core import tracking
from tasks.core.catalog import REGISTRY, load_registry_file, mnist_datasets, registry
from tasks.core.errors import ParamsError, PipelineError
from tasks.core.params import Download
from tasks.core.stage import run_stage
from tasks.download import dataset_names, run
from tasks.ingest.fetch import fetch, verify

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def local_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = fixture_env(tmp_path / "mirror")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def tree_files(tree: Path) -> list[str]:
    return sorted(str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file())


def test_stage_fetches_verifies_and_extracts_every_dataset_once(tmp_path, make_cfg,
                                                                 local_mirror, monkeypatch):
    cfg = make_cfg(root=tmp_path / "project")
    metrics = run(cfg)
    raw = cfg.path("raw")
    zips = sorted(Path(local_mirror["DATA_MIRROR"]).glob("*.zip"))
    assert metrics["datasets"] == metrics["fetched"] == metrics["from_mirror"] == 7
    assert metrics["extracted"] == 7 and metrics["cached"] == 0
    assert metrics["archive_bytes"] == sum(p.stat().st_size for p in zips)
    assert all(isinstance(v, int | float) for v in metrics.values())
    assert tree_files(raw / "sentence_polarity") == ["README.txt", "rt-polarity.neg",
                                                     "rt-polarity.pos"]
    assert "ca01" in tree_files(raw / "brown") and "cats.txt" in tree_files(raw / "brown")
    assert len(tree_files(raw / "movie_reviews")) == 21
    marker = json.loads((raw / "brown.extracted.json").read_text())
    assert marker["sha256"] == registry()["brown"].sha256
    assert sorted(p.name for p in raw.iterdir() if p.name.startswith(".")) == []

    # Second run with an empty mirror: nothing may be fetched or extracted again.
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("DATA_MIRROR", str(empty))
    again = run(cfg)
    assert again["cached"] == 7 and again["fetched"] == 0 and again["extracted"] == 0
    assert again["extracted_files"] == metrics["extracted_files"]

    # A damaged tree (file deleted) is re-extracted from the kept archive, alone.
    (raw / "brown" / "ca01").unlink()
    third = run(cfg)
    assert third["extracted"] == 1 and (raw / "brown" / "ca01").is_file()


def test_datasets_are_corpus_then_labelled_deduplicated(make_cfg):
    cfg = make_cfg(**{"data.corpus": ["brown", "movie_reviews", "brown"],
                      "data.labelled": "sentence_polarity"})
    assert dataset_names(cfg, registry()) == ["brown", "movie_reviews", "sentence_polarity"]
    cfg = make_cfg(**{"data.corpus": ["movie_reviews"], "data.labelled": "movie_reviews"})
    assert dataset_names(cfg, registry()) == ["movie_reviews"]


def test_unknown_dataset_is_a_config_error(make_cfg):
    with pytest.raises(ParamsError) as info:
        make_cfg(**{"data.corpus": ["brown", "browm"]})
    assert "data.corpus[1]: unknown dataset 'browm'" in str(info.value)


def test_dataset_registry_file_adds_and_overrides_entries(tmp_path, make_cfg, monkeypatch):
    zips = build_fixtures(tmp_path / "mirror")
    (tmp_path / "mirror" / "tiny.zip").write_bytes(zips["abc"].read_bytes())
    entries = yaml.safe_load(fixture_registry(zips, "http://127.0.0.1:9", tmp_path / "r.yaml")
                             .read_text())
    tiny = {k: v for k, v in entries["abc"].items() if k in ("size", "sha256")}
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump({
        "tiny": {"url": "http://127.0.0.1:9/tiny.zip", "reader": "plain_text", **tiny},
        "brown": {"url": "http://127.0.0.1:9/brown.zip", "md5": entries["brown"]["md5"]},
        "sentence_polarity": entries["sentence_polarity"],  # data.labelled, from the fixtures
        **{name: entry for name, entry in entries.items() if name.startswith("mnist-")},
    }))
    with pytest.raises(ParamsError, match="unknown dataset 'tiny'"):
        make_cfg(**{"data.corpus": ["tiny"]})
    monkeypatch.setenv("DATASET_REGISTRY", str(path))
    merged = registry()
    assert merged["brown"].reader == "brown" and merged["brown"].sha256 is None  # inherited
    assert merged["inaugural"] == REGISTRY["inaugural"]  # untouched built-in
    cfg = make_cfg(root=tmp_path / "project", **{"data.corpus": ["tiny", "brown"]})
    monkeypatch.setenv("DATA_MIRROR", str(tmp_path / "mirror"))
    metrics = run(cfg)
    assert metrics["datasets"] == 3  # tiny, brown, sentence_polarity (data.labelled)
    # tiny.zip holds abc/...: a top folder that is not the dataset's name is kept
    assert (cfg.path("raw") / "tiny" / "abc" / "rural.txt").is_file()


@pytest.mark.parametrize(("entry", "message"), [
    ({"x": {"url": "https://127.0.0.1/x.zip", "size": 3, "reader": "plain_text"}}, "needs md5"),
    ({"x": {"url": "https://127.0.0.1/x.zip", "md5": "ABC", "reader": "r"}}, "x.md5: expected lowercase"),
    ({"x": {"url": "https://127.0.0.1/x.zip", "md5": "a" * 32}}, "x.reader"),
    ({"x": {"url": "ftp://h/x.zip", "md5": "a" * 32, "reader": "r"}}, "x.url"),
    ({"x": {"url": "https://127.0.0.1/", "md5": "a" * 32, "reader": "r"}}, "x.url"),
    ({"../x": {"url": "https://127.0.0.1/x.zip", "md5": "a" * 32, "reader": "r"}}, "dataset name"),
    ({"brown": {"url": "https://127.0.0.1/b.zip", "md5": "a" * 32, "sise": 3}}, "brown.sise: unknown"),
    ({"brown": {"url": "https://127.0.0.1/b.zip", "md5": "a" * 32, "archive": "rar"}}, "brown.archive"),
    ("[not, a, mapping]", "expected a mapping"),
    ("brown: {url: [", "not valid YAML"),
])
def test_bad_dataset_registry_files_fail_clearly(tmp_path, monkeypatch, make_cfg, entry, message):
    path = tmp_path / "registry.yaml"
    path.write_text(entry if isinstance(entry, str) else yaml.safe_dump(entry))
    with pytest.raises(PipelineError) as info:
        load_registry_file(path)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(path) in str(info.value)
    monkeypatch.setenv("DATASET_REGISTRY", str(path))
    with pytest.raises(PipelineError, match="DATASET_REGISTRY="):
        make_cfg()  # params validation uses the merged registry, so it fails too


@pytest.mark.parametrize(("content", "message"), [
    (None, "data.custom.mine.files.neg: file data/custom/neg.txt not found"),
    (b"", "data.custom.mine.files.neg: file data/custom/neg.txt is empty"),
])
def test_custom_dataset_files_must_exist_and_not_be_empty(tmp_path, make_cfg, local_mirror,
                                                          content, message):
    custom = tmp_path / "data" / "custom"
    custom.mkdir(parents=True)
    (custom / "pos.txt").write_text("a good film\n")
    spec = {"format": "class_files",
            "files": {"pos": "data/custom/pos.txt", "neg": "data/custom/neg.txt"}}
    cfg = make_cfg(root=tmp_path, **{"data.custom.mine": spec, "data.labelled": "mine",
                                     "data.corpus": ["mine", "abc"]})
    if content is not None:
        (custom / "neg.txt").write_bytes(content)
    with pytest.raises(PipelineError) as info:
        run(cfg)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    assert not cfg.path("raw").exists()  # checked before any fetch
    (custom / "neg.txt").write_text("a bad film\n")
    metrics = run(cfg)
    assert metrics["custom_files"] == 2 and metrics["datasets"] == 1  # only abc is fetched
    assert sorted(p.name for p in cfg.path("raw").iterdir()) == [
        "abc", "abc.extracted.json", "abc.zip"]  # custom files are not copied


def test_emoji_class_labels_are_logged_to_mlflow(tmp_path, make_cfg, local_mirror):
    # Issue #12: MLflow refused the param keys data.custom.mine.files.<emoji>: a traceback.
    custom = tmp_path / "data" / "custom"
    custom.mkdir(parents=True)
    (custom / "happy.txt").write_text("a good film\n")
    (custom / "sad.txt").write_text("a bad film\n")
    spec = {"format": "class_files", "files": {"\U0001F600": "data/custom/happy.txt",
                                               "\U0001F622 / ..": "data/custom/sad.txt"}}
    cfg = make_cfg(root=tmp_path, **{"data.custom.mine": spec, "data.labelled": "mine",
                                     "data.corpus": ["mine"], "tracking.enabled": True})
    metrics = run_stage("download", run, cfg)
    assert metrics["custom_files"] == 2
    client = mlflow.MlflowClient()
    (found,) = client.search_runs([client.get_experiment_by_name("w2v-cnn").experiment_id])
    keys = [k for k in found.data.params if k.startswith("data.custom.mine.files.")]
    assert len(keys) == 2 and found.info.status == "FINISHED"
    assert found.data.params[tracking.safe_key("data.custom.mine.files.\U0001F600")] == (
        "data/custom/happy.txt")


def test_build_raw_tree_matches_the_stage(tmp_path):
    trees = build_raw_tree(tmp_path / "raw", ["brown", "webtext"])
    assert sorted(trees) == ["brown", "webtext"]
    assert (trees["webtext"] / "wine.txt").is_file()
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == [
        "brown", "brown.extracted.json", "brown.zip",
        "webtext", "webtext.extracted.json", "webtext.zip"]


def write_params(folder: Path, **changes) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["corpus"] = ["sentence_polarity", "brown"]
    for dotted, value in changes.items():
        section, key = dotted.split(".")
        params[section][key] = value
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    return folder / "params.yaml"


def cli(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tasks.download", "--params", "params.yaml",
                           *args], cwd=folder, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=120)


def test_cli_stage_against_a_loopback_mirror(tmp_path):
    zips = build_fixtures(tmp_path / "mirror")
    registry_file = fixture_registry(zips, "http://127.0.0.1:9/corpora", tmp_path / "r.yaml")
    project = tmp_path / "project"
    write_params(project, **{"tracking.enabled": False})  # MLflow: see the test below
    with FaultyServer(tmp_path / "mirror", {"brown.zip": Fault(status=500)}) as server:
        env = {"DATASET_REGISTRY": str(registry_file), "DATA_MIRROR": server.url,
               "NO_PROXY": "127.0.0.1", "PIPELINE_LOG_LEVEL": "INFO"}
        done = cli(project, env)
        assert done.returncode == 0, done.stderr
        assert [(r.path, r.status) for r in server.requests] == [
            ("sentence_polarity.zip", 200), ("brown.zip", 500), ("brown.zip", 200),
            ("t10k-images-idx3-ubyte.gz", 200), ("t10k-labels-idx1-ubyte.gz", 200)]

        metrics = json.loads((project / "metrics" / "download.json").read_text())
        assert metrics["datasets"] == 2 and metrics["fetched"] == 2
        assert metrics["archive_bytes"] == zips["brown"].stat().st_size + zips[
            "sentence_polarity"].stat().st_size
        assert metrics["wall_seconds"] > 0
        raw = project / "data" / "raw"
        assert (raw / "sentence_polarity" / "rt-polarity.pos").is_file()
        assert (raw / "brown" / "cats.txt").is_file()
        mnist_raw = project / "data" / "mnist_raw"  # kept as downloaded, not extracted
        assert sorted(p.name for p in mnist_raw.iterdir()) == [
            "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
        assert (mnist_raw / "t10k-images-idx3-ubyte.gz").read_bytes() == zips[
            "mnist-t10k-images"].read_bytes()
        assert metrics["mnist_files"] == metrics["mnist_fetched"] == 2
        assert metrics["mnist_bytes"] == sum(zips[f"mnist-t10k-{kind}"].stat().st_size
                                             for kind in ("images", "labels"))
        assert "retry 1/4" in done.stderr and "from mirror" in done.stderr

        # A bad params key: one line, exit 2, before any work.
        bad = cli(project, env, "--set", "download.retires=3")
        assert bad.returncode == 2
        assert bad.stderr.strip().splitlines() == [
            "error: params: download.retires: unknown key (override 'download.retires')"]
        write_params(project, **{"download.max_extract_mb": 0})
        bad = cli(project, env)
        assert bad.returncode == 2
        assert bad.stderr.strip().splitlines() == [
            "error: params: download.max_extract_mb: must be >= 1, got 0"]

        # A missing file on the mirror: one error line naming it, no new output.
        fresh = tmp_path / "fresh"
        write_params(fresh, **{"tracking.enabled": False})
        server.faults["brown.zip"] = Fault(status=404)
        failed = cli(fresh, env)
        assert failed.returncode == 2
        errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
        assert errors == [f"error: download: brown: HTTP 404 Not Found for {server.url}/brown.zip"]
        assert not (fresh / "metrics").exists() and not (fresh / "data" / "raw" / "brown").exists()
        assert cli(fresh, env).returncode == 0  # the next good run succeeds


def test_stage_run_records_sources_and_checksums_in_mlflow(tmp_path, make_cfg, local_mirror):
    import mlflow

    cfg = make_cfg(root=tmp_path / "project", **{"data.corpus": ["brown"]})
    metrics = run_stage("download", run, cfg)  # what stage_main does, in-process
    assert json.loads((cfg.path("metrics") / "download.json").read_text()) == metrics
    client = mlflow.MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    (stage_run,) = client.search_runs([client.get_experiment_by_name("w2v-cnn").experiment_id])
    assert stage_run.data.tags["download.source.brown"] == "mirror"
    assert stage_run.data.tags["download.datasets"] == (
        "brown,sentence_polarity,mnist-t10k-images,mnist-t10k-labels")  # mnist.protocol test-split
    assert stage_run.data.tags["download.source.mnist-t10k-images"] == "mirror"
    assert stage_run.data.tags["download.mirror"] == local_mirror["DATA_MIRROR"]
    assert stage_run.data.params["dataset.brown.sha256"] == registry()["brown"].sha256
    assert stage_run.data.metrics["datasets"] == 2
    assert stage_run.data.metrics["archive_bytes"] == metrics["archive_bytes"]


def test_all_fixture_names_are_registry_names():
    assert set(NLTK_NAMES) <= set(REGISTRY)


def test_mnist_registry_entries_follow_the_protocol():
    assert mnist_datasets("test-split") == ["mnist-t10k-images", "mnist-t10k-labels"]
    assert mnist_datasets("standard") == ["mnist-train-images", "mnist-train-labels",
                                          "mnist-t10k-images", "mnist-t10k-labels"]
    with pytest.raises(PipelineError, match="unknown MNIST protocol 'kfold'"):
        mnist_datasets("kfold")
    t10k, train = REGISTRY["mnist-t10k-images"], REGISTRY["mnist-train-images"]
    assert t10k.url == "https://storage.googleapis.com/cvdf-datasets/mnist/t10k-images-idx3-ubyte.gz"
    assert t10k.archive == train.archive == "file"  # kept as downloaded, never extracted
    assert (t10k.size, t10k.md5) == (1648877, "9fb629c4189551a2d022fa330f9573f3")
    assert (train.md5, train.size, train.sha256) == ("f68b3c2dcbeaaa9fbdd348bbdeb94873", None, None)
    assert REGISTRY["mnist-train-labels"].md5 == "d53e105ee54ea40749a09fcbcd1e9432"


MNIST_MIRROR = Path(os.environ.get("MNIST_MIRROR") or REPO.parent / "shared" / "mirror" / "mnist")


@pytest.mark.skipif(not MNIST_MIRROR.is_dir(), reason=f"real MNIST files not at {MNIST_MIRROR}")
def test_registry_checksums_match_the_real_mnist_mirror(tmp_path):
    settings = Download(connect_timeout=1.0, read_timeout=1.0, retries=0, backoff=0.0,
                        max_extract_mb=1)
    for name in mnist_datasets("test-split"):
        spec = REGISTRY[name]
        result = fetch(spec, tmp_path / spec.filename, settings, mirror=str(MNIST_MIRROR))
        assert result.source == "mirror" and verify(spec, result.path)[0] == spec.size
