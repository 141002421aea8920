"""flows/stages.py and flows/overrides.py with real DVC in a toy git + DVC repo (no Prefect).

The stage list comes from dvc.yaml in order; one stage runs through `dvc repro --single-item`
with its output streamed line by line; an unchanged stage is reported skipped; a DVC lock
held by another process is waited for (or reported); an overrides run is one
`dvc exp run --temp` split per stage, leaving the workspace untouched.
"""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from flows import stages as dvc
from flows.common import exp_ref, head_commit
from flows.experiment import Experiment, link_outside_deps
from flows.overrides import exp_name, hydra_value, set_param_args, slug, validate, variant_name
from tasks.core.errors import ParamsError
from tests.flowtools import REPO, TOY_STAGES, git, sub_env, toy_project


def test_stage_list_is_dvc_yaml_in_order():
    names = dvc.stage_names(REPO)
    assert names == list(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
    assert names[:3] == ["download", "prepare", "vocab"]


def test_stage_depending_on_a_later_stage_is_rejected(tmp_path):
    (tmp_path / "params.yaml").write_text("paths: {mid: data/mid}\n")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "first": {"cmd": "x", "deps": ["${paths.mid}/file.txt"], "outs": ["data/end"]},
        "second": {"cmd": "y", "outs": ["${paths.mid}"]},
    }}))
    with pytest.raises(dvc.StageError, match="'first' depends on 'data/mid/file.txt'.*'second'"):
        dvc.stage_names(tmp_path)


def test_override_formatting_and_names(tmp_path):
    assert hydra_value("non-static") == "non-static"
    assert hydra_value("true") == "'true'" and hydra_value("5") == "'5'"
    assert hydra_value("it's a b") == "'it\\'s a b'"
    assert hydra_value([3, 4, 5]) == "[3,4,5]" and hydra_value(1e-3) == "0.001"
    assert hydra_value(True) == "true" and hydra_value(None) == "null"
    params = tmp_path / "params.yaml"
    params.write_text("cnn: {epochs: 1}\ndata: {custom: {}}\n")
    assert set_param_args(params, {"cnn.epochs": 2, "data.custom.mine": {"format": "csv"}}) == [
        "-S", "cnn.epochs=2", "-S", "+data.custom.mine={format:csv}"]
    name = exp_name("sweep", {"cnn.embedding_init": "non-static"}, "3F9C2A1B-9e2f")
    assert name == "sweep-embedding-init-non-static-3f9c2a1b-9e2"
    subprocess.run(["git", "check-ref-format", f"refs/exps/ab/cd/{name}"], check=True)
    assert slug("A b__c") == "a-b-c"
    assert variant_name({}) == "baseline"
    assert variant_name({"cnn.embedding_init": "rand"}) == "cnn.embedding_init=rand"
    with pytest.raises(ParamsError, match="vocab.min_cont"):
        validate(REPO, {"vocab.min_cont": 2})
    assert validate(REPO, {"vocab.min_count": 2}).vocab.min_count == 2


def test_dependencies_outside_the_repo_are_linked_for_experiments(tmp_path):
    root = toy_project(tmp_path / "toy", tracking=False)
    assert dvc.outside_deps(root) == ["../toy-eval.txt"]
    assert dvc.outside_deps(REPO) == sorted({
        f"{Path(v).as_posix()}" for v in (yaml.safe_load((REPO / "params.yaml").read_text())
                                           ["word2vec"][k] for k in ("analogy_file",
                                                                      "wordsim_file"))
        if v.startswith("../")})
    [link] = link_outside_deps(root, dvc.outside_deps(root) + ["../../../../x", "inside.txt"])
    copy = root / ".dvc" / "tmp" / "exps" / "standalone" / "tmp123"  # where DVC runs one
    copy.mkdir()
    assert (copy / "../toy-eval.txt").read_text() == (tmp_path / "toy-eval.txt").read_text()
    assert link.is_symlink() and link_outside_deps(root, ["../toy-eval.txt"]) == []


def _write_locked(root: Path, stage: str, timeout: float = 120) -> None:
    """Wait until a DVC process holds the write lock of `stage`'s output."""
    deadline = time.monotonic() + timeout
    rwlock = root / ".dvc" / "tmp" / "rwlock"
    while time.monotonic() < deadline:
        if rwlock.exists() and json.loads(rwlock.read_text() or "{}").get("write"):
            return
        time.sleep(0.2)
    raise TimeoutError(f"no DVC process locked {stage}'s outputs")


@pytest.mark.slow
def test_stages_through_dvc_lock_waits_then_experiments(tmp_path):
    root = toy_project(tmp_path / "toy", tracking=False)
    env = dvc.stage_env()
    lines: list[str] = []
    first = dvc.repro_stage(root, "download", env, lines.append)
    assert (first.stage, first.status) == ("download", "ran")
    assert "Running stage 'download':" in lines and "download: line 2" in lines
    assert json.loads((root / "metrics" / "download.json").read_text())["lines"] == 1
    assert dvc.changed_stages(root, env) == {"prepare", "vocab"}
    assert dvc.repro_stage(root, "download", env, lines.append).status == "skipped"

    # another DVC process holds download's outputs (until we remove the gate file): fail at
    # once, or wait for it
    gate = tmp_path / "gate"
    gate.write_text("hold")
    holder = subprocess.Popen(dvc.dvc_command("repro", "-f", "--single-item", "download"),
                              cwd=root, env=sub_env(TOY_GATE=str(gate)), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        _write_locked(root, "download")
        with pytest.raises(dvc.StageError, match="download.*busy"):
            dvc.repro_stage(root, "download", env, lines.append, lock_timeout=0)
        waited: list[str] = []
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(dvc.repro_stage, root, "download", env, waited.append,
                                  lock_timeout=300, poll=1)
            deadline = time.monotonic() + 120
            while not any("DVC lock held by another run" in line for line in waited):
                assert time.monotonic() < deadline and not waiting.done(), waited
                time.sleep(0.2)
            gate.unlink()  # the holder finishes; the waiter goes on
            result = waiting.result(timeout=300)
        assert result.status == "skipped"  # the forced run rebuilt the same outputs
        assert holder.wait(timeout=120) == 0
    finally:
        gate.unlink(missing_ok=True)
        holder.kill()
        holder.wait()
    for stage in TOY_STAGES[1:]:
        assert dvc.repro_stage(root, stage, env, lines.append).status == "ran"
    assert dvc.changed_stages(root, env) == set()

    # overrides: one `dvc exp run --temp`, its output split per stage
    git(root, "add", "-A")
    git(root, "commit", "-qm", "baseline run")
    params_before = (root / "params.yaml").read_bytes()
    other: list[str] = []
    per_stage: dict[str, list[str]] = {s: [] for s in TOY_STAGES}
    exp = Experiment(root, "exp-a", {"vocab.min_count": 3}, env, dvc.stage_names(root),
                         other.append).start()
    results = {s: exp.follow(s, per_stage[s].append) for s in TOY_STAGES}
    assert exp.wait() == 0
    assert results["download"].skipped and results["prepare"].skipped  # cache, unchanged
    assert results["vocab"].status == "ran"
    assert "vocab: line 0" in per_stage["vocab"]
    assert not any("vocab: line" in line for line in per_stage["prepare"] + other)
    assert any("Ran experiment(s): exp-a" in line for line in other)
    assert "vocab: start, DVC_EXP_NAME=exp-a" in per_stage["vocab"]  # set by DVC

    # the workspace is untouched; the experiment is a git ref with its own metrics
    assert (root / "params.yaml").read_bytes() == params_before
    assert json.loads((root / "metrics" / "vocab.json").read_text())["min_count"] == 5
    ref = exp_ref(head_commit(root), "exp-a")
    shown = subprocess.run(["git", "show", f"{ref}:metrics/vocab.json"], cwd=root,
                           capture_output=True, text=True, check=True).stdout
    assert json.loads(shown)["min_count"] == 3

    # a failing stage inside an experiment fails that stage's follower, naming it
    exp = Experiment(root, "exp-b", {"vocab.min_count": 99}, env, dvc.stage_names(root),
                         other.append).start()
    assert exp.follow("download", print).skipped
    assert exp.follow("prepare", print).skipped
    with pytest.raises(dvc.StageError, match="stage 'vocab' failed in experiment 'exp-b'"):
        exp.follow("vocab", print)
    with pytest.raises(dvc.StageError, match="exp-b"):
        exp.wait()
