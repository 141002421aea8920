"""Cluster shapes, TF_CONFIG for every task, and the `distributed` params."""

from __future__ import annotations

import json
import socket

import pytest

from tasks.core.errors import ParamsError, PipelineError
from tasks.distributed.cluster import (
    ClusterShape,
    current_task,
    free_ports,
    kubernetes_cluster,
    local_cluster,
    tf_config,
    tf_config_from_pod_env,
)


def test_shapes_list_their_tasks_and_chief():
    sync = ClusterShape("sync", 3, ps=2)  # ps means nothing to all-reduce: dropped
    assert sync.ps == 0 and sync.tag == "sync-3w"
    assert sync.tasks() == [("worker", 0), ("worker", 1), ("worker", 2)]
    assert sync.chief == ("worker", 0) and not sync.is_server_only("worker")
    a = ClusterShape("async", 2, 1)
    assert a.tag == "async-2w-1ps"
    # the parameter servers first (the workers need them); worker 0 is the chief, as in sync
    assert a.tasks() == [("ps", 0), ("worker", 0), ("worker", 1)]
    assert a.chief == ("worker", 0)
    assert a.is_server_only("ps") and not a.is_server_only("worker")
    with pytest.raises(PipelineError, match="parameter server"):
        ClusterShape("async", 2, 0)
    with pytest.raises(PipelineError, match="at least one worker"):
        ClusterShape("sync", 0)


def test_local_tf_config_for_every_task_is_consistent():
    shape = ClusterShape("async", 2, 2)
    cluster = local_cluster(shape)
    addresses = [a for role in cluster.values() for a in role]
    assert len(addresses) == 4 and len(set(addresses)) == 4  # one free port per task
    assert all(a.startswith("127.0.0.1:") for a in addresses)
    for role, index in shape.tasks():
        config = json.loads(tf_config(cluster, role, index))
        assert config["cluster"] == cluster
        assert config["task"] == {"type": role, "index": index}
        task = current_task({"TF_CONFIG": tf_config(cluster, role, index)})
        assert (task.type, task.index) == (role, index)
        assert task.shape == shape
        assert task.is_chief == ((role, index) == ("worker", 0))
    with pytest.raises(PipelineError, match="no task worker:2"):
        tf_config(cluster, "worker", 2)


def test_sync_worker_zero_is_the_chief():
    cluster = local_cluster(ClusterShape("sync", 2))
    assert set(cluster) == {"worker"}
    chief = current_task({"TF_CONFIG": tf_config(cluster, "worker", 0)})
    other = current_task({"TF_CONFIG": tf_config(cluster, "worker", 1)})
    assert chief.is_chief and not other.is_chief and chief.shape.strategy == "sync"


def test_free_ports_are_bindable():
    for port in free_ports(3):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_pod_builds_its_tf_config_from_the_indexed_job_env():
    shape = ClusterShape("async", 4, 2)
    cluster = kubernetes_cluster(shape, lambda role: f"w2v-x-{role}", "w2v-x", "ml")
    assert cluster["worker"][3] == "w2v-x-worker-3.w2v-x.ml.svc.cluster.local:2222"
    assert cluster["ps"][1] == "w2v-x-ps-1.w2v-x.ml.svc.cluster.local:2222"
    env = {"TF_CLUSTER_SPEC": json.dumps(cluster), "TF_TASK_TYPE": "worker",
           "JOB_COMPLETION_INDEX": "3"}
    config = json.loads(tf_config_from_pod_env(env))
    assert config["task"] == {"type": "worker", "index": 3}
    assert current_task(env).name == "worker:3"
    with pytest.raises(PipelineError, match="no task worker:4"):
        tf_config_from_pod_env({**env, "JOB_COMPLETION_INDEX": "4"})
    with pytest.raises(PipelineError, match="cannot build TF_CONFIG"):
        tf_config_from_pod_env({"TF_TASK_TYPE": "worker"})


def test_distributed_params_are_validated(make_cfg):
    cfg = make_cfg(**{"distributed.strategy": "async", "distributed.ps": 2})
    assert ClusterShape.from_config(cfg.distributed).tag == "async-2w-2ps"
    assert ClusterShape.from_config(make_cfg().distributed).ps == 0  # sync ignores ps
    with pytest.raises(ParamsError, match="distributed.ps: strategy async needs"):
        make_cfg(**{"distributed.strategy": "async", "distributed.ps": 0})
    with pytest.raises(ParamsError, match="distributed.backend: expected one of"):
        make_cfg(**{"distributed.backend": "slurm"})
    with pytest.raises(ParamsError, match="distributed.workers: must be >= 1"):
        make_cfg(**{"distributed.workers": 0})
