"""AsyncWorkers against real TensorFlow parameter servers (gRPC on loopback, in this process).

Two servers, so every table is row-sharded; two workers with their own tables, as two worker
processes would have. What a job relies on: the chief's state reaches every worker, a push is
added to what others pushed (no barrier, nothing lost), a restarted worker finds its position,
and the chief ends with every worker's last update.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tasks.core.errors import PipelineError
from tasks.distributed.cluster import free_ports
from tasks.embeddings.parameter_servers import AsyncWorkers

V, D = 7, 4   # 7 rows over 2 servers: blocks of 3 and 4 rows


class Tables:
    """The part of Word2VecModel a placement uses: its variables by name."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.vars = {"input_embeddings": tf.Variable(rng.integers(-4, 4, (V, D)).astype("f4")),
                     "output_embeddings": tf.Variable(np.zeros((V, D), "f4"))}

    def variables_by_name(self) -> dict:
        return self.vars

    def numpy(self, name: str = "input_embeddings") -> np.ndarray:
        return self.vars[name].numpy()


def position(step: int, epoch: int = 0, chunk: int = 0, call: int = 0) -> list:
    return [tf.Variable(v, dtype=tf.int64) for v in (step, epoch, chunk, call)] + [
        tf.Variable([0.0, 0.0], dtype=tf.float64)]


def start_servers(count: int) -> list[str]:
    """`count` parameter servers of a fresh job (a job's servers hold one job's variables);
    they live as long as the test process."""
    addresses = [f"127.0.0.1:{p}" for p in free_ports(count)]
    cluster = tf.train.ClusterSpec({"ps": addresses})
    for i in range(count):
        tf.distribute.Server(cluster, job_name="ps", task_index=i)
    return addresses


@pytest.fixture
def servers() -> list[str]:
    return start_servers(2)


def test_workers_share_tables_through_the_servers(servers):
    chief_model, other_model = Tables(1), Tables(2)
    chief = AsyncWorkers(servers, 0, 2, push_every=8, threads=2, timeout=30)
    other = AsyncWorkers(servers, 1, 2, push_every=8, threads=2, timeout=30)
    assert (chief.share(list(range(6))), other.share(list(range(6)))) == ([0, 2, 4], [1, 3, 5])
    assert chief.local_threads(2) == 1 and chief.scale == 1.0   # 2 replicas in all: summed

    chief_state = position(40, 1, 2, 3)
    chief.start(chief_model, chief_state)
    other_state = position(0)
    other.start(other_model, other_state)
    # the chief's tables and position reached the other worker
    assert np.array_equal(other_model.numpy(), chief_model.numpy())
    assert [int(v.numpy()) for v in other_state[:4]] == [40, 1, 2, 3]

    start = chief_model.numpy().copy()
    # both train (on their own copies), then push and pull without waiting for each other
    chief_model.vars["input_embeddings"].assign_add(np.eye(V, D, dtype="f4"))         # rows 0-3
    other_model.vars["input_embeddings"].assign_add(2 * np.eye(V, D, k=-3, dtype="f4"))  # 3-6
    other_state[0].assign(48)
    assert other.exchange(5.0, 2.0) == (5.0, 2.0)   # its own loss: nobody waits to add it
    chief.exchange(1.0, 1.0)
    expected = start + np.eye(V, D, dtype="f4") + 2 * np.eye(V, D, k=-3, dtype="f4")
    assert np.array_equal(chief_model.numpy(), expected)   # both updates, across both servers
    other.exchange(0.0, 0.0)   # nothing new of its own: it pulls the chief's update
    assert np.array_equal(other_model.numpy(), expected)
    assert other.exchanges == 2 and other.exchange_seconds > 0

    # a restarted worker 1 resumes at its last exchange with the current tables
    restarted_model, restarted_state = Tables(3), position(0)
    AsyncWorkers(servers, 1, 2, 8, 2, 30).start(restarted_model, restarted_state)
    assert int(restarted_state[0].numpy()) == 48
    assert np.array_equal(restarted_model.numpy(), expected)

    # the end: the chief takes every worker's last update, only once all are finished
    other_model.vars["output_embeddings"].assign_add(np.full((V, D), 0.5, "f4"))
    other.exchange(0.0, 0.0)
    assert other.finish(other_model) is False
    assert chief.finish(chief_model) is True
    assert np.array_equal(chief_model.numpy("output_embeddings"), np.full((V, D), 0.5, "f4"))
    assert np.array_equal(chief_model.numpy(), expected)


def test_updates_cross_the_wire_as_float16_without_drift(servers):
    """Rounded pulls never accumulate on the servers: 100 tiny updates add up exactly."""
    model = Tables(4)
    model.vars["input_embeddings"].assign(np.full((V, D), 1.0 + 1e-4, "f4"))   # not in float16
    worker = AsyncWorkers(servers, 0, 1, 8, 1, 30)
    worker.start(model, position(0))
    for _ in range(100):
        model.vars["input_embeddings"].assign_add(np.full((V, D), 0.25, "f4"))
        worker.exchange(0.0, 0.0)
    worker.finish(model)   # exact (float32) final pull
    np.testing.assert_allclose(model.numpy(), 1.0 + 1e-4 + 25.0, rtol=0, atol=1e-4)
    assert worker.scale == 1.0


def test_a_worker_waits_for_the_chief_then_times_out():
    # servers the chief never initialised: the worker polls, then fails with one line
    late = AsyncWorkers(start_servers(1), 1, 2, 8, 2, timeout=1.0)
    with pytest.raises(PipelineError, match="timed out after 1 s waiting for the chief"):
        late.start(Tables(5), position(0))
