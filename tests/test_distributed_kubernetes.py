"""Kubernetes backend: rendered manifests validate against the Kubernetes schemas, and the
submit / watch / logs / clean-up path drives the official client correctly.

No cluster runs here. The schemas come from kubernetes_validate (offline). The client path
talks to a small loopback HTTP stand-in for the API server (the few endpoints the backend
uses), reached through a real kubeconfig file, so the real client, its config loading and
its (de)serialisation all run.
"""

from __future__ import annotations

import copy
import http.server
import json
import threading
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from flows.distributed import distributed_overrides, dry_run_text
from tasks.core.errors import ParamsError
from tasks.distributed import kubernetes as k8s
from tasks.distributed import worker_args
from tasks.distributed.cluster import current_task

K8S_VERSION = "1.33.0"


def manifests_for(make_cfg, **overrides):
    cfg = make_cfg(**{"distributed.backend": "kubernetes", **overrides})
    args = worker_args("w2v-test-1", "params.yaml", {"distributed.workers": 4})
    return cfg, k8s.render(cfg, "w2v-test-1", args, {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"})


@pytest.mark.parametrize(("strategy", "roles"), [
    ("sync", {"worker": 4}), ("async", {"ps": 2, "worker": 4})])
def test_manifests_validate_against_the_kubernetes_schemas(make_cfg, strategy, roles):
    cfg, manifests = manifests_for(make_cfg, **{
        "distributed.strategy": strategy, "distributed.workers": 4, "distributed.ps": 2,
        "distributed.image": "registry.example/w2v:1.0", "distributed.namespace": "ml"})
    for manifest in manifests:
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    service, policy, jobs = manifests[0], manifests[1], manifests[2:]
    assert service["kind"] == "Service" and service["spec"]["clusterIP"] == "None"
    # The job's pods admit the gRPC port from pods of the same job, and nothing else.
    assert policy["kind"] == "NetworkPolicy" and policy["spec"]["policyTypes"] == ["Ingress"]
    mine = {"app.kubernetes.io/instance": "w2v-test-1"}
    assert policy["spec"]["podSelector"] == {"matchLabels": mine}
    assert policy["spec"]["ingress"] == [{"from": [{"podSelector": {"matchLabels": mine}}],
                                          "ports": [{"protocol": "TCP", "port": 2222}]}]
    assert {j["kind"] for j in jobs} == {"Job"}
    assert {j["metadata"]["name"]: j["spec"]["completions"] for j in jobs} == {
        f"w2v-test-1-{role}": n for role, n in roles.items()}
    for job in jobs:
        spec = job["spec"]
        pod = spec["template"]["spec"]
        assert spec["completionMode"] == "Indexed" and pod["subdomain"] == "w2v-test-1"
        container = pod["containers"][0]
        assert container["image"] == "registry.example/w2v:1.0"
        assert container["resources"]["requests"] == {"cpu": "1", "memory": "2Gi"}
        assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "w2v-cnn-workspace"
        assert container["volumeMounts"][0]["mountPath"] == "/workspace"
        assert container["workingDir"] == "/workspace/w2v-cnn"
        assert container["command"][:3] == ["python", "-m", "tasks.distributed.worker"]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"
        # What the pod does at start: its TF_CONFIG from the env + the Job's index.
        role = env["TF_TASK_TYPE"]
        last = spec["completions"] - 1
        task = current_task({**env, "JOB_COMPLETION_INDEX": str(last)})
        assert task.name == f"{role}:{last}"
        assert task.cluster[role][last] == (
            f"w2v-test-1-{role}-{last}.w2v-test-1.ml.svc.cluster.local:2222")
        assert service["spec"]["selector"].items() <= job["spec"]["template"]["metadata"][
            "labels"].items()
        assert mine.items() <= job["spec"]["template"]["metadata"]["labels"].items()
        ports = {p["containerPort"] for c in pod["containers"] for p in c["ports"]}
        assert ports == {p["port"] for r in policy["spec"]["ingress"] for p in r["ports"]}


def test_the_validator_rejects_a_broken_manifest(make_cfg):
    _, manifests = manifests_for(make_cfg)
    broken = copy.deepcopy(manifests[2])
    broken["spec"]["completionMode"] = 3  # a string enum in the schema
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    extra = copy.deepcopy(manifests[2])
    extra["spec"]["template"]["spec"]["containers"][0]["cpus"] = "1"  # unknown field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(extra, K8S_VERSION, strict=True)


def test_dry_run_prints_yaml_of_every_manifest(make_cfg, repo_params):
    overrides = distributed_overrides("kubernetes", "async", 4, 2, "registry.example/w2v:1.0")
    cfg = make_cfg(**overrides)
    docs = list(yaml.safe_load_all(dry_run_text(cfg, overrides)))
    assert [d["kind"] for d in docs] == ["Service", "NetworkPolicy", "Job", "Job"]  # ps, worker
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    args = docs[2]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "distributed.workers=4" in args and "distributed.ps=2" in args
    local = dry_run_text(make_cfg(), {})
    assert local.count("TF_CONFIG=") == 2 and "127.0.0.1:" in local
    with pytest.raises(ParamsError, match="only overrides distributed"):
        distributed_overrides(overrides={"word2vec.dims": 8})


class FakeApiServer(http.server.ThreadingHTTPServer):
    """Just the API-server endpoints the backend calls; Jobs complete after a few polls."""

    def __init__(self, fail_role: str | None = None) -> None:
        super().__init__(("127.0.0.1", 0), FakeApiHandler)
        self.objects: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.polls = 0
        self.fail_role = fail_role


class FakeApiHandler(http.server.BaseHTTPRequestHandler):
    server: FakeApiServer

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, code: int, body, content="application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.server.requests.append(("POST", self.path))
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.objects[body["metadata"]["name"]] = body
        self._send(201, body)

    def do_DELETE(self) -> None:
        self.server.requests.append(("DELETE", self.path))
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        name = self.path.split("?")[0].rstrip("/").split("/")[-1]
        gone = self.server.objects.pop(name, None)
        if gone and gone["kind"] == "Service":  # the API answers a Service delete with it
            self._send(200, gone)
        else:
            self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        self.server.requests.append(("GET", path))
        parts = path.strip("/").split("/")
        if path.endswith("/status"):  # .../jobs/<name>/status
            job = dict(self.server.objects[parts[-2]])
            role = job["metadata"]["labels"]["app.kubernetes.io/component"]
            self.server.polls += 1
            conditions = []
            if self.server.polls > 6 and role == (self.server.fail_role or "worker"):
                kind = "Failed" if self.server.fail_role else "Complete"
                conditions = [{"type": kind, "status": "True"}]
            self._send(200, {**job, "status": {"conditions": conditions}})
        elif path.endswith("/log"):
            self._send(200, f"training on {parts[-2]}\ndone", "text/plain")
        elif parts[-1] == "pods":
            pods = [{"metadata": {"name": f"{n}-0"}} for n, o in self.server.objects.items()
                    if o["kind"] == "Job"]
            self._send(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {},
                             "items": pods})
        else:
            self._send(404, {"kind": "Status", "apiVersion": "v1", "code": 404})


def serve_fake(tmp_path: Path, monkeypatch, fail_role: str | None = None) -> FakeApiServer:
    server = FakeApiServer(fail_role)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = {
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {
            "server": f"http://127.0.0.1:{server.server_address[1]}"}}],
        "users": [{"name": "fake", "user": {"token": "t"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
    }
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return server


def test_submit_watch_logs_and_cleanup_through_the_client(make_cfg, tmp_path, monkeypatch):
    server = serve_fake(tmp_path, monkeypatch)
    cfg = make_cfg(**{"distributed.backend": "kubernetes", "distributed.strategy": "async",
                      "distributed.namespace": "ml"})
    lines: list[str] = []
    try:
        ok, reason = k8s.run_job(cfg, "w2v-t", ["--job", "w2v-t"], {}, lines.append, poll=0.05)
    finally:
        server.shutdown()
    assert ok and reason == "job w2v-t-worker complete"
    posts = [p for m, p in server.requests if m == "POST"]
    assert posts == ["/api/v1/namespaces/ml/services",
                     "/apis/networking.k8s.io/v1/namespaces/ml/networkpolicies"] + [
        "/apis/batch/v1/namespaces/ml/jobs"] * 2
    assert "[w2v-t-worker-0] training on w2v-t-worker-0" in lines
    assert any(line.startswith("[kubernetes] w2v-t: ps=Running") for line in lines)
    deleted = sorted(p.split("?")[0] for m, p in server.requests if m == "DELETE")
    assert deleted == sorted(
        ["/api/v1/namespaces/ml/services/w2v-t",
         "/apis/networking.k8s.io/v1/namespaces/ml/networkpolicies/w2v-t-peers"]
        + [f"/apis/batch/v1/namespaces/ml/jobs/w2v-t-{r}" for r in ("ps", "worker")])
    assert server.objects == {}  # nothing left behind


def test_a_failed_job_is_reported_and_still_cleaned_up(make_cfg, tmp_path, monkeypatch):
    server = serve_fake(tmp_path, monkeypatch, fail_role="worker")
    cfg = make_cfg(**{"distributed.backend": "kubernetes", "distributed.strategy": "sync"})
    try:
        ok, reason = k8s.run_job(cfg, "w2v-f", ["--job", "w2v-f"], {}, lambda _: None,
                                 poll=0.05)
    finally:
        server.shutdown()
    assert not ok and reason == "job w2v-f: worker failed"
    assert server.objects == {}


def test_example_manifests_in_deploy_validate():
    folder = Path(__file__).resolve().parents[1] / "deploy" / "kubernetes"
    kinds = []
    for path in sorted(folder.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            kinds.append(doc["kind"])
    assert kinds.count("Job") == 3 and kinds.count("Service") == 2
    assert kinds.count("NetworkPolicy") == 2  # one per example job
    assert {"Role", "RoleBinding"} <= set(kinds)
