"""Where the `mnist` stage's results go: TensorBoard, MLflow, DVC metrics/plots, model files.

- `EvalLogger(name, tb_dir)`: the training loops' `on_eval(step, point)` callback. Each point
  (train_loss, train_accuracy, dev_loss, dev_accuracy, epoch, seconds) becomes TensorBoard
  scalars `loss` / `accuracy` under `<tb_dir>/<name>/train` and `<tb_dir>/<name>/dev` (step =
  training step) and MLflow metrics `<name>/<key>` at that step (when a run is active).
- `save_model_outputs(name, result, test, out, metrics_dir)`: writes, each atomically,
  `<out>/<name>.keras` (the model, reloadable with `tasks.digits.predict.load_model`),
  `<metrics_dir>/mnist_<name>_curves.json` (the eval points, DVC plots),
  `mnist_<name>_confusion.png`, `mnist_<name>_misclassified.png` and, for the softmax model,
  `mnist_softmax_weights.png` (W as ten 28x28 images); logs them to MLflow (`<name>/`); returns
  the model's metrics: test_accuracy, test_loss, the last dev_accuracy, per_class_accuracy, steps,
  epochs, train_seconds, params.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tensorflow as tf

from tasks.core import tracking
from tasks.core.atomic import write_json
from tasks.digits import plots
from tasks.digits.models import save_keras
from tasks.digits.split import Part
from tasks.digits.train import TrainResult


class EvalLogger:
    """`on_eval` callback: one eval point -> TensorBoard scalars and MLflow metrics."""

    def __init__(self, name: str, tb_dir: Path) -> None:
        self.name = name
        self.writers = {part: tf.summary.create_file_writer(str(tb_dir / name / part))
                        for part in ("train", "dev")}

    def __call__(self, step: int, point: dict[str, float]) -> None:
        for part, writer in self.writers.items():
            if f"{part}_loss" not in point:
                continue
            with writer.as_default(step=step):
                tf.summary.scalar("loss", point[f"{part}_loss"])
                tf.summary.scalar("accuracy", point[f"{part}_accuracy"])
        tracking.log_metrics({f"{self.name}/{key}": value for key, value in point.items()},
                             step=step)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.flush()
            writer.close()


def figure_paths(name: str, metrics_dir: Path) -> dict[str, Path]:
    """The PNGs (and curves file) one model writes, by kind."""
    paths = {"curves": metrics_dir / f"mnist_{name}_curves.json",
             "confusion": metrics_dir / f"mnist_{name}_confusion.png",
             "misclassified": metrics_dir / f"mnist_{name}_misclassified.png"}
    if name == "softmax":
        paths["weights"] = metrics_dir / "mnist_softmax_weights.png"
    return paths


def save_model_outputs(name: str, result: TrainResult, test: Part, out: Path,
                       metrics_dir: Path) -> dict[str, Any]:
    """Write one model's files and figures (see the module docstring); -> its metrics."""
    model_path = save_keras(result.model, out / f"{name}.keras")
    paths = figure_paths(name, metrics_dir)
    write_json(paths["curves"], [{k: round(v, 6) if isinstance(v, float) else v
                                  for k, v in point.items()} for point in result.curves])
    plots.plot_confusion(result.confusion, paths["confusion"], title=f"mnist {name}")
    plots.plot_misclassified(test.images, test.labels, result.predictions,
                             paths["misclassified"], result.probabilities)
    if "weights" in paths and result.weights is not None:
        plots.plot_weights(result.weights, paths["weights"])
    for path in (model_path, *paths.values()):
        tracking.log_artifact(path, name)
    metrics = {key: result.metrics[key] for key in ("test_accuracy", "test_loss", "steps",
                                                     "epochs", "train_seconds", "params")}
    if "dev_accuracy" in result.curves[-1]:  # no dev part when mnist.dev_fraction is 0
        metrics["dev_accuracy"] = result.curves[-1]["dev_accuracy"]
    metrics["per_class_accuracy"] = result.metrics["per_class_accuracy"]
    # dev_accuracy is already in the per-step history: log only the final test figures
    tracking.log_metrics({f"{name}/{k}": v for k, v in metrics.items() if k != "dev_accuracy"})
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in metrics.items()}
