"""chemprop v2's test accuracy on exactly the train/val/test split medai uses (chemprop runs as a subprocess).

The dataset is loaded and split as ``bench/molecular_property.py`` does (``load_molecule_dataset`` then
``split_table(table, split, seed)``); the table is written as ``smiles,<task>...`` (missing labels as empty cells) with
a chemprop splits file (a JSON list holding one ``{"train", "val", "test"}`` dict of 0-based data-row indices), and
``chemprop train`` runs with its default hyper-parameters on one CPU thread. The test metric is computed here from
chemprop's ``model_0/test_predictions.csv`` as medai computes its own: ROC-AUC averaged over the tasks with both
classes in the test split, or RMSE in the original units (averaged over tasks when there are several). medai never
imports chemprop: it lives in a separate venv whose CLI is passed in.

    OMP_NUM_THREADS=1 python bench/chemprop_accuracy.py --dataset clintox --seed 0 --chemprop /tmp/cp/bin/chemprop
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

METRICS = {"classification": ("auroc", "roc"), "regression": ("rmse", "rmse")}  # medai's name, chemprop's name


def write_inputs(table, indices: dict, folder: Path, smiles: list[str] | None = None) -> tuple[Path, Path]:
    """Write ``data.csv`` (smiles + one column per task, missing labels empty) and ``splits.json`` into folder;
    ``smiles`` replaces the table's (standardised) SMILES, one per molecule, e.g. the file's own.

    Row i of the CSV's data (header excluded) is molecule i of the table, so the split's indices are used as they are.
    """
    folder = Path(folder)
    data, splits = folder / "data.csv", folder / "splits.json"
    labels = np.asarray(table.labels, dtype=np.float64).reshape(len(table.smiles), -1)
    with data.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["smiles", *table.task_names])
        for text, row in zip(table.smiles if smiles is None else smiles, labels):
            writer.writerow([text, *("" if np.isnan(v) else f"{v:.9g}" for v in row)])
    splits.write_text(json.dumps([{part: [int(i) for i in indices[part]] for part in ("train", "val", "test")}]))
    return data, splits


def score_predictions(predictions: np.ndarray, labels: np.ndarray, task_types) -> float | None:
    """medai's test metric: mean ROC-AUC over classification tasks with both classes, or mean RMSE over tasks.

    Args:
        predictions: (n, n_tasks) probabilities or values; labels: (n, n_tasks), NaN = missing (skipped).
    """
    from sklearn.metrics import roc_auc_score

    predictions = np.asarray(predictions, dtype=np.float64).reshape(len(labels), -1)
    labels = np.asarray(labels, dtype=np.float64).reshape(len(labels), -1)
    scores = []
    for j, kind in enumerate(task_types):
        present = np.isfinite(labels[:, j])
        y, p = labels[present, j], predictions[present, j]
        if kind == "classification":
            if len(np.unique(y)) == 2:
                scores.append(float(roc_auc_score(y, p)))
        elif len(y):
            scores.append(float(np.sqrt(np.mean((p - y) ** 2))))
    return float(np.mean(scores)) if scores else None


def read_predictions(path: Path, smiles: list[str], task_names) -> np.ndarray:
    """chemprop's test_predictions.csv as an (n_test, n_tasks) array, checked against the expected test SMILES."""
    with Path(path).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    got = [row["smiles"] for row in rows]
    if got != list(smiles):
        raise ValueError(f"chemprop's test predictions are not the expected test molecules ({len(got)} rows, "
                         f"{len(smiles)} expected)")
    return np.array([[float(row[name]) for name in task_names] for row in rows], dtype=np.float64)


def chemprop_command(chemprop: str, data: Path, splits: Path, output: Path, task_type: str, seed: int,
                     task_names, epochs: int | None = None) -> list[str]:
    """``chemprop train`` with its default hyper-parameters on the given split, on CPU, no worker processes."""
    command = [chemprop, "train", "--data-path", str(data), "--smiles-columns", "smiles", "--target-columns",
               *task_names, "--task-type", task_type, "--splits-file", str(splits), "--output-dir", str(output),
               "--pytorch-seed", str(seed), "--num-workers", "0", "--metrics", METRICS[task_type][1],
               "--accelerator", "cpu", "--devices", "1"]
    return command + (["--epochs", str(epochs)] if epochs is not None else [])


@functools.cache
def chemprop_version(chemprop: str) -> str | None:
    done = subprocess.run([chemprop, "--version"], capture_output=True, text=True, env=_environment(), check=False)
    match = re.search(r"(\d+\.\d+[\w.]*)", done.stdout + done.stderr)
    return match.group(1) if match else None


def _environment() -> dict:
    return {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin",
            "HOME": os.environ.get("HOME", "/tmp")}


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "failed"


def _epochs_run(output: Path, epochs: int | None) -> int | None:
    config = output / "config.toml"
    if epochs is None and config.exists():
        match = re.search(r"^epochs\s*=\s*(-?\d+)", config.read_text(), re.MULTILINE)
        return int(match.group(1)) if match else None
    return epochs


def chemprop_accuracy(chemprop: str, name: str, seed: int, epochs: int | None = None, split: str | None = None,
                      input_smiles: bool = False) -> dict:
    """Train chemprop v2 (defaults) on medai's split of dataset ``name`` for ``seed``; its test metric and timing.

    Args:
        chemprop: path of the ``chemprop`` CLI of a venv holding chemprop v2.
        split: ``random`` or ``scaffold``; by default the dataset's split in bench/molecular_property.py's DATASETS.
        input_smiles: give chemprop each molecule's SMILES as the file has it, not medai's standardised one (same
            molecules, labels and split: what standardisation changes for chemprop).

    Returns:
        ``{"chemprop_version", "test", "epochs", "wall_seconds", "split", "seed", "n_train", "n_val", "n_test"}``,
        or ``{"error": ...}`` (the last line chemprop wrote to stderr) when anything fails.
    """
    try:
        from medai.chem import load_molecule_dataset
        from medai.tasks.molecular_property import split_table

        if split is None:  # run as a script: bench/ is on the path
            from molecular_property import DATASETS

            split = DATASETS[name][0]
        table = load_molecule_dataset(name)
        indices = split_table(table, split, seed)
        kinds = set(table.task_types)
        if len(kinds) != 1:
            return {"error": f"mixed task types {sorted(kinds)}: chemprop takes one task type"}
        task_type = kinds.pop()
        test = np.asarray(indices["test"])
        with tempfile.TemporaryDirectory(prefix="chemprop_accuracy_") as tmp:
            smiles = list(table.input_smiles) if input_smiles else list(table.smiles)
            data, splits = write_inputs(table, indices, Path(tmp), smiles)
            output = Path(tmp) / "out"
            start = time.perf_counter()
            done = subprocess.run(chemprop_command(chemprop, data, splits, output, task_type, seed, table.task_names,
                                                   epochs), capture_output=True, text=True, env=_environment(),
                                  check=False, cwd=tmp)
            seconds = time.perf_counter() - start
            predictions_file = output / "model_0" / "test_predictions.csv"
            if done.returncode != 0 or not predictions_file.exists():
                return {"error": _last_line(done.stderr or done.stdout)}
            predictions = read_predictions(predictions_file, [smiles[i] for i in test], table.task_names)
            epochs_run = _epochs_run(output, epochs)
        return {"chemprop_version": chemprop_version(chemprop),
                "test": score_predictions(predictions, table.labels[test], table.task_types),
                "metric": METRICS[task_type][0], "epochs": epochs_run, "wall_seconds": round(seconds, 1),
                "split": split, "seed": seed, "smiles": "input" if input_smiles else "standardised",
                "n_train": len(indices["train"]), "n_val": len(indices["val"]),
                "n_test": len(test)}
    except Exception as error:  # a benchmark row records the failure instead of stopping the run
        return {"error": f"{type(error).__name__}: {error}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chemprop", default="/tmp/cp/bin/chemprop", help="chemprop v2 CLI (separate venv)")
    parser.add_argument("--epochs", type=int, help="chemprop's default (50) unless given")
    parser.add_argument("--input-smiles", action="store_true",
                        help="the file's own SMILES instead of medai's standardised ones (same molecules and split)")
    args = parser.parse_args()
    print(json.dumps({"dataset": args.dataset, **chemprop_accuracy(args.chemprop, args.dataset, args.seed,
                                                                   args.epochs, input_smiles=args.input_smiles)}))


if __name__ == "__main__":
    main()
