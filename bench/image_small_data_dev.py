"""Development comparison for small image sets, never on a test split: split vs cross-fitted ensemble members.

PneumoniaMNIST stands in for a small training set such as BreastMNIST's: per seed, a stratified draw of its
official training split (546 images, BreastMNIST's size) trains, a draw of its official validation split (78
images) validates, and the remaining validation images (446) are the development test. Its official test split is
never read. Each variant trains with the CLI's defaults apart from ``member_validation`` (and without the OOD
autoencoder, which does not change predictions). Printed per variant: development-test AUROC, accuracy of the most
probable class, and accuracy at the threshold that maximises accuracy on the data the variant calibrates on (the
validation draw for "split", the out-of-fold predictions for "cross-fit").

Rule fixed before the first run: "cross-fit" becomes the default for image ensembles if its mean development-test
AUROC and accuracy are both at least those of "split"; its fitted threshold becomes the default decision rule only
if it raises development-test accuracy over the most probable class for every seed.

    python bench/image_small_data_dev.py --seeds 0,1        # about 30 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from medai.data.dataset import concatenate
from medai.data.sources.medmnist import resolve_medmnist
from medai.engine.calibration import softmax
from medai.engine.metrics import classification_metrics, fit_decision_threshold
from medai.tasks import image_classification as task
from medai.tasks.common import cross_fit_folds, members, out_of_fold_logits


def development_npz(folder: Path, seed: int, n_train: int, n_val: int) -> Path:
    """A MedMNIST-format file: train and val draws from PneumoniaMNIST's train and val splits, test = the rest of val."""
    with np.load(resolve_medmnist("pneumoniamnist")) as official:
        arrays = {key: official[key] for key in ("train_images", "train_labels", "val_images", "val_labels")}
    rows = np.arange(len(arrays["train_labels"]))
    train, _ = train_test_split(rows, train_size=n_train, stratify=arrays["train_labels"][:, 0], random_state=seed)
    rows = np.arange(len(arrays["val_labels"]))
    val, rest = train_test_split(rows, train_size=n_val, stratify=arrays["val_labels"][:, 0], random_state=seed)
    path = folder / "pneumoniamnist.npz"  # the name gives the catalog's label names
    np.savez(path, train_images=arrays["train_images"][train], train_labels=arrays["train_labels"][train],
             val_images=arrays["val_images"][val], val_labels=arrays["val_labels"][val],
             test_images=arrays["val_images"][rest], test_labels=arrays["val_labels"][rest])  # fmt: skip
    return path


def run_variant(data: Path, out: Path, seed: int, member_validation: str) -> dict:
    start = time.perf_counter()
    bundle = task.train(data, out, seed=seed, member_validation=member_validation, ood=False, progress=False)
    seconds = time.perf_counter() - start
    config, model = bundle.config, bundle.model
    splits = task._data_for_bundle(bundle, data)
    temperature = config["calibration"]["temperature"]
    if member_validation == "cross-fit":
        pool = concatenate([splits["train"], splits["val"]])
        folds = cross_fit_folds(pool.labels, len(members(model)), seed)
        held, held_labels = softmax(out_of_fold_logits(model, pool, folds), temperature), pool.labels
    else:
        held, held_labels = task._probabilities(model, splits["val"], config), splits["val"].labels
    test = task._probabilities(model, splits["test"], config)
    threshold = fit_decision_threshold(held, held_labels)
    argmax = classification_metrics(test, splits["test"].labels, bootstrap=0)
    tuned = classification_metrics(test, splits["test"].labels, bootstrap=0, threshold=threshold)
    return {"auroc": argmax["auroc"], "accuracy": argmax["accuracy"], "threshold_fitted": threshold,
            "accuracy_at_fitted_threshold": tuned["accuracy"], "temperature": temperature,
            "best_epochs": bundle.metrics["fit"]["best_epochs"], "train_seconds": round(seconds, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--variants", default="split,cross-fit")
    parser.add_argument("--n-train", type=int, default=546)
    parser.add_argument("--n-val", type=int, default=78)
    args = parser.parse_args()
    seeds, variants = [int(s) for s in args.seeds.split(",")], args.variants.split(",")
    report = {"benchmark": "image member validation, small-data development (PneumoniaMNIST draws; official test unread)",
              "n_train": args.n_train, "n_val": args.n_val, "runs": {v: {} for v in variants}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            folder = Path(tmp) / f"seed{seed}"
            folder.mkdir()
            data = development_npz(folder, seed, args.n_train, args.n_val)
            for variant in variants:
                result = run_variant(data, Path(tmp) / f"seed{seed}" / variant, seed, variant)
                report["runs"][variant][str(seed)] = result
                print(json.dumps({"progress": variant, "seed": seed, **result}), file=sys.stderr, flush=True)
    keys = ("auroc", "accuracy", "accuracy_at_fitted_threshold")
    report["mean"] = {v: {k: float(np.mean([r[k] for r in report["runs"][v].values()])) for k in keys} for v in variants}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
