"""Stage `mnist`: the workshop's first models, softmax regression and the Deep MNIST CNN.

    python -m tasks.mnist [run] [--params params.yaml] [--set mnist.softmax.steps=500]
    python -m tasks.mnist predict digit.png [more.png ...] [--model cnn|softmax] [--params ...] [--verbose]

Params: `mnist` (protocol, dev/test fractions, `softmax` and `cnn` training), `seed`.
Inputs: the IDX files the download stage fetched into `paths.mnist_raw` (`test-split`: the
10k t10k files, split stratified into train/dev/test; `standard`: train on the 60k minus
dev, test on the 10k). Library code: tasks/digits/ (idx, split, models, train, plots, report,
predict). Outputs:
- <paths.mnist>/softmax.keras, cnn.keras ([n, 28, 28] in [0, 1] -> [n, 10]), model.json
  (protocol, split sizes, test accuracies), tensorboard/<model>/{train,dev} scalars;
- <paths.metrics>/mnist.json (via stage_main): `split` sizes and one dict per model
  (`softmax`, `cnn`: test_accuracy, test_loss, dev_accuracy, per-class accuracy, steps,
  epochs, train_seconds, params); mnist_<model>_curves.json (DVC plots);
  mnist_softmax_weights.png, mnist_<model>_confusion.png, mnist_<model>_misclassified.png;
- MLflow: params, `<model>/<key>` metrics per eval step, the PNGs and .keras files.
`predict` loads <paths.mnist>/<model>.keras and prints `<image>\t<digit>\t<probability>`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from tasks.core import tracking
from tasks.core.atomic import write_json
from tasks.core.params import PARAMS_FILE, Config, load_params
from tasks.core.stage import guarded, stage_main

log = logging.getLogger("tasks.mnist")  # not "__main__" under python -m


def run(cfg: Config) -> dict[str, Any]:
    from tasks.digits import report, split
    from tasks.digits.train import train_cnn, train_softmax

    p, out, metrics_dir = cfg.mnist, cfg.path("mnist"), cfg.path("metrics")
    splits = split.load_splits(cfg.path("mnist_raw"), p.protocol, p.dev_fraction,
                               p.test_fraction, cfg.seed)
    sizes = splits.sizes()
    log.info("%s split: %s", p.protocol, sizes)
    tracking.set_tags({"protocol": p.protocol})
    tracking.log_params({f"split.{k}": v for k, v in sizes.items()})
    evals = {"dev": splits.dev} if sizes["dev"] else {}  # curves never look at the test part

    results: dict[str, Any] = {}
    for name in ("softmax", "cnn"):
        logger = report.EvalLogger(name, out / "tensorboard")
        try:
            if name == "softmax":
                s = p.softmax
                result = train_softmax(splits.train, splits.test, evals,
                                       learning_rate=s.learning_rate, batch_size=s.batch_size,
                                       steps=s.steps, reduction=s.reduction,
                                       eval_every=s.eval_every, seed=cfg.seed, on_eval=logger)
            else:
                c = p.cnn
                result = train_cnn(splits.train, splits.test, evals, filters=c.filters,
                                   dense_units=c.dense_units, dropout=c.dropout,
                                   learning_rate=c.learning_rate, batch_size=c.batch_size,
                                   epochs=c.epochs, eval_every=c.eval_every, seed=cfg.seed,
                                   on_eval=logger)
        finally:
            logger.close()
        results[name] = report.save_model_outputs(name, result, splits.test, out, metrics_dir)
        log.info("%s: test accuracy %.4f (%d steps, %.1f s)", name,
                 results[name]["test_accuracy"], results[name]["steps"],
                 results[name]["train_seconds"])

    write_json(out / "model.json", {
        "protocol": p.protocol, "split": sizes, "seed": cfg.seed,
        "models": {name: {"file": f"{name}.keras", "test_accuracy": m["test_accuracy"]}
                   for name, m in results.items()}})
    return {"protocol": p.protocol, "split": sizes, **results}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["predict"]:
        # The model folder is paths.mnist of the params file; the rest is predict's.
        # guarded: one `error:` line per failure, TensorFlow's start-up lines kept quiet.
        pre = argparse.ArgumentParser(add_help=False)
        pre.add_argument("--params", default=PARAMS_FILE)
        pre.add_argument("--verbose", action="store_true")
        known, rest = pre.parse_known_args(argv[1:])

        def body() -> int:
            from tasks.digits import predict

            return predict.cli(rest, load_params(known.params).path("mnist"), "mnist")

        return guarded("mnist", body, known.verbose)
    return stage_main("mnist", run, argv[1:] if argv[:1] == ["run"] else argv)


if __name__ == "__main__":
    raise SystemExit(main())
