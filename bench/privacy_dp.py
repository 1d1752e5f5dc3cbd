"""Benchmark: utility versus epsilon (1, 3, 8, no DP) and membership inference with and without DP (issue 7).

Pima (tabular-classification, MLP) over several seeded 70/10/20 splits, BreastMNIST (image-classification,
``compact_cnn``) on its official split. For every epsilon, the hyperparameters (batch size, learning rate, epochs;
the noise multiplier follows from epsilon) are chosen on validation AUROC only, from a small grid (Pima: one
configuration per epsilon, the best mean validation AUROC over the splits); the test AUROC of the chosen model and the membership-inference AUROC (training vs test records, ``medai.privacy.audit``) are reported.
The non-private reference for the Pima floor is medai's default tabular recipe (ensemble of 5 MLPs); a single
non-private network from the same grid is reported beside it. One product-path run (``train_private`` then
``audit_bundle``) checks that the bundle records the same figures.

    OMP_NUM_THREADS=1 python bench/privacy_dp.py --out bench/results/2026-11-29-privacy_dp.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from medai.data.splits import split_indices
from medai.engine.metrics import classification_metrics
from medai.privacy.audit import audit_bundle, membership_inference
from medai.privacy.dp import private_training, train_private

EPSILONS = (1.0, 3.0, 8.0, None)
BREAST = "/work/shared/data/medmnist_breast/breastmnist.npz"
PIMA_GRID = [  # (batch size, learning rate, epochs)
    (64, 3e-3, 30), (64, 1e-2, 30), (128, 1e-2, 40), (128, 3e-2, 40),
]  # fmt: skip
BREAST_GRID = [(128, 2e-3, 15), (128, 5e-3, 15), (256, 5e-3, 20)]
BREAST_WIDTH = 8  # compact_cnn channels of the first stage (the default recipe uses 32: too slow with per-record gradients)


def _log(**fields) -> None:
    print(json.dumps(fields), file=sys.stderr, flush=True)


def _context(epsilon):
    return private_training({"epsilon": epsilon}) if epsilon is not None else contextlib.nullcontext()


def _auroc(probabilities, labels) -> float:
    return float(classification_metrics(probabilities, labels, bootstrap=0)["auroc"])


# -- Pima ---------------------------------------------------------------------------------------------------------


def pima_seed(seed: int) -> dict:
    from medai.tasks import tabular_classification as tabular

    base = tabular.TabularSettings(seed=seed, progress=False, monitor="auroc", wide=False)  # as the recorded runs were made
    table = tabular.load("pima", base)
    parts = split_indices(table.labels, None, (0.7, 0.1, 0.2), seed, table.label_names)
    train, val, test = (table.subset(parts[name]) for name in ("train", "val", "test"))

    def scores(model, config) -> dict:
        p_train, p_val, p_test = (tabular.predict_proba(model, config, part) for part in (train, val, test))
        attack = membership_inference(p_train, train.labels, p_test, test.labels, bootstrap=0)
        return {"val_auroc": _auroc(p_val, val.labels), "test_auroc": _auroc(p_test, test.labels), "mia_auroc": attack["attack_auroc"],
                "mia_loss_auroc": attack["loss_attack"]["auroc"], "mia_confidence_auroc": attack["confidence_attack"]["auroc"]}  # fmt: skip

    start = time.perf_counter()
    model, config, _ = tabular.fit(train, val, base)
    result = {"default_non_private": {**scores(model, config), "seconds": round(time.perf_counter() - start, 1)}}
    for epsilon in EPSILONS:
        candidates = []
        for batch_size, learning_rate, epochs in PIMA_GRID:
            settings = replace(base, ensemble=1, batch_size=batch_size, learning_rate=learning_rate, epochs=epochs)
            start = time.perf_counter()
            with _context(epsilon):
                model, config, summary = tabular.fit(train, val, settings)
            spent = summary["members"][0].get("privacy", {}).get("epsilon")
            candidates.append({"batch_size": batch_size, "learning_rate": learning_rate, "epochs": epochs, "epsilon_spent": spent,
                               **scores(model, config), "seconds": round(time.perf_counter() - start, 1)})  # fmt: skip
        result["no_dp_single" if epsilon is None else f"epsilon_{epsilon:g}"] = {"candidates": candidates}
        _log(progress="pima", seed=seed, epsilon=epsilon, best_val=max(candidates, key=lambda c: c["val_auroc"]))
    return result


def pima(seeds: list[int]) -> dict:
    runs = {seed: pima_seed(seed) for seed in seeds}
    keys = ["default_non_private", "no_dp_single", *(f"epsilon_{e:g}" for e in EPSILONS if e is not None)]
    summary = {}
    for key in keys:
        if key == "default_non_private":
            chosen = [runs[s][key] for s in seeds]
        else:  # one configuration per epsilon: the best mean validation AUROC over the splits
            candidates = [runs[s][key]["candidates"] for s in seeds]
            best = max(range(len(PIMA_GRID)), key=lambda i: np.mean([c[i]["val_auroc"] for c in candidates]))
            chosen = [c[best] for c in candidates]
        summary[key] = {m: float(np.mean([c[m] for c in chosen])) for m in ("val_auroc", "test_auroc", "mia_auroc")}
        summary[key]["config"] = None if key == "default_non_private" else dict(zip(("batch_size", "learning_rate", "epochs"), PIMA_GRID[best]))
        summary[key]["test_auroc_per_seed"] = [c["test_auroc"] for c in chosen]
        if key.startswith("epsilon"):
            summary[key]["epsilon_spent"] = float(np.mean([c["epsilon_spent"] for c in chosen]))
    reference = summary["default_non_private"]["test_auroc"]
    at_8 = summary["epsilon_8"]
    checks = {
        "epsilon_8_within_0.03_of_non_private_default": at_8["test_auroc"] >= reference - 0.03,
        "epsilon_8_within_0.03_of_non_private_single_mlp": at_8["test_auroc"] >= summary["no_dp_single"]["test_auroc"] - 0.03,
        "epsilon_8_membership_inference_auroc_at_most_0.55": at_8["mia_auroc"] <= 0.55,
    }
    return {"splits": f"stratified 70/10/20, seeds {seeds}", "grid": PIMA_GRID, "summary": summary, "checks": checks, "runs": runs}


# -- BreastMNIST ----------------------------------------------------------------------------------------------------


def breast_fit(epsilon, batch_size: int, learning_rate: float, epochs: int) -> dict:
    from medai.tasks import image_classification as image
    from medai.tasks.common import fit_members, probabilities
    from medai.transforms.image import RandomAffine

    settings = image.ImageClassificationSettings(batch_size=batch_size, learning_rate=learning_rate, epochs=epochs, ensemble=1,
                                                 ood=False, model_kwargs={"width": BREAST_WIDTH}, progress=False)  # fmt: skip
    splits, source = image.load_splits(BREAST)
    config = image._model_config(settings, splits["train"], source, splits)
    torch.manual_seed(settings.seed)
    model = image.build_model(config)
    start = time.perf_counter()
    with _context(epsilon):
        fits, _ = fit_members(model, splits["train"], splits["val"], settings.trainer_config(len(splits["train"])), train_transform=RandomAffine())
    seconds = time.perf_counter() - start
    p = {name: probabilities(model, part, config) for name, part in splits.items()}
    attack = membership_inference(p["train"], splits["train"].labels, p["test"], splits["test"].labels, bootstrap=0)
    return {"batch_size": batch_size, "learning_rate": learning_rate, "epochs": epochs,
            "epsilon_spent": (fits[0].privacy or {}).get("epsilon"), "best_epoch": fits[0].best_epoch,
            "val_auroc": _auroc(p["val"], splits["val"].labels), "test_auroc": _auroc(p["test"], splits["test"].labels),
            "mia_auroc": attack["attack_auroc"], "mia_loss_auroc": attack["loss_attack"]["auroc"],
            "mia_confidence_auroc": attack["confidence_attack"]["auroc"], "seconds": round(seconds, 1)}  # fmt: skip


def breast() -> dict:
    result = {}
    for epsilon in EPSILONS:
        candidates = [breast_fit(epsilon, *config) for config in BREAST_GRID]
        chosen = max(candidates, key=lambda c: c["val_auroc"])
        result["no_dp_single" if epsilon is None else f"epsilon_{epsilon:g}"] = {"chosen": chosen, "candidates": candidates}
        _log(progress="breastmnist", epsilon=epsilon, chosen=chosen)
    recorded = json.loads(Path("bench/results/2026-11-29-image_classification.json").read_text())["datasets"]["breastmnist"]
    result["default_non_private_recorded"] = {
        "test_auroc": recorded["mean"]["auroc"],
        "source": "bench/results/2026-11-29-image_classification.json (ensemble of 5 compact_cnn width 32, 60 epochs; not rerun)",
    }
    return {"network": f"compact_cnn width {BREAST_WIDTH}, one network, augmentation on", "grid": BREAST_GRID, **result}


# -- product path ---------------------------------------------------------------------------------------------------


def product_check(pima_report: dict, seed: int) -> dict:
    """``train_private`` + ``audit_bundle`` on one Pima split at epsilon 8 with the chosen settings: same figures?"""
    config = pima_report["summary"]["epsilon_8"]["config"]
    chosen = next(c for c in pima_report["runs"][seed]["epsilon_8"]["candidates"] if all(c[k] == v for k, v in config.items()))
    with tempfile.TemporaryDirectory() as tmp:
        bundle = train_private("tabular-classification", "pima", Path(tmp) / "pima", {"epsilon": 8.0}, progress=False, seed=seed, **config)
        audit = audit_bundle(bundle.path, "pima")
        card = (bundle.path / "card.md").read_text()
    return {"test_auroc": bundle.metrics["test"]["auroc"], "epsilon_recorded": bundle.config["privacy"]["dp"]["epsilon"],
            "mia_auroc": audit["attack_auroc"], "same_test_auroc_as_bench": abs(bundle.metrics["test"]["auroc"] - chosen["test_auroc"]) < 1e-9,
            "card_has_sections": "## Differential privacy" in card and "## Privacy audit" in card}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2", help="Pima split seeds.")
    parser.add_argument("--skip-breast", action="store_true")
    parser.add_argument("--only-breast", action="store_true", help="Rerun BreastMNIST only, into the existing --out file.")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",")]
    report = {"benchmark": "privacy-dp", "torch": torch.__version__, "threads": torch.get_num_threads(),
              "epsilons": [e if e is not None else "no DP" for e in EPSILONS], "delta": "min(1e-5, 1/(10 n_train)) = 1e-5",
              "max_grad_norm": 1.0}  # fmt: skip
    if args.only_breast:
        report = json.loads(args.out.read_text())
    else:
        report["pima"] = pima(seeds)
        report["product_path_pima_epsilon_8"] = {"seed": seeds[0], **product_check(report["pima"], seeds[0])}
        report["pima_wall_seconds"] = round(time.perf_counter() - start, 1)
    if not args.skip_breast:
        report["breastmnist"] = breast()
        report["breastmnist_wall_seconds"] = round(time.perf_counter() - start, 1)
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
