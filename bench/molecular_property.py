"""Benchmark: molecular property prediction on MoleculeNet (CLI defaults) beside chemprop's published figures.

For each dataset and seed: ``medai train --task molecular-property`` with its defaults (``auto``: a deep ensemble
of D-MPNNs with CDF-normalised RDKit descriptors and the fingerprint random forest, the one with the better
validation score kept; recorded as ``runs.default`` with ``chosen`` and both validation scores) and, unless
``--no-forest``, the random forest alone on the same split as the peer, run in this process; test ROC-AUC (mean
over tasks) or RMSE, wall times, featurisation and the D-MPNN's training throughput. With
``--chemprop-python`` (an interpreter of a separate venv holding chemprop v2), chemprop's training throughput on
the same molecules and architecture is measured in a subprocess for the speed comparison. With
``--chemprop-accuracy`` (chemprop v2's CLI in that venv), chemprop is also trained with its default hyper-parameters
on exactly the same train/val/test split for every seed (bench/chemprop_accuracy.py) and its test metric recorded as
``runs.chemprop_v2`` beside ours, with ``floor_vs_chemprop_same_splits``; ``--skip-medai`` runs chemprop alone.

    OMP_NUM_THREADS=1 python bench/molecular_property.py --datasets clintox,bbbp,esol --seeds 0,1,2
    OMP_NUM_THREADS=1 python bench/molecular_property.py --datasets esol --seeds 0 --chemprop-python /tmp/cp/bin/python
    OMP_NUM_THREADS=1 python bench/molecular_property.py --datasets clintox --seeds 0,1,2 --skip-medai \
        --chemprop-accuracy /tmp/cp/bin/chemprop

Floors (issue 5): mean over seeds 0, 1, 2 of the test metric, each training run under 15 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

from medai.chem import load_molecule_dataset
from medai.chem.featurise import MorganFingerprint, RDKitDescriptors, featurise
from medai.chem.graphs import MolGraphFeaturiser
from medai.tasks.molecular_property import MolecularSettings, train

# dataset: (split, metric, floor, chemprop's published figure as in its v1 README "Results" tables, with the split
# MoleculeNet used there: random for all but BBBP, whose published figure is on MoleculeNet's fixed scaffold split)
DATASETS = {
    "clintox": ("random", "auroc", 0.89, 0.864),
    "bbbp": ("scaffold", "auroc", 0.83, 0.737),
    "tox21": ("random", "auroc", 0.851, 0.851),
    "sider": ("random", "auroc", 0.676, 0.676),
    "esol": ("random", "rmse", 0.555, 0.555),
    "freesolv": ("random", "rmse", 1.075, 1.075),
    "lipo": ("random", "rmse", 0.555, 0.555),
}
CHEMPROP_SCRIPT = Path(__file__).with_name("chemprop_speed.py")


def chemprop_accuracy(chemprop: str, name: str, seed: int) -> dict:
    """chemprop v2 (default hyper-parameters) on our split of ``name`` for ``seed``: bench/chemprop_accuracy.py."""
    import chemprop_accuracy as accuracy  # the sibling script (bench/ is on the path when this runs as a script)

    return accuracy.chemprop_accuracy(chemprop, name, seed, split=DATASETS[name][0])


def featurisation_speed(name: str) -> dict:
    """Molecules per second of each featuriser on the whole dataset (cache off)."""
    table = load_molecule_dataset(name)
    speeds = {}
    for label, featuriser in (("graph", MolGraphFeaturiser()), ("morgan", MorganFingerprint(counts=True)),
                              ("rdkit_2d", RDKitDescriptors())):
        start = time.perf_counter()
        featurise(list(table.smiles), featuriser, use_cache=False)
        speeds[label] = round(len(table) / (time.perf_counter() - start), 1)
    return {"molecules": len(table), "molecules_per_second": speeds}


def run_one(name: str, model: str, seed: int, threads: int) -> dict:
    split, metric, _, _ = DATASETS[name]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        options = {} if model == "default" else {"model": model}
        bundle = train(name, Path(tmp) / "bundle", split=split, seed=seed, progress=False, num_threads=threads,
                       **options)
        seconds = time.perf_counter() - start
    fit = bundle.metrics["fit"]
    result = {"test": bundle.metrics["test"][metric], "val": bundle.metrics["val"][metric],
              "wall_seconds": round(seconds, 1), "ensemble": bundle.config.get("ensemble")}
    if "selection" in fit:
        result |= {"chosen": fit["selection"]["chosen"],
                   "validation_scores": {k: round(v, 4) for k, v in fit["selection"]["validation_scores"].items()}}
        fit = fit["candidates"]["dmpnn"]
    if "train_seconds" in fit:
        result |= {"train_seconds": round(fit["train_seconds"], 1), "best_epochs": fit["best_epochs"],
                   "max_epochs": fit["max_epochs"],
                   "train_molecules_per_second": round(fit["molecules_per_second"], 1)}
    return result


def chemprop_speed(python: str, name: str, epochs: int) -> dict:
    """chemprop v2's training throughput on the dataset, measured by bench/chemprop_speed.py under ``python``."""
    table = load_molecule_dataset(name)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.csv"
        data.write_text("smiles,y\n" + "\n".join(f"{s},{float(y)}" for s, y in zip(table.smiles, table.labels[:, 0])
                                                  if y == y))
        kind = table.task_types[0]
        done = subprocess.run([python, str(CHEMPROP_SCRIPT), str(data), kind, str(epochs)], capture_output=True,
                              text=True, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarise(values: list[float]) -> dict:
    return {"mean": round(statistics.fmean(values), 4),
            "sd": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0, "values": [round(v, 4) for v in values]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="clintox,bbbp,esol,freesolv,lipo,sider,tox21")
    parser.add_argument("--seeds", default="0,1,2")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--no-forest", action="store_true", help="skip the random-forest baseline")
    which.add_argument("--models", help="comma-separated runs instead: default (the CLI default), dmpnn, "
                                        "random_forest, fingerprint_mlp")
    parser.add_argument("--chemprop-python", help="python of a venv with chemprop v2, for the speed comparison")
    parser.add_argument("--chemprop-accuracy", metavar="CHEMPROP_CLI",
                        help="chemprop v2's CLI: also train chemprop (defaults) on the same splits, for accuracy")
    parser.add_argument("--skip-medai", action="store_true",
                        help="train nothing of medai's (no featurisation speed, models or speed comparison)")
    parser.add_argument("--partial", type=Path, help="append each run's result to this JSON-lines file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    report = {"benchmark": "molecular-property", "defaults": asdict(MolecularSettings()), "threads": 1,
              "note": "timings on a shared 2-core CPU under contention: upper bounds", "datasets": {}}

    def record(line: dict) -> None:
        print(json.dumps(line), file=sys.stderr, flush=True)
        if args.partial:
            with args.partial.open("a") as handle:
                handle.write(json.dumps(line) + "\n")

    for name in args.datasets.split(","):
        split, metric, floor, published = DATASETS[name]
        entry = {"split": split, "metric": metric, "floor": floor, "chemprop_published": published, "runs": {}}
        models = () if args.skip_medai else ("default",) + (() if args.no_forest else ("random_forest",))
        if args.models and not args.skip_medai:
            models = tuple(args.models.split(","))
        if {"default", "dmpnn"} & set(models):
            entry["featurisation"] = featurisation_speed(name)
        for model in models:
            runs = []
            for seed in seeds:
                runs.append(run_one(name, model, seed, 1))
                record({"dataset": name, "model": model, "seed": seed, **runs[-1]})
            entry["runs"][model] = {"test": summarise([r["test"] for r in runs]), "per_seed": runs}
        if args.chemprop_accuracy:
            runs = []
            for seed in seeds:
                runs.append({"seed": seed, **chemprop_accuracy(args.chemprop_accuracy, name, seed)})
                record({"dataset": name, "model": "chemprop_v2", **runs[-1]})
            scored = [r["test"] for r in runs if "error" not in r and r.get("test") is not None]
            entry["runs"]["chemprop_v2"] = {"test": summarise(scored) if scored else None, "per_seed": runs}
        if "default" in entry["runs"]:
            ours = entry["runs"]["default"]["test"]["mean"]
            entry["floor_holds"] = ours >= floor if metric == "auroc" else ours <= floor
            entry["max_wall_seconds"] = max(r["wall_seconds"] for r in entry["runs"]["default"]["per_seed"])
            theirs = (entry["runs"].get("chemprop_v2") or {}).get("test")
            if theirs:
                entry["floor_vs_chemprop_same_splits"] = (ours >= theirs["mean"] if metric == "auroc"
                                                          else ours <= theirs["mean"])
        if args.chemprop_python and "default" in entry["runs"]:
            ours_speed = statistics.fmean(r["train_molecules_per_second"] for r in entry["runs"]["default"]["per_seed"])
            entry["training_speed"] = {"medai_dmpnn_molecules_per_second": round(ours_speed, 1),
                                       "chemprop_v2": chemprop_speed(args.chemprop_python, name, 3)}
        report["datasets"][name] = entry
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
