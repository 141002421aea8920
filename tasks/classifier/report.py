"""What the cnn stage leaves behind: saved model, curves, confusion matrix, MLflow model,
and the cnn.json summary.

    save_outputs(cfg, end_to_end_model, spec, confusion, history)
    summarise(results, states, folds) -> cnn.json metrics

Paths: <paths.cnn>/model.keras, labels.txt, model.json; <paths.metrics>/cnn_curves.json and
cnn_confusion.png (params section `paths`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tasks.core import tracking
from tasks.core.atomic import atomic_file, atomic_path, write_json
from tasks.core.params import Config


def save_outputs(cfg: Config, model, spec: dict[str, Any], confusion: list[list[int]],
                 history: list[dict[str, float]]) -> None:
    """model.keras + labels.txt + model.json, the curves and the confusion PNG; MLflow."""
    out, metrics_dir = cfg.path("cnn"), cfg.path("metrics")
    with atomic_path(out / "model.keras") as tmp:   # Keras insists on the .keras suffix
        model.save(tmp)
    with atomic_file(out / "labels.txt") as handle:
        handle.write("".join(f"{name}\n" for name in spec["labels"]))
    write_json(metrics_dir / "cnn_curves.json", history)
    plot_confusion(confusion, spec["labels"], metrics_dir / "cnn_confusion.png")
    if tracking.active():
        import mlflow

        spec["mlflow_run_id"] = mlflow.active_run().info.run_id
        log_mlflow_model(model, spec)
        for path in (out / "labels.txt", metrics_dir / "cnn_curves.json",
                     metrics_dir / "cnn_confusion.png"):
            tracking.log_artifact(path, "cnn")
    write_json(out / "model.json", spec)


def log_mlflow_model(model, spec: dict[str, Any]) -> None:
    """The end-to-end model in MLflow's tensorflow flavour (loads with
    `mlflow.tensorflow.load_model` or `mlflow.pyfunc.load_model`, strings in)."""
    import importlib.metadata as md

    import keras
    import mlflow

    # Explicit requirements: MLflow's inference would reload the model in a subprocess (~1 min).
    reqs = [f"{d}=={md.version(d)}" for d in ("tensorflow", "keras", "cloudpickle")]
    example = np.array(["a gorgeous , witty , seductive movie"], dtype=object)
    # MLflow runs model.predict on the example; Keras would draw a progress bar (with escape
    # codes) into the stage's log, so interactive logging is off while it does.
    keras.config.disable_interactive_logging()
    try:
        mlflow.tensorflow.log_model(model, name="model", input_example=example,
                                    pip_requirements=reqs, metadata={"labels": spec["labels"]})
    finally:
        keras.config.enable_interactive_logging()


def plot_confusion(confusion: list[list[int]], names: Sequence[str], path: Path) -> None:
    """Counts [true, predicted] as an annotated heat map (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(confusion)
    fig, ax = plt.subplots(figsize=(2.5 + 0.6 * len(names), 2 + 0.6 * len(names)), dpi=100)
    ax.imshow(counts, cmap="Blues")
    ax.set(xticks=range(len(names)), yticks=range(len(names)), xticklabels=names,
           yticklabels=names, xlabel="predicted", ylabel="true", title="cnn: test confusion")
    for (i, j), n in np.ndenumerate(counts):
        ax.text(j, i, str(n), ha="center", va="center",
                color="white" if n > counts.max() / 2 else "black")
    fig.tight_layout()
    with atomic_file(path, "wb") as handle:
        fig.savefig(handle, format="png")
    plt.close(fig)


def summarise(results: list[dict], states: list, folds: list) -> dict[str, Any]:
    """cnn.json: test/dev scores (mean and std over folds under kfold) and timing."""
    acc = np.array([r["accuracy"] for r in results])
    seconds = [s for state in states for s in state.seconds]
    metrics: dict[str, Any] = {
        "test_accuracy": round(float(acc.mean()), 6),
        "test_macro_f1": round(float(np.mean([r["macro_f1"] for r in results])), 6),
        "dev_accuracy": round(float(np.mean([s.best_dev_accuracy for s in states])), 6),
        "best_epoch": int(states[-1].best_epoch) if len(states) == 1
        else round(float(np.mean([s.best_epoch for s in states])), 2),
        "epochs_run": int(sum(s.epoch for s in states)),
        "seconds_per_epoch": round(float(np.mean(seconds)), 3) if seconds else 0.0,
        "train_size": len(folds[0].train.texts), "test_size": len(folds[0].test.texts),
        "confusion_matrix": sum(r["confusion"] for r in results).tolist(),
    }
    if len(results) > 1:
        metrics.update(folds=len(results), test_accuracy_std=round(float(acc.std()), 6),
                       fold_test_accuracy=[round(float(a), 6) for a in acc])
        for k, a in enumerate(acc):
            tracking.log_metrics({"fold_test_accuracy": float(a)}, step=k)
    return metrics
