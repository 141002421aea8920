"""Prefect flows over the DVC pipeline (the only package that imports Prefect).

- `flows.pipeline`: the `pipeline` flow, one task run per dvc.yaml stage, run through DVC.
- `flows.sweep`: the `sweep` flow, one DVC experiment per params-overrides mapping.
- `flows.compare`: latest MLflow run per variant (CLI, no Prefect).
- `flows.distributed`: distributed word2vec training (docs/distributed.md).

Nothing runs on import. See docs/orchestration.md.
"""
