"""Per-worker training shards on shared storage, for the parameter-server (async) strategy.

A ParameterServerStrategy worker is only a TensorFlow server: it cannot run the project's
Python batch generator (tasks/embeddings/inputs.py), and `tf.data.Dataset.from_generator`
would call back into the chief's Python. So the chief writes each epoch's batches to the
job folder, one folder per worker, and each worker's dataset reads its own folder with plain
TensorFlow file ops. The batches come from the single-process stage's generator (no second
input pipeline), split into one shard per worker: the pairs a given step sees differ from the
single process's, and short last batches are dropped.

Layout of `<job>/shards/epoch-<e>/shard-<k>/`: `part-<j>.bin` holds component j of every
batch, raw little-endian, one fixed-size record per batch; `meta.json` gives the number of
batches and each component's per-batch shape and dtype. Written atomically (a folder that
exists is complete). Short last batches are dropped (fixed-size records).

`dataset_fn(epoch_dir, meta)` is what `ClusterCoordinator.create_per_worker_dataset` runs on
every worker: it picks `shard-<worker index>` (tf.distribute.coordinator.
experimental_get_current_worker_index), decodes the records and repeats, so a worker that
is faster than the others keeps going instead of failing with OutOfRange.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from tasks.core.atomic import atomic_dir
from tasks.core.errors import PipelineError

Batch = tuple[np.ndarray, ...]


def write_shard(folder: Path, batches: Iterable[Batch], batch_size: int) -> dict[str, Any]:
    """Write the full batches of `batches` under `folder`; return its meta (count, parts)."""
    if (folder / "meta.json").is_file():  # written by an earlier run of this job: reuse
        return read_meta(folder)
    count, parts = 0, None
    with atomic_dir(folder) as tmp, contextlib.ExitStack() as files:
        handles: list[Any] = []
        for batch in batches:
            if len(batch[0]) != batch_size:
                continue
            if parts is None:
                parts = [{"shape": list(a.shape), "dtype": np.dtype(a.dtype).str}
                         for a in batch]
                handles = [files.enter_context(open(tmp / f"part-{j}.bin", "wb"))
                           for j in range(len(batch))]
            for handle, array in zip(handles, batch, strict=True):
                handle.write(np.ascontiguousarray(array, array.dtype.newbyteorder("<"))
                             .tobytes())
            count += 1
        files.close()
        if parts is None:
            raise PipelineError(f"{folder.name}: the shard has no full batch of {batch_size}; "
                                f"use fewer workers or a smaller word2vec.batch_size")
        meta = {"count": count, "batch_size": batch_size, "parts": parts}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    return meta


def read_meta(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "meta.json").read_text())


def dataset_fn(epoch_dir: Path, meta: dict[str, Any]) -> Callable[[], Any]:
    """A per-worker dataset function reading `<epoch_dir>/shard-<worker index>/`."""
    import tensorflow as tf

    parts = [(tuple(p["shape"]), tf.as_dtype(np.dtype(p["dtype"]))) for p in meta["parts"]]

    def make() -> Any:
        index = tf.distribute.coordinator.experimental_get_current_worker_index()
        folder = tf.strings.join([str(epoch_dir), "/shard-",
                                  tf.strings.as_string(index, width=3, fill="0")])
        columns = []
        for j, (shape, dtype) in enumerate(parts):
            nbytes = int(np.prod(shape)) * dtype.size
            records = tf.data.FixedLengthRecordDataset(
                tf.strings.join([folder, f"/part-{j}.bin"]), record_bytes=nbytes)
            columns.append(records.map(
                lambda r, shape=shape, dtype=dtype: tf.reshape(
                    tf.io.decode_raw(r, dtype, little_endian=True), shape)))
        return tf.data.Dataset.zip(tuple(columns)).repeat().prefetch(2)

    return make
