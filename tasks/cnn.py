"""Stage `cnn`: Kim (2014) CNN sentence classifier over the pipeline's word2vec embeddings.

    python -m tasks.cnn [run] [--params params.yaml] [--set cnn.embedding_init=rand]
    python -m tasks.cnn predict "a gorgeous, witty, seductive movie"   # or lines on stdin

Params: `cnn` (model, training, protocol), `seed`, `prepare.lowercase/folds/dev_fraction`.
Inputs: see `tasks.classifier.data`. Library code: tasks/classifier/ (data, model, training,
report, predict). Outputs:
- <paths.cnn>/model.keras: end-to-end model, raw strings [B] -> class probabilities [B, C]
  (load it after `import tasks.classifier.data`, which registers the vectoriser layer);
  labels.txt (class names, line = output column) and model.json (spec) beside it;
  checkpoints/ (resume after a kill; kfold: one folder per fold), tensorboard/.
- <paths.metrics>/cnn.json (via stage_main), cnn_curves.json (per-epoch train/dev loss and
  accuracy, DVC plots; fold 0 under kfold), cnn_confusion.png.
- MLflow: params, per-epoch metrics (step = epoch), the model (tensorflow flavour), the
  confusion matrix and curves; tags `variant` = cnn.embedding_init and `comparison` = a hash of
  everything except the variant, shared by runs that `tasks.compare` puts side by side.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

from tasks.classifier import predict
from tasks.classifier.report import save_outputs, summarise
from tasks.core import tracking
from tasks.core.params import Config
from tasks.core.stage import stage_main

log = logging.getLogger("tasks.cnn")  # not "__main__" under python -m


def run(cfg: Config) -> dict[str, Any]:
    import keras

    from tasks.classifier import data as cnn_data
    from tasks.classifier import model as kim_cnn
    from tasks.classifier import training as cnn_train
    from tasks.classifier.training import fingerprints

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


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["predict"]:
        return predict.main(argv[1:])
    return stage_main("cnn", run, argv[1:] if argv[:1] == ["run"] else argv)


if __name__ == "__main__":
    raise SystemExit(main())
