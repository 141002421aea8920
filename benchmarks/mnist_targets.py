"""Do the MNIST defaults meet their targets? softmax >= 88 %, CNN >= 97 %, whole stage <= 60 s.

    .venv/bin/python benchmarks/mnist_targets.py [--mirror ../shared/mirror/mnist] \
        [--dev 0.1 --test 0.2 --seed 0] [--cnn-epochs 3 --filters 16,32 --dense-units 512 --cnn-lr 0.002] \
        [--compare-reductions] [--json benchmarks/results/mnist_targets.json]

Does what the `mnist` stage will do, offline `test-split` protocol on the 10k t10k images:
read the IDX files, split (stratified, seeded), train the softmax regression and the CNN
(curves on dev), evaluate on test, write the three kinds of plots, save both models as .keras,
reload them and check they predict the test set as before. "stage seconds" counts from
interpreter start, TensorFlow import included (a DVC stage pays it too). Prints the figures,
the load average before and after (the machine may be busy), and exits 1 if a target is missed.
`--compare-reductions` also trains the softmax with the loss averaged over the batch
(reduction "mean") at the same lr 0.003, outside the timed stage.
"""

from __future__ import annotations

import time

START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from tasks.digits import plots, predict, split  # noqa: E402
from tasks.digits.models import save_keras  # noqa: E402
from tasks.digits.train import predict_proba, train_cnn, train_softmax  # noqa: E402

TARGETS = {"softmax": 0.88, "cnn": 0.97, "seconds": 60.0}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mirror", type=Path,
                   default=Path(os.environ.get("MNIST_MIRROR", REPO.parent / "shared/mirror/mnist")))
    p.add_argument("--out", type=Path, default=None, help="output folder (default: a temp dir)")
    p.add_argument("--dev", type=float, default=0.1)
    p.add_argument("--test", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--softmax-steps", type=int, default=2000)
    p.add_argument("--reduction", default="sum", choices=("sum", "mean"))
    p.add_argument("--cnn-epochs", type=float, default=3.0)
    p.add_argument("--filters", default="16,32")
    p.add_argument("--dense-units", type=int, default=512)
    p.add_argument("--cnn-lr", type=float, default=2e-3)
    p.add_argument("--cnn-eval-every", type=int, default=35)
    p.add_argument("--compare-reductions", action="store_true")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    return p.parse_args()


def run(args: argparse.Namespace, out: Path) -> dict:
    imports = time.perf_counter() - START
    tick = time.perf_counter()
    splits = split.load_splits(args.mirror, "test-split", args.dev, args.test, args.seed)
    load = time.perf_counter() - tick

    soft = train_softmax(splits.train, splits.test, {"dev": splits.dev},
                         steps=args.softmax_steps, reduction=args.reduction, seed=args.seed)
    cnn = train_cnn(splits.train, splits.test, {"dev": splits.dev}, epochs=args.cnn_epochs,
                    filters=[int(f) for f in args.filters.split(",")],
                    dense_units=args.dense_units, learning_rate=args.cnn_lr,
                    eval_every=args.cnn_eval_every, seed=args.seed)

    tick = time.perf_counter()
    test = splits.test
    plots.plot_weights(soft.weights, out / "softmax_weights.png")
    for name, result in (("softmax", soft), ("cnn", cnn)):
        plots.plot_confusion(result.confusion, out / f"{name}_confusion.png", title=name)
        plots.plot_misclassified(test.images, test.labels, result.predictions,
                                 out / f"{name}_misclassified.png", result.probabilities)
    plot_seconds = time.perf_counter() - tick

    tick = time.perf_counter()
    same = {}
    for name, result in (("softmax", soft), ("cnn", cnn)):
        path = save_keras(result.model, out / f"{name}.keras")
        reloaded = predict.load_model(path)
        again = predict_proba(lambda t, m=reloaded: m(t, training=False), test.images)
        same[name] = bool(np.array_equal(again.argmax(1), result.predictions))
    save_seconds = time.perf_counter() - tick
    stage = time.perf_counter() - START

    figures = {
        "split_sizes": splits.sizes(), "protocol": splits.protocol,
        "dev_fraction": args.dev, "test_fraction": args.test, "seed": args.seed,
        "softmax": {k: soft.metrics[k] for k in ("test_accuracy", "test_loss", "steps",
                                                  "epochs", "train_seconds")}
        | {"reduction": args.reduction, "dev_accuracy": soft.curves[-1]["dev_accuracy"]},
        "cnn": {k: cnn.metrics[k] for k in ("test_accuracy", "test_loss", "steps", "epochs",
                                             "train_seconds", "params")}
        | {"filters": args.filters, "dense_units": args.dense_units,
           "dev_accuracy": cnn.curves[-1]["dev_accuracy"]},
        "seconds": {"imports": imports, "load_split": load, "plots": plot_seconds,
                    "save_reload": save_seconds, "stage": stage},
        "reload_predicts_same": same,
    }
    if args.compare_reductions:
        other = "mean" if args.reduction == "sum" else "sum"
        alt = train_softmax(splits.train, splits.test, {"dev": splits.dev},
                            steps=args.softmax_steps, reduction=other, seed=args.seed)
        figures[f"softmax_{other}_test_accuracy"] = alt.metrics["test_accuracy"]
    return figures


def main() -> int:
    args = parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="mnist-bench-") as tmp:
        out = args.out or Path(tmp)
        figures = run(args, out)
    figures["loadavg_before"] = [round(x, 2) for x in load_before]
    figures["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    figures["cpus"] = os.cpu_count()
    met = {"softmax": figures["softmax"]["test_accuracy"] >= TARGETS["softmax"],
           "cnn": figures["cnn"]["test_accuracy"] >= TARGETS["cnn"],
           "seconds": figures["seconds"]["stage"] <= TARGETS["seconds"]}
    figures["targets_met"] = met
    text = json.dumps(figures, indent=2, default=float)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0 if all(met.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
