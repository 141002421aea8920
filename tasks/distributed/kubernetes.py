"""Kubernetes backend: manifests for one distributed job, and submit / watch / logs / clean-up.

Params section: `distributed` (strategy, workers, ps, image, namespace, volume_claim,
mount_path, workdir, cpu, memory, timeout, max_restarts).

One job = one headless Service + one NetworkPolicy + one Indexed Job per role (sync:
`worker`; async: `worker`, `ps`), all labelled `app.kubernetes.io/instance: <job>`:
- the NetworkPolicy admits ingress to the job's pods only on the gRPC port and only from pods
  of the same job (TensorFlow's servers have no authentication; a pod must listen on its pod
  IP, so the network decides who may dial it). It takes effect where the cluster's network
  plugin enforces NetworkPolicies (Calico, Cilium, ...); elsewhere it is accepted and ignored;
- the Service (clusterIP None, publishNotReadyAddresses) gives every pod the stable name
  `<job>-<role>-<i>.<job>.<namespace>.svc.cluster.local` (Indexed Job hostname + subdomain),
  so the cluster spec is known before any pod starts and survives pod restarts;
- each pod builds its own TF_CONFIG from TF_CLUSTER_SPEC, TF_TASK_TYPE and the
  JOB_COMPLETION_INDEX Kubernetes sets (tasks.distributed.cluster.tf_config_from_pod_env);
- the shared volume (a ReadWriteMany PVC mounted at `mount_path`) holds the project checkout
  (`workdir`, the pods' working directory), so params.yaml, the corpus, the checkpoints
  (`distributed.shared_path`) and the outputs (`paths.*`) are the files the flow sees: the
  layout of the Prefect Kubernetes work pool (deploy/k8s-work-pool/).
Why core Jobs and not JobSet: JobSet would restart all roles together and create the Service
itself, but it needs its CRD and controller installed; plain Jobs run on any cluster and can be
validated offline against the Kubernetes schemas (docs/distributed.md).

`run_job` submits with the official `kubernetes` client, polls until the job that decides
the outcome (the workers, whose index 0 is the chief) completes or fails, prints every pod's log with a
`[pod]` prefix, and deletes what it created (unless `keep`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml

from tasks.core.errors import PipelineError
from tasks.core.params import Config
from tasks.core.tracking import parent_run_id
from tasks.distributed.cluster import PORT, ClusterShape, kubernetes_cluster

INSTANCE = "app.kubernetes.io/instance"
COMPONENT = "app.kubernetes.io/component"
PASS_ENV = ("MLFLOW_TRACKING_URI", "PIPELINE_RUN_ID", "MLFLOW_PARENT_RUN_ID", "PIPELINE_OVERRIDES",
            "PREFECT_FLOW_RUN_ID")
LineSink = Callable[[str], None]


def job_names(job: str) -> Callable[[str], str]:
    return lambda role: f"{job}-{role}"


def _container(cfg: Config, job: str, role: str, cluster: Mapping[str, list[str]],
               args: Sequence[str], env: Mapping[str, str]) -> dict[str, Any]:
    dist = cfg.distributed
    variables = {"TF_TASK_TYPE": role, "TF_CLUSTER_SPEC": json.dumps(cluster, sort_keys=True),
                 "DIST_BACKEND": "kubernetes", "PYTHONUNBUFFERED": "1",
                 "TF_CPP_MIN_LOG_LEVEL": "2", **env}
    return {
        "name": "tensorflow",
        "image": dist.image,
        "imagePullPolicy": "IfNotPresent",
        "workingDir": dist.workdir,
        "command": ["python", "-m", "tasks.distributed.worker", *args],
        "env": [{"name": k, "value": str(v)} for k, v in variables.items()],
        "ports": [{"name": "grpc", "containerPort": PORT}],
        "resources": {"requests": {"cpu": dist.cpu, "memory": dist.memory},
                      "limits": {"memory": dist.memory}},
        "volumeMounts": [{"name": "shared", "mountPath": dist.mount_path}],
    }


def render(cfg: Config, job: str, args: Sequence[str],
           env: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The Service and Indexed Jobs of one job, as plain dicts (YAML-ready, schema-valid)."""
    shape = ClusterShape.from_config(cfg.distributed)
    dist = cfg.distributed
    cluster = kubernetes_cluster(shape, job_names(job), job, dist.namespace)
    labels = {INSTANCE: job, "app.kubernetes.io/name": "w2v-distributed",
              "w2v/cluster-shape": shape.tag}
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": job, "namespace": dist.namespace, "labels": labels},
        "spec": {"clusterIP": "None", "selector": {INSTANCE: job},
                 # Peers must resolve before they are Ready: TF dials them at start-up.
                 "publishNotReadyAddresses": True,
                 "ports": [{"name": "grpc", "port": PORT, "targetPort": PORT}]},
    }
    policy = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": f"{job}-peers", "namespace": dist.namespace,
                     "labels": dict(labels)},
        "spec": {"podSelector": {"matchLabels": {INSTANCE: job}},
                 # Ingress listed: everything not admitted below is dropped.
                 "policyTypes": ["Ingress"],
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {INSTANCE: job}}}],
                              "ports": [{"protocol": "TCP", "port": PORT}]}]},
    }
    manifests: list[dict[str, Any]] = [service, policy]
    for role, count in shape.roles.items():
        role_labels = {**labels, COMPONENT: role}
        manifests.append({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": job_names(job)(role), "namespace": dist.namespace,
                         "labels": role_labels},
            "spec": {
                "completionMode": "Indexed",
                "completions": count,
                "parallelism": count,
                # OnFailure restarts the container in the same pod: same hostname and index.
                "backoffLimit": max(1, dist.max_restarts) * count,
                "activeDeadlineSeconds": int(dist.timeout),
                "ttlSecondsAfterFinished": 3600,
                "template": {
                    "metadata": {"labels": dict(role_labels)},  # a copy: no YAML anchors
                    "spec": {
                        "subdomain": job,
                        "restartPolicy": "OnFailure",
                        "containers": [_container(cfg, job, role, cluster, args, env or {})],
                        "volumes": [{"name": "shared", "persistentVolumeClaim": {
                            "claimName": dist.volume_claim}}],
                    },
                },
            },
        })
    return manifests


def to_yaml(manifests: Sequence[Mapping[str, Any]]) -> str:
    return yaml.safe_dump_all([dict(m) for m in manifests], sort_keys=False)


def _clients() -> tuple[Any, Any, Any]:
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:  # KUBECONFIG read now: the client's default was fixed when it was imported
            config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None)
        except (config.ConfigException, FileNotFoundError) as exc:
            raise PipelineError(f"kubernetes: no cluster configured ({exc})") from None
    return client.CoreV1Api(), client.BatchV1Api(), client.NetworkingV1Api()


def submit(manifests: Sequence[Mapping[str, Any]], core: Any, batch: Any, net: Any) -> None:
    for manifest in manifests:
        ns = manifest["metadata"]["namespace"]
        if manifest["kind"] == "Service":
            core.create_namespaced_service(ns, manifest)
        elif manifest["kind"] == "NetworkPolicy":
            net.create_namespaced_network_policy(ns, manifest)
        else:
            batch.create_namespaced_job(ns, manifest)


def _job_state(batch: Any, name: str, ns: str) -> str:
    """`Complete`, `Failed` or `Running` from the Job's status conditions."""
    status = batch.read_namespaced_job_status(name, ns).status
    for condition in status.conditions or []:
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            return condition.type
    return "Running"


def watch(batch: Any, job: str, shape: ClusterShape, ns: str, timeout: float,
          on_line: LineSink, poll: float = 5.0) -> tuple[bool, str]:
    """Poll the Jobs until the deciding one is Complete or any is Failed, or `timeout`."""
    deciding = job_names(job)(shape.chief[0])
    deadline, last = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        states = {role: _job_state(batch, job_names(job)(role), ns) for role in shape.roles}
        if states != last:
            on_line(f"[kubernetes] {job}: " + ", ".join(f"{r}={s}" for r, s in states.items()))
            last = states
        if any(s == "Failed" for s in states.values()):
            failed = [r for r, s in states.items() if s == "Failed"]
            return False, f"job {job}: {', '.join(failed)} failed"
        if states[shape.chief[0]] == "Complete":
            return True, f"job {deciding} complete"
        time.sleep(poll)
    return False, f"job {job}: timeout after {timeout:.0f} s"


def collect_logs(core: Any, job: str, ns: str, on_line: LineSink) -> None:
    pods = core.list_namespaced_pod(ns, label_selector=f"{INSTANCE}={job}").items
    for pod in sorted(pods, key=lambda p: p.metadata.name):
        try:
            text = core.read_namespaced_pod_log(pod.metadata.name, ns)
        except Exception as exc:  # a pod that never started has no log; say so, go on
            text = f"(no log: {exc})"
        for line in (text or "").splitlines():
            on_line(f"[{pod.metadata.name}] {line}")


def cleanup(core: Any, batch: Any, net: Any, manifests: Sequence[Mapping[str, Any]]) -> None:
    from kubernetes.client.exceptions import ApiException

    for manifest in manifests:
        name, ns = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
        try:
            if manifest["kind"] == "Service":
                core.delete_namespaced_service(name, ns)
            elif manifest["kind"] == "NetworkPolicy":
                net.delete_namespaced_network_policy(name, ns)
            else:
                batch.delete_namespaced_job(name, ns, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise


def run_job(cfg: Config, job: str, args: Sequence[str], env: Mapping[str, str] | None = None,
            on_line: LineSink = print, keep: bool = False,
            poll: float = 5.0) -> tuple[bool, str]:
    """Submit the job, wait for it, print the pods' logs, clean up; return (ok, reason)."""
    passed = {k: os.environ[k] for k in PASS_ENV if os.environ.get(k)}
    parent = parent_run_id()  # a pod cannot read the flow's handover file: pass the id itself
    if parent:
        passed["MLFLOW_PARENT_RUN_ID"] = parent
    manifests = render(cfg, job, args, {**passed, **(env or {})})
    core, batch, net = _clients()
    shape = ClusterShape.from_config(cfg.distributed)
    ns = cfg.distributed.namespace
    submit(manifests, core, batch, net)
    try:
        ok, reason = watch(batch, job, shape, ns, cfg.distributed.timeout, on_line, poll)
        collect_logs(core, job, ns, on_line)
    finally:
        if not keep:
            cleanup(core, batch, net, manifests)
    return ok, reason
