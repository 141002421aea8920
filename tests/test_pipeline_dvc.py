"""End to end through real DVC: `dvc repro` of the whole pipeline on loopback fixtures.

Checks the promises users rely on: the full DAG runs; a second `dvc repro` does nothing;
changing `vocab.min_count` re-runs only vocab and what follows; metrics are visible to DVC;
every stage left an MLflow run; the cache round-trips through a DVC remote.
"""

from __future__ import annotations

import json
import shutil

import mlflow
import pytest
import yaml

from tests.project_copy import fixture_project, git, set_params

pytestmark = pytest.mark.slow


def stages_in(project) -> list[str]:
    return list(yaml.safe_load((project.root / "dvc.yaml").read_text())["stages"])


def ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def test_dvc_repro_end_to_end(tmp_path):
    with fixture_project(tmp_path) as project:
        stages = stages_in(project)
        assert stages[:3] == ["download", "prepare", "vocab"]

        first = project.dvc("repro")
        assert ran(first.stdout) == set(stages)
        assert project.dvc("status").stdout.strip().endswith("Data and pipelines are up to date.")

        # nothing changed -> nothing runs
        again = project.dvc("repro")
        assert ran(again.stdout) == set()

        # metrics are DVC metrics
        shown = json.loads(project.dvc("metrics", "show", "--json").stdout)
        files = next(iter(shown.values()))["data"]
        assert any(name.endswith("prepare.json") for name in files)
        assert any(name.endswith("vocab.json") for name in files)
        mnist = files[next(name for name in files if name.endswith("mnist.json"))]["data"]
        assert 0.0 <= mnist["softmax"]["test_accuracy"] <= 1.0
        assert 0.0 <= mnist["cnn"]["test_accuracy"] <= 1.0

        # one MLflow run per stage, grouped by the same git commit
        mlflow.set_tracking_uri(project.env["MLFLOW_TRACKING_URI"])
        runs = mlflow.search_runs(experiment_names=["w2v-cnn"], output_format="list")
        assert {r.data.tags["stage"] for r in runs} == set(stages)

        # a vocab param change re-runs vocab and downstream only
        git(project.root, "add", "-A")
        git(project.root, "commit", "-qm", "first run")
        set_params(project.root, {"vocab.min_count": 2})
        rerun = project.dvc("repro")
        downstream = set(stages[stages.index("vocab"):]) - {"mnist"}  # mnist: download only
        assert ran(rerun.stdout) == downstream
        # an mnist param re-runs mnist only; the protocol re-runs download (the training files
        # too) and mnist, never the text stages: the IDX files are their own output
        set_params(project.root, {"mnist.softmax.steps": 10})
        assert ran(project.dvc("repro").stdout) == {"mnist"}
        set_params(project.root, {"mnist.protocol": "standard"})
        assert ran(project.dvc("repro").stdout) == {"download", "mnist"}
        assert len(list((project.root / "data" / "mnist_raw").glob("*.gz"))) == 4
        vocab = json.loads((project.root / "metrics" / "vocab.json").read_text())
        assert vocab["vocab_size"] > 2

        # the cache round-trips through a local-folder remote
        remote = tmp_path / "remote"
        project.dvc("remote", "add", "-d", "local", str(remote))
        project.dvc("push")
        assert any(remote.rglob("*"))
        shutil.rmtree(project.root / ".dvc" / "cache")
        shutil.rmtree(project.root / "data" / "prepared")
        project.dvc("pull")
        assert (project.root / "data" / "prepared" / "corpus.txt").stat().st_size > 0
        assert project.dvc("status").stdout.strip().endswith("up to date.")


def test_bad_param_fails_before_work_and_later_run_succeeds(tmp_path):
    with fixture_project(tmp_path) as project:
        raw = yaml.safe_load((project.root / "params.yaml").read_text())
        raw["vocab"]["min_cuont"] = 3
        (project.root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        failed = project.dvc("repro", "vocab", check=False)
        assert failed.returncode != 0
        assert "vocab.min_cuont: unknown key" in failed.stderr + failed.stdout
        assert not (project.root / "data" / "prepared").exists()

        del raw["vocab"]["min_cuont"]
        (project.root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        project.dvc("repro", "vocab")
        assert (project.root / "data" / "vocab" / "vocab.tsv").exists()
