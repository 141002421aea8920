"""Everything one `pipeline` flow run needs besides Prefect itself.

`PipelineRun.open(root, overrides, ...)` validates the overrides with the project's parser
and checks the stage list BEFORE any work and builds the environment of the stage processes
(PIPELINE_RUN_ID, PREFECT_FLOW_RUN_ID, PIPELINE_OVERRIDES, PIPELINE_PARENT_RUN_FILE).
The parent run's tags mean what the stage runs' tags mean: `variant` = the CNN's embedding
variant (`cnn.embedding_init` after the overrides: rand, static, non-static, multichannel; only
when dvc.yaml has the `cnn` stage, whose run carries the same tag), `overrides` = the params
overrides (`cnn.embedding_init=rand`, `baseline` without any), so `tags.variant = 'rand'` finds
a pipeline run's parent and its cnn run alike. `start()` launches the run's one DVC process, whose
output the per-stage tasks follow: `dvc repro dvc.yaml`, or with overrides the DVC
experiment (`dvc exp run --temp`), then opens the MLflow parent run while DVC starts up and
writes its id into the handover file the stages read (tasks.core.tracking.parent_run_id). `close(results)` reads the
metrics files (workspace, or the experiment's commit), finishes the MLflow parent run with
tags and metrics, and returns the flow's summary (also the source of the Prefect artifact).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flows import stages as dvc
from flows.common import (
    exp_ref,
    git,
    head_commit,
    lock_data_tags,
    read_metrics,
    summary_rows,
)
from flows.experiment import Experiment
from flows.follow import DvcProcess
from flows.overrides import exp_name as make_exp_name
from flows.overrides import validate, variant_name
from flows.parent_run import ParentRun, ParentRunProcess, open_parent_run
from tasks.core import tracking
from tasks.core.params import Config


class PipelineRun:
    def __init__(self, root: Path, overrides: Mapping[str, Any], flow_run_id: str,
                 flow_run_name: str, exp_name: str | None,
                 mlflow_tags: Mapping[str, str] | None, lock_timeout: float) -> None:
        self.root = root.resolve()
        self.overrides = dict(overrides)
        self.cfg = validate(self.root, self.overrides)       # ParamsError before any work
        self.stages = dvc.stage_names(self.root)             # StageError before any work
        self.flow_run_id, self.flow_run_name = flow_run_id, flow_run_name
        self.overrides_label = variant_name(self.overrides)
        self.variant = self.cfg.cnn.embedding_init if "cnn" in self.stages else None
        self.lock_timeout = lock_timeout
        self.baseline = head_commit(self.root)
        self.exp_name = None
        if self.overrides:
            self.exp_name = exp_name or make_exp_name("pipeline", self.overrides,
                                                      flow_run_id or uuid.uuid4().hex)
        tags = {"prefect_flow_run_id": flow_run_id, "prefect_flow_run_name": flow_run_name,
                "pipeline_run": flow_run_id, "variant": self.variant or "",
                "overrides": self.overrides_label,
                "dvc_exp_name": self.exp_name or "", **(mlflow_tags or {})}
        self.parent_name, self.parent_tags = self.exp_name or f"pipeline-{flow_run_name}", tags
        self.parent: ParentRun | ParentRunProcess = ParentRun.disabled(self.cfg)
        # The stage processes learn the parent run's id from this file (tracking.parent_run_id)
        # because DVC starts before the run exists (start()).
        self.handover = Path(tempfile.mkdtemp(prefix="pipeline-run-")) / "parent-run-id"
        self.env = {"PIPELINE_RUN_ID": flow_run_id, "PREFECT_FLOW_RUN_ID": flow_run_id,
                    "PIPELINE_OVERRIDES": self.overrides_label,
                    tracking.PARENT_FILE_ENV: str(self.handover)}
        self.process: DvcProcess | None = None

    @classmethod
    def open(cls, root: str | Path, overrides: Mapping[str, Any] | None, flow_run_id: str | None,
             flow_run_name: str | None, exp_name: str | None = None,
             mlflow_tags: Mapping[str, str] | None = None,
             lock_timeout: float = 3600.0) -> PipelineRun:
        run_id = flow_run_id or f"local-{uuid.uuid4().hex[:12]}"
        return cls(Path(root), overrides or {}, run_id, flow_run_name or run_id, exp_name,
                   mlflow_tags, lock_timeout)

    @staticmethod
    def validate_only(root: str | Path, overrides: Mapping[str, Any] | None) -> Config:
        """The checks `open` makes before any work: params (with overrides), stage order."""
        dvc.stage_names(root)
        return validate(root, overrides)

    def start(self, on_other: dvc.LineSink) -> DvcProcess:
        """Start the one DVC process of this run, to be followed stage by stage:
        `dvc repro dvc.yaml` in the workspace, or with overrides `dvc exp run --temp`; then
        open the MLflow parent run while DVC starts up (both take ~1-2 s of CPU: on two cores
        they overlap) and hand its id to the stages through `self.handover`."""
        env = dvc.stage_env(self.env)
        if self.exp_name:
            self.process = Experiment(self.root, self.exp_name, self.overrides, env, self.stages,
                                  on_other, lock_timeout=self.lock_timeout)
        else:
            self.process = DvcProcess(self.root, ["repro", "dvc.yaml"], env, self.stages,
                                  "dvc repro", on_other, lock_timeout=self.lock_timeout,
                                  resume_on_lock=True)
        self.process.start()
        self.open_parent()
        return self.process

    def open_parent(self) -> ParentRun | ParentRunProcess:
        """Open the MLflow parent run (flows/parent_run.py: in a helper process unless MLflow
        is loaded here already) and write its id into the handover file."""
        try:
            self.parent = open_parent_run(self.cfg, self.parent_name, self.parent_tags,
                                          params=self.overrides, overrides=self.overrides)
        finally:  # a stage waiting for the id must not wait in vain: "" = no parent
            tracking.publish_parent_run_id(self.handover, self.parent.run_id)
        return self.parent

    def close(self, results: Mapping[str, Mapping[str, Any]] | None, ok: bool) -> dict[str, Any]:
        """Finish the MLflow parent run; return the summary of this pipeline run."""
        if self.process is not None:
            self.process.close()
        shutil.rmtree(self.handover.parent, ignore_errors=True)
        results = dict(results or {})
        rev, metrics, tags = None, {}, {}
        try:
            if self.exp_name and ok:
                ref = exp_ref(self.baseline, self.exp_name)
                sha = (git(self.root, "rev-parse", "--verify", "-q", ref) or "").strip()
                rev = ref if sha else None
                tags["dvc_exp_rev"] = sha or "missing"
            if ok:
                metrics = read_metrics(self.cfg, self.stages, rev)
                tags.update(lock_data_tags(self.root, rev))
            tags.update({f"stage_status.{s}": r["status"] for s, r in results.items()})
        finally:  # the parent run must not stay RUNNING, whatever failed above
            self.parent.finish(ok, tags, metrics)
        children = self.parent.children()
        return {
            "flow_run_id": self.flow_run_id,
            "flow_run_name": self.flow_run_name,
            "variant": self.variant,
            "overrides": self.overrides_label,
            "dvc_exp_name": self.exp_name,
            "mlflow_run_id": self.parent.run_id,
            "mlflow_experiment": self.cfg.tracking.experiment,
            "tracking_uri": tracking.tracking_uri(self.cfg),
            "stages": results,
            "stage_runs": children,
            "metrics": metrics,
            "rows": summary_rows(results, metrics, children),
        }
