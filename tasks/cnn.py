"""Stage `cnn`: Kim (2014) CNN sentence classifier over the pipeline's word2vec embeddings.

    python -m tasks.cnn [run] [--params params.yaml] [--set cnn.embedding_init=rand]
    python -m tasks.cnn predict "a gorgeous, witty, seductive movie"   # or lines on stdin

Params: `cnn` (model, training, protocol), `seed`, `prepare.lowercase/folds/dev_fraction`.
Inputs: see `tasks.cnn_data`. Outputs:
- <paths.cnn>/model.keras: end-to-end model, raw strings [B] -> class probabilities [B, C]
  (load it after `import tasks.cnn_data`, which registers the vectoriser layer);
  labels.txt (class names, line = output column) and model.json (spec) beside it;
  checkpoints/ (resume after a kill; kfold: one folder per fold), tensorboard/.
- <paths.metrics>/cnn.json (via stage_main), cnn_curves.json (per-epoch train/dev loss and
  accuracy, DVC plots; fold 0 under kfold), cnn_confusion.png.
- MLflow: params, per-epoch metrics (step = epoch), the model (tensorflow flavour), the
  confusion matrix and curves; tags `variant` = cnn.embedding_init and `comparison` = a hash of
  everything except the variant, shared by runs that `tasks.compare` puts side by side.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tasks import tracking
from tasks.atomic import PipelineError, atomic_file, write_json
from tasks.config import PARAMS_FILE, Config, ParamsError, load_params
from tasks.stage import parse_overrides, setup_logging, stage_main

log = logging.getLogger("tasks.cnn")  # not "__main__" under python -m


def input_parts(cfg: Config) -> dict[str, Any]:
    """Everything a trained model depends on (hashed into the checkpoint fingerprint)."""
    from tasks.cnn_train import file_digest

    prepared, export = cfg.path("prepared"), cfg.path("export")
    files = [prepared / "labels.txt", *(cfg.path("vocab").glob("vocab.*")),
             *(prepared / f for f in (["train.tsv", "dev.tsv", "test.tsv"]
                                      if cfg.cnn.protocol == "split" else ["all.tsv"]))]
    files += [export / "embeddings.npy", export / "vocab.tsv"]
    params = {k: v for k, v in cfg.flat().items() if k.startswith("cnn.")}
    return {"params": params, "seed": cfg.seed, "lowercase": cfg.prepare.lowercase,
            "folds": cfg.prepare.folds, "dev_fraction": cfg.prepare.dev_fraction,
            "files": {f.name: file_digest(f) for f in sorted(files) if f.exists()}}


def fingerprints(cfg: Config) -> tuple[str, str]:
    """(checkpoint fingerprint, comparison id); neither covers epochs/patience."""
    from tasks.cnn_train import fingerprint

    parts = input_parts(cfg)
    for key in ("cnn.epochs", "cnn.patience"):
        parts["params"].pop(key)
    run_fp = fingerprint(parts)
    parts["params"].pop("cnn.embedding_init")
    return run_fp, fingerprint(parts)[:12]


def run(cfg: Config) -> dict[str, Any]:
    import keras

    from tasks import cnn_data, cnn_train
    from tasks.models import kim_cnn

    p, out = cfg.cnn, cfg.path("cnn")
    names = cnn_data.read_labels(cfg.path("prepared"))
    words = cnn_data.vocabulary_words(cfg.path("vocab"))
    folds = cnn_data.load_folds(cfg, names)
    run_fp, comparison = fingerprints(cfg)
    tracking.set_tags({"variant": p.embedding_init, "comparison": comparison,
                       "protocol": p.protocol})
    if p.embedding_init == "rand":
        matrix, hits = kim_cnn.random_matrix(len(words), p.embedding_dims, cfg.seed), 0
    else:
        vectors = cnn_data.load_embeddings(cfg.path("export"), p.embedding_dims)
        matrix, hits = kim_cnn.pretrained_matrix(words, *vectors, cfg.seed)
        log.info("embeddings: %d of %d vocabulary words found", hits, len(words) - 2)
    vectorizer = cnn_data.SentenceVectorizer(words, p.max_length, cfg.prepare.lowercase)
    model_cfg = kim_cnn.KimCNNConfig.from_params(p, len(words), len(names))

    results, states, model = [], [], None
    for fold in folds:
        sub = "" if fold.name == "split" else fold.name
        data = {s: (cnn_data.vectorize(vectorizer, getattr(fold, s).texts),  # [N, T] ids
                    getattr(fold, s).labels) for s in ("train", "dev", "test")}
        keras.utils.set_random_seed(cfg.seed)  # same initial weights for every variant
        model = kim_cnn.build_kim_cnn(model_cfg, matrix)
        kim_cnn.compile_kim_cnn(model, p.optimizer, p.learning_rate)
        state = cnn_train.train(
            model, data, epochs=p.epochs, patience=p.patience, batch_size=p.batch_size,
            seed=cfg.seed, ckpt=out / "checkpoints" / sub, tb=out / "tensorboard" / sub,
            fp=f"{run_fp}:{fold.name}", prefix=f"{sub}/" if sub else "")
        results.append(cnn_train.evaluate(model, *data["test"], num_classes=len(names)))
        states.append(state)
        log.info("%s: test accuracy %.4f (best epoch %d of %d)", fold.name,
                 results[-1]["accuracy"], state.best_epoch, state.epoch)

    metrics = summarise(results, states, folds)
    metrics.update(vocab_size=len(words), embedding_hits=hits,
                   embedding_coverage=round(hits / max(len(words) - 2, 1), 4))
    spec = {"variant": p.embedding_init, "labels": names, "max_length": p.max_length,
            "lowercase": cfg.prepare.lowercase, "vocab_size": len(words),
            "embedding_dims": p.embedding_dims, "protocol": p.protocol,
            "saved_fold": folds[-1].name, "fingerprint": run_fp, "comparison": comparison,
            "test_accuracy": metrics["test_accuracy"]}
    text = keras.Input(shape=(), dtype="string", name="text")  # [B] raw sentences
    end_to_end = keras.Model(text, model(vectorizer(text)), name="kim_cnn_text")
    save_outputs(cfg, end_to_end, spec, metrics["confusion_matrix"], states[0].history)
    return metrics


def save_outputs(cfg: Config, model, spec: dict[str, Any], confusion: list[list[int]],
                 history: list[dict[str, float]]) -> None:
    """model.keras + labels.txt + model.json, the curves and the confusion PNG; MLflow."""
    out, metrics_dir = cfg.path("cnn"), cfg.path("metrics")
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".model.{os.getpid()}.keras"  # Keras insists on the .keras suffix
    try:
        model.save(tmp)
        os.replace(tmp, out / "model.keras")
    finally:
        tmp.unlink(missing_ok=True)
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

    import mlflow

    # Explicit requirements: MLflow's inference would reload the model in a subprocess (~1 min).
    reqs = [f"{d}=={md.version(d)}" for d in ("tensorflow", "keras", "cloudpickle")]
    example = np.array(["a gorgeous , witty , seductive movie"], dtype=object)
    mlflow.tensorflow.log_model(model, name="model", input_example=example,
                                pip_requirements=reqs, metadata={"labels": spec["labels"]})


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


def predict(texts: Sequence[str], model_dir: Path) -> list[tuple[str, float, str]]:
    """(label, probability, text) for each raw text, with the saved end-to-end model."""
    path = model_dir / "model.keras"
    if not path.exists():
        raise PipelineError(f"no trained model at {path} (run `dvc repro cnn` first)")
    import keras
    import tensorflow as tf

    import tasks.cnn_data  # noqa: F401  registers SentenceVectorizer for load_model

    model = keras.models.load_model(path)
    names = (model_dir / "labels.txt").read_text(encoding="utf-8").splitlines()
    rows = []
    for i in range(0, len(texts), 1024):
        chunk = list(texts[i:i + 1024])
        probs = model(tf.constant(chunk, dtype=tf.string), training=False).numpy()  # [b, C]
        rows += [(names[int(p.argmax())], float(p.max()), t) for p, t in zip(probs, chunk,
                                                                               strict=True)]
    return rows


def predict_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.cnn predict",
                                     description="label<TAB>probability<TAB>text per input")
    parser.add_argument("texts", nargs="*", help="sentences (default: lines of stdin)")
    parser.add_argument("--params", default=PARAMS_FILE)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--model-dir", help="folder with model.keras (default paths.cnn)")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        model_dir = Path(args.model_dir) if args.model_dir else load_params(
            args.params, parse_overrides(args.overrides)).path("cnn")
        texts = args.texts or [line.rstrip("\n") for line in sys.stdin if line.strip()]
        for label, prob, text in predict(texts, model_dir):
            print(f"{label}\t{prob:.4f}\t{text}")
    except (PipelineError, ParamsError, OSError) as exc:
        print(f"error: cnn: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["predict"]:
        return predict_main(argv[1:])
    return stage_main("cnn", run, argv[1:] if argv[:1] == ["run"] else argv)


if __name__ == "__main__":
    raise SystemExit(main())
