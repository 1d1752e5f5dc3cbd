"""Benchmark: autoencoders on MedMNIST pixels (32 dimensions) against PCA, and out-of-distribution detection.

- Reconstruction MSE on the official test split, autoencoder vs PCA at 32 dimensions, both fitted on the same
  training images; a logistic regression on the 32 codes vs on raw pixels (test AUROC).
- The OOD detector every image bundle carries (``medai.tasks.image_classification._fit_ood``, fitted on
  BreastMNIST train/val) scores BreastMNIST test images against PneumoniaMNIST test images: AUROC of the score.

    python bench/autoencoder.py
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from medai.data.sources.medmnist import load_npz, resolve_medmnist
from medai.reduce import compare_with_pca
from medai.tasks.common import save_ood
from medai.tasks.image_classification import ImageClassificationSettings, _fit_ood


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=60)  # medai reduce's default
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-reduction", action="store_true", help="only measure the OOD detector")
    args = parser.parse_args()
    report = {"benchmark": "autoencoder", "dim": 32, "datasets": {}}
    splits = {name: load_npz(resolve_medmnist(name)) for name in ("breastmnist", "pneumoniamnist")}
    for name, parts in ({} if args.skip_reduction else splits).items():
        start = time.perf_counter()
        train, test = parts["train"], parts["test"]
        result = compare_with_pca(train.inputs, train.labels, test.inputs, test.labels, 32, seed=args.seed,
                                  epochs=args.epochs, kind="dense")  # fmt: skip
        mse, auroc = result["reconstruction_mse"], result["auroc"]
        result["checks"] = {"mse_at_or_below_pca": mse["autoencoder"] <= mse["pca"],
                            "codes_auroc_at_least_95pct_of_raw": auroc["autoencoder"] >= 0.95 * auroc["raw"]}  # fmt: skip
        result["seconds"] = round(time.perf_counter() - start, 1)
        report["datasets"][name] = result
    import tempfile
    from pathlib import Path

    from medai.reduce import Autoencoder, OODDetector

    breast, pneumonia = splits["breastmnist"], splits["pneumoniamnist"]
    with tempfile.TemporaryDirectory() as tmp:
        fitted = _fit_ood(breast["train"], breast["val"], ImageClassificationSettings(seed=args.seed))
        config, _ = save_ood(*fitted, Path(tmp) / "ood")
        detector = OODDetector.from_dict(config, Autoencoder.load(Path(tmp) / "ood"))
        inside, _ = detector.flag(breast["test"].inputs)
        outside, flags = detector.flag(pneumonia["test"].inputs)
    scores = np.concatenate([inside, outside])
    truth = np.concatenate([np.zeros(len(inside)), np.ones(len(outside))])
    auroc = float(roc_auc_score(truth, scores))
    report["ood"] = {"in_distribution": "breastmnist test", "out_of_distribution": "pneumoniamnist test", "auroc": auroc,
                     "flagged_in": float((inside > detector.threshold_).mean()), "flagged_out": float(flags.mean()),
                     "floor": 0.95, "check": auroc >= 0.95}  # fmt: skip
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
