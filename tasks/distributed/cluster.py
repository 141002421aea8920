"""Cluster shapes and TF_CONFIG: which tasks a distributed job has and how they find each other.

Params section: `distributed` (strategy, workers, ps).

Both strategies train with `workers` tasks of type `worker`, each running the word2vec stage's
Trainer; worker 0 is the chief (it checkpoints, writes the outputs and logs to MLflow).
- sync (MultiWorkerMirroredStrategy): the workers all-reduce their updates.
- async (parameter servers): `ps` tasks of type `ps` only run a `tf.distribute.Server` holding
  the tables; the workers push their updates to them and pull (tasks/embeddings/
  parameter_servers.py).

`TF_CONFIG` is what TensorFlow reads in every task:
`{"cluster": {"worker": [...], "ps": [...]}, "task": {"type": t, "index": i}}`.
The local backend builds it with free loopback ports; in Kubernetes a pod builds it itself from
`TF_CLUSTER_SPEC`, `TF_TASK_TYPE` and the Indexed Job's `JOB_COMPLETION_INDEX`
(`tf_config_from_pod_env`), because one pod template serves every index of a role.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tasks.core.errors import PipelineError
from tasks.core.params import Distributed

PORT = 2222  # the gRPC port every Kubernetes pod listens on (TensorFlow's customary one)


@dataclass(frozen=True)
class ClusterShape:
    """How many tasks of which role; `ps` is ignored (0) for the sync strategy."""

    strategy: str  # sync | async
    workers: int
    ps: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in ("sync", "async"):
            raise PipelineError(f"distributed.strategy: unknown strategy {self.strategy!r}")
        if self.workers < 1:
            raise PipelineError("distributed.workers: need at least one worker")
        if self.strategy == "async" and self.ps < 1:
            raise PipelineError("distributed.ps: strategy async needs a parameter server")
        if self.strategy == "sync" and self.ps:
            object.__setattr__(self, "ps", 0)

    @classmethod
    def from_config(cls, dist: Distributed) -> ClusterShape:
        return cls(dist.strategy, dist.workers, dist.ps if dist.strategy == "async" else 0)

    @property
    def roles(self) -> dict[str, int]:
        """Role -> number of tasks, in start order (servers before the workers that need them)."""
        if self.strategy == "sync":
            return {"worker": self.workers}
        return {"ps": self.ps, "worker": self.workers}

    def tasks(self) -> list[tuple[str, int]]:
        return [(role, i) for role, n in self.roles.items() for i in range(n)]

    @property
    def chief(self) -> tuple[str, int]:
        """The task that writes checkpoints' final copy, outputs and MLflow records."""
        return ("worker", 0)

    def is_server_only(self, role: str) -> bool:
        """True for tasks that only serve gRPC (parameter servers): stopped after the chief."""
        return role == "ps"

    @property
    def tag(self) -> str:
        """`sync-2w` or `async-2w-1ps`: MLflow tag, job names, log prefixes."""
        return f"{self.strategy}-{self.workers}w" + (f"-{self.ps}ps" if self.ps else "")


def cluster_spec(shape: ClusterShape, address: Callable[[str, int], str]) -> dict[str, list[str]]:
    """{role: ["host:port", ...]} with `address(role, index)` giving each task's address."""
    return {role: [address(role, i) for i in range(n)] for role, n in shape.roles.items()}


def tf_config(cluster: Mapping[str, list[str]], task_type: str, index: int) -> str:
    """The TF_CONFIG JSON string for one task."""
    if task_type not in cluster or not 0 <= index < len(cluster[task_type]):
        raise PipelineError(f"TF_CONFIG: no task {task_type}:{index} in cluster {dict(cluster)}")
    return json.dumps({"cluster": dict(cluster), "task": {"type": task_type, "index": index}},
                      sort_keys=True)


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports the OS says are free on `host` (all held open while choosing)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(sock.getsockname()[1])
        return ports


def local_cluster(shape: ClusterShape, host: str = "127.0.0.1") -> dict[str, list[str]]:
    """A cluster spec on loopback with a fresh free port per task."""
    ports = iter(free_ports(len(shape.tasks()), host))
    return cluster_spec(shape, lambda _role, _i: f"{host}:{next(ports)}")


def kubernetes_cluster(shape: ClusterShape, job_name: Callable[[str], str], service: str,
                       namespace: str, port: int = PORT) -> dict[str, list[str]]:
    """Stable DNS names of Indexed Job pods behind a headless Service.

    An Indexed Job's pod `i` has hostname `<job>-<i>`; with `subdomain: <service>` it resolves
    as `<job>-<i>.<service>.<namespace>.svc.cluster.local`, across pod restarts.
    """
    return cluster_spec(shape, lambda role, i: (
        f"{job_name(role)}-{i}.{service}.{namespace}.svc.cluster.local:{port}"))


def tf_config_from_pod_env(env: Mapping[str, str]) -> str:
    """TF_CONFIG for a Kubernetes pod from TF_CLUSTER_SPEC, TF_TASK_TYPE, JOB_COMPLETION_INDEX."""
    try:
        cluster = json.loads(env["TF_CLUSTER_SPEC"])
        task_type = env["TF_TASK_TYPE"]
        index = int(env.get("JOB_COMPLETION_INDEX", "0"))
    except (KeyError, ValueError) as exc:
        raise PipelineError(f"pod environment: cannot build TF_CONFIG ({exc!r})") from None
    return tf_config(cluster, task_type, index)


@dataclass(frozen=True)
class Task:
    """This process's place in the cluster, parsed from TF_CONFIG."""

    cluster: dict[str, list[str]]
    type: str
    index: int

    @property
    def shape(self) -> ClusterShape:
        strategy = "async" if "ps" in self.cluster else "sync"
        return ClusterShape(strategy, len(self.cluster.get("worker", [])),
                            len(self.cluster.get("ps", [])))

    @property
    def is_chief(self) -> bool:
        return (self.type, self.index) == self.shape.chief

    @property
    def name(self) -> str:
        return f"{self.type}:{self.index}"


def current_task(env: Mapping[str, str] | None = None) -> Task:
    """Parse TF_CONFIG (building it from the pod environment first if only that is set)."""
    env = os.environ if env is None else env
    raw = env.get("TF_CONFIG") or tf_config_from_pod_env(env)
    try:
        config = json.loads(raw)
        task = Task(dict(config["cluster"]), config["task"]["type"], int(config["task"]["index"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise PipelineError(f"TF_CONFIG: not a valid cluster description ({exc!r})") from None
    tf_config(task.cluster, task.type, task.index)  # validates the index
    return task
