"""The job folder every task of a distributed job shares.

Params section: `distributed` (shared_path).

The job folder `<distributed.shared_path>/<job>/` is on storage every task sees (the local
disk, or the Kubernetes PVC):
- checkpoints/   the chief's checkpoints in the word2vec stage's Trainer format (with its
                 fingerprint.json and history.json): what a restarted job resumes from;
- tensorboard/   the chief's loss / learning-rate / words-per-second and evaluation summaries;
- replicas/      every worker's step count and table digest at its end;
- result.json    the chief's metrics once the outputs are written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.core.atomic import write_json
from tasks.core.params import Config

log = logging.getLogger("tasks.distributed")


@dataclass(frozen=True)
class JobDir:
    root: Path

    @classmethod
    def of(cls, cfg: Config, job: str) -> JobDir:
        return cls(cfg.resolve(cfg.distributed.shared_path) / job)

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def result(self) -> Path:
        return self.root / "result.json"

    def write_result(self, metrics: dict[str, Any]) -> None:
        write_json(self.result, metrics)
