"""Deployments: prefect.yaml through `prefect deploy`, a process worker, a run with overrides.

Real components: a `prefect server` subprocess (shared, tests/flowtools.py), the CLI
commands of docs/orchestration.md, a `prefect worker start` subprocess running the flow from
the checkout, DVC and MLflow. Also the Kubernetes work-pool files in deploy/k8s-work-pool/:
the server accepts the base job template, and the Job it renders is a valid Kubernetes Job
(kubernetes-validate, strict). Nothing is sent to a cluster.
"""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest
import yaml

from flows.common import exp_ref, head_commit
from tests.flowtools import (
    BIN,
    REPO,
    mlflow_runs,
    prefect_api_fixture,  # noqa: F401 (the prefect_api fixture)
    stop_process,
    sub_env,
    task_runs,
    toy_run_fixture,  # noqa: F401 (the toy_run fixture)
)

K8S = REPO / "deploy" / "k8s-work-pool"


def prefect_cli(*args: str, cwd, env) -> str:
    result = subprocess.run([str(BIN / "prefect"), *args], cwd=cwd, env=env, text=True,
                            capture_output=True, timeout=300)
    assert result.returncode == 0, f"prefect {' '.join(args)}:\n{result.stdout[-3000:]}"
    return result.stdout


@pytest.mark.slow
def test_deploy_worker_and_run_with_overrides(tmp_path, toy_run):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    root = toy_run.root  # stages built: the experiment re-runs only vocab
    env = sub_env()
    prefect_cli("work-pool", "create", "local-process", "--type", "process", "--overwrite",
                cwd=root, env=env)
    prefect_cli("--no-prompt", "deploy", "--all", cwd=root, env=env)
    assert subprocess.run(["git", "status", "--porcelain", "prefect.yaml"], cwd=root,
                          capture_output=True, text=True).stdout == ""  # not rewritten

    with get_client(sync_client=True) as client:
        nightly = client.read_deployment_by_name("pipeline/nightly")
        manual = client.read_deployment_by_name("sweep/manual")
    [schedule] = nightly.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 2 * * *", "UTC")
    assert nightly.work_pool_name == manual.work_pool_name == "local-process"
    assert nightly.pull_steps == [{"prefect.deployments.steps.set_working_directory": {
        "directory": str(root)}}]  # the local checkout, no clone
    assert manual.schedules == []

    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 (closed below)
    worker = subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool",
                               "local-process", "--limit", "1"], cwd=tmp_path, env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        flow_run = run_deployment("pipeline/nightly", timeout=900, poll_interval=2,
                                  parameters={"overrides": {"vocab.min_count": 2}})
    finally:
        stop_process(worker, grace=30)
        log.close()
    assert flow_run.state.is_completed(), (tmp_path / "worker.log").read_text()[-4000:]
    flow_run_id = str(flow_run.id)
    tasks = task_runs(flow_run_id)
    assert [(r.name, r.state_name) for r in tasks] == [
        ("download", "Skipped"), ("prepare", "Skipped"), ("vocab", "Completed")]

    # MLflow: the parent run names the DVC experiment; the stage run carries both ids
    runs = mlflow_runs(toy_run.mlflow_uri)
    [parent] = [r for r in runs if r.data.tags.get("run_kind") == "pipeline"
                and r.data.tags.get("prefect_flow_run_id") == flow_run_id]
    exp_name = parent.data.tags["dvc_exp_name"]
    assert parent.data.params == {"vocab.min_count": "2"}
    assert parent.data.metrics["vocab.min_count"] == 2  # from the experiment's metrics file
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert [r.data.tags["stage"] for r in children] == ["vocab"]
    for run in children:
        assert run.data.tags["prefect_flow_run_id"] == flow_run_id
        assert run.data.tags["dvc_exp_name"] == exp_name  # DVC_EXP_NAME, set by DVC

    # DVC: the experiment exists with the override; the workspace params are untouched
    listed = subprocess.run([str(BIN / "dvc"), "exp", "list", "--name-only"], cwd=root,
                            env=env, capture_output=True, text=True, check=True).stdout
    assert exp_name in listed.split()
    shown = subprocess.run(["git", "show", f"{exp_ref(head_commit(root), exp_name)}:params.yaml"],
                           cwd=root, capture_output=True, text=True, check=True).stdout
    assert yaml.safe_load(shown)["vocab"]["min_count"] == 2
    assert yaml.safe_load((root / "params.yaml").read_text())["vocab"]["min_count"] == 5


def render_job(template: dict, values: dict) -> dict:
    """The Job a Kubernetes worker would submit: Prefect's templating, then env/args as lists."""
    from prefect.utilities.templating import apply_values

    defaults = {k: v["default"] for k, v in template["variables"]["properties"].items()
                if "default" in v}
    config = apply_values(template["job_configuration"], {**defaults, **values})
    job = config["job_manifest"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": k, "value": v} for k, v in container["env"].items()]
    container["args"] = shlex.split(container["args"])
    return job


def test_k8s_job_template_renders_a_valid_job_and_manifests_validate():
    import kubernetes_validate

    template = json.loads((K8S / "base-job-template.json").read_text())
    job = render_job(template, {"name": "pipeline-nightly", "command": "prefect flow-run execute",
                                "labels": {"prefect.io/flow-run-id": "abc"}})
    version = kubernetes_validate.latest_version()
    kubernetes_validate.validate(job, version, strict=True)
    pod = job["spec"]["template"]["spec"]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "w2v-cnn-workspace"
    assert pod["containers"][0]["workingDir"] == "/workspace/w2v-cnn"
    assert {"name": "DVC_NO_ANALYTICS", "value": "1"} in pod["containers"][0]["env"]
    for doc in yaml.safe_load_all((K8S / "workspace.yaml").read_text()):
        kubernetes_validate.validate(doc, version, strict=True)

    spec = yaml.safe_load((K8S / "prefect.yaml").read_text())
    for deployment in spec["deployments"]:
        assert deployment["work_pool"]["name"] == "k8s"
        assert (REPO / deployment["entrypoint"].split(":")[0]).is_file()


def test_k8s_work_pool_accepts_the_template(tmp_path, prefect_api):
    from prefect.client.orchestration import get_client

    template = K8S / "base-job-template.json"
    prefect_cli("work-pool", "create", "k8s", "--type", "kubernetes", "--base-job-template",
                str(template), "--overwrite", cwd=REPO, env=sub_env())
    with get_client(sync_client=True) as client:
        pool = client.read_work_pool("k8s")
    assert pool.type == "kubernetes"
    assert pool.base_job_template == json.loads(template.read_text())


def test_k8s_template_as_the_prefect_kubernetes_worker_builds_it(prefect_api):
    """The Job a real `prefect worker --type kubernetes` (prefect-kubernetes, the `k8s` extra)
    would submit for a flow run: the worker's own configuration class fills the template."""
    import asyncio
    import uuid

    import kubernetes_validate
    from prefect.client.schemas.objects import FlowRun
    from prefect_kubernetes.worker import KubernetesWorker, KubernetesWorkerJobConfiguration

    template = json.loads((K8S / "base-job-template.json").read_text())
    default = KubernetesWorker.get_default_base_job_template()
    # Every variable the worker's default template offers is still offered (none dropped).
    assert set(default["variables"]["properties"]) <= set(template["variables"]["properties"])

    config = asyncio.run(KubernetesWorkerJobConfiguration.from_template_and_values(
        template, {"image": "registry.example.com/w2v-cnn:1.0"}))
    config.prepare_for_flow_run(FlowRun(flow_id=uuid.uuid4(), name="nightly-run"))
    job = config.job_manifest
    kubernetes_validate.validate(job, kubernetes_validate.latest_version(), strict=True)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/w2v-cnn:1.0"
    assert container["workingDir"] == "/workspace/w2v-cnn"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["DVC_NO_ANALYTICS"] == "1" and "PREFECT__FLOW_RUN_ID" in env
    assert container["args"][:3] == ["prefect", "flow-run", "execute"]
