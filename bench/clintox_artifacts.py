"""How much of ClinTox's published ROC-AUC comes from the way its SMILES are written, not from chemistry.

ClinTox joins FDA-approved drugs and drugs that failed clinical trials for toxicity from two sources that wrote
SMILES differently: the approved set mostly in aromatic notation with protonated/charged groups, the failed set
in Kekule notation, neutral, some as salts. Many drugs appear twice, once from each source, with opposite labels.
This bench measures, on ``moleculenet/clintox.csv``:

1. ``text_style``: a logistic regression on four facts about how the SMILES string is written (lowercase
   aromatic atoms outside brackets, a charged bracket atom, a ``.``, a Kekule double bond to C or N) and nothing
   about the molecule's structure; stratified 10-fold ROC-AUC per task.
2. ``graph_artifacts``: the same on two facts a graph model sees after RDKit parses the raw SMILES (any atom with
   a formal charge, more than one fragment), before and after medai's standardisation (largest fragment,
   neutralisation), which removes them.
3. ``duplicates``: what medai's ingestion does with drugs listed twice: rows merged, labels that disagree set
   missing (per task: labelled rows, minority-class rows before and after).
4. ``forest``: the same random forest on Morgan counts (medai's baseline: 500 trees per task, balanced
   subsamples) on medai's random 80/10/10 splits (seeds as given), trained and tested (a) on the RDKit-parsed raw
   rows, one per file row, (b) on medai's standardised, merged table, and (c) on that table with a drug listed
   twice labelled by "any" (approved if either entry was, toxic if either was) instead of missing: test ROC-AUC
   (mean over the two tasks).

Prints JSON; ``--out FILE`` writes it too. Runs in about a minute per seed on one core.

    OMP_NUM_THREADS=1 python bench/clintox_artifacts.py --out bench/results/DATE-clintox_artifacts.json
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np

TASKS = ("FDA_APPROVED", "CT_TOX")
_BRACKETS = re.compile(r"\[[^\]]*\]")


def text_style(smiles: str) -> list[int]:
    """Four 0/1 facts about how a SMILES string is written."""
    outside = _BRACKETS.sub("", smiles)
    return [int(bool(re.search("[cnos]", outside))), int("+]" in smiles or "-]" in smiles), int("." in smiles),
            int(bool(re.search(r"=[CN]", smiles)))]


def graph_artifacts(mol) -> list[int]:
    """Two 0/1 facts a graph model sees: a charged atom, more than one fragment."""
    from rdkit import Chem

    return [int(any(atom.GetFormalCharge() != 0 for atom in mol.GetAtoms())), int(len(Chem.GetMolFrags(mol)) > 1)]


def cv_auroc(features: np.ndarray, labels: np.ndarray) -> float | None:
    """Stratified 10-fold ROC-AUC of a logistic regression on ``features`` (rows with a label)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    present = np.isfinite(labels)
    x, y = features[present], labels[present].astype(int)
    if len(np.unique(x, axis=0)) < 2:
        return None  # constant features: no information at all
    p = cross_val_predict(LogisticRegression(), x, y, cv=StratifiedKFold(10, shuffle=True, random_state=0),
                          method="predict_proba")[:, 1]
    return round(float(roc_auc_score(y, p)), 4)


def minority(labels: np.ndarray) -> dict:
    out = {}
    for j, task in enumerate(TASKS):
        y = labels[:, j][np.isfinite(labels[:, j])]
        minority_class = int(y.mean() < 0.5)
        out[task] = {"labelled": len(y), "minority_class": minority_class,
                     "minority_rows": int((y == minority_class).sum())}
    return out


def forest_auroc(fingerprints: np.ndarray, labels: np.ndarray, split: dict, seed: int) -> float:
    from sklearn.metrics import roc_auc_score

    from medai.tasks.molecule_fit import fit_forest

    config = {"task_types": ["classification"] * len(TASKS)}
    train, test = split["train"], split["test"]
    forests, _ = fit_forest(config, fingerprints[train], labels[train], seed)
    scores = []
    for j in range(len(TASKS)):
        present = np.isfinite(labels[test, j])
        y = labels[test, j][present]
        if len(np.unique(y)) == 2:
            p = forests.tree_outputs(fingerprints[test][present], j).mean(axis=0)
            scores.append(roc_auc_score(y, p))
    return float(np.mean(scores))


def any_labels(table, raw_labels: np.ndarray) -> np.ndarray:
    """The merged table's labels with each merged molecule labelled by the max over its file rows (NaN-free)."""
    groups = {rows[0]: rows for rows in (issue["rows"] for issue in table.report["issues"].get("duplicate", []))}
    return np.array([raw_labels[[r - 1 for r in groups.get(int(row), [int(row)])]].max(axis=0)
                     for row in table.row_numbers])


def main() -> None:
    import pandas as pd
    from rdkit import Chem, RDLogger

    from medai.chem.datasets import load_molecule_dataset
    from medai.chem.splits import random_split
    from medai.settings import data_dir
    from medai.tasks.molecular_property import FRACTIONS
    from medai.tasks.molecule_fit import FINGERPRINT

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    RDLogger.DisableLog("rdApp.*")

    root = data_dir()
    if root is None:
        raise SystemExit("No data folder: set MEDAI_DATA_DIR to the folder holding moleculenet/clintox.csv.")
    path = root / "moleculenet" / "clintox.csv"
    raw = pd.read_csv(path)
    raw_labels = raw[list(TASKS)].to_numpy(dtype=float)
    mols = [Chem.MolFromSmiles(s) for s in raw["smiles"]]
    keep = np.array([m is not None for m in mols])
    mols = [m for m in mols if m is not None]
    raw_labels = raw_labels[keep]
    style = np.array([text_style(s) for s, k in zip(raw["smiles"], keep) if k])
    artifacts = np.array([graph_artifacts(m) for m in mols])

    table = load_molecule_dataset("clintox")
    std_mols = table.mols
    std_artifacts = np.array([graph_artifacts(m) for m in std_mols])
    report = {
        "data": "moleculenet/clintox.csv (under MEDAI_DATA_DIR)", "rows": len(raw), "rows_parsed_by_rdkit": int(keep.sum()),
        "text_style": {
            "features": ["lowercase aromatic atom outside brackets", "charged bracket atom", "'.' (several fragments)",
                         "Kekule double bond to C or N"],
            "share_of_rows_with_feature": dict(zip(["aromatic", "charged", "dot", "kekule"],
                                                   np.round(style.mean(0), 3).tolist())),
            "ct_tox_rate_with_feature": dict(zip(["aromatic", "charged", "dot", "kekule"], [
                round(float(raw_labels[style[:, i] == 1, 1].mean()), 3) for i in range(4)])),
            "cv10_auroc": {t: cv_auroc(style, raw_labels[:, j]) for j, t in enumerate(TASKS)},
        },
        "graph_artifacts": {
            "features": ["an atom with a formal charge", "more than one fragment"],
            "raw_cv10_auroc": {t: cv_auroc(artifacts, raw_labels[:, j]) for j, t in enumerate(TASKS)},
            "standardised_cv10_auroc": {t: cv_auroc(std_artifacts, table.labels[:, j]) for j, t in enumerate(TASKS)},
            "standardised_share_with_feature": np.round(std_artifacts.mean(0), 3).tolist(),
        },
        "duplicates": {"raw": minority(raw_labels), "standardised": minority(table.labels),
                       "molecules_after_merging": len(table)},
    }

    morgan = FINGERPRINT  # the featuriser medai's forest uses
    raw_fp, std_fp = morgan(mols)[0]["values"], morgan(std_mols)[0]["values"]
    merged_any = any_labels(table, raw[list(TASKS)].to_numpy(dtype=float))
    report["duplicates"]["standardised_any"] = minority(merged_any)
    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        t0 = time.perf_counter()
        raw_split = random_split(len(mols), FRACTIONS, seed=seed)
        std_split = random_split(len(table), FRACTIONS, seed=seed)
        runs.append({"seed": seed,
                     "raw_rows": round(forest_auroc(raw_fp, raw_labels, raw_split, seed), 4),
                     "standardised": round(forest_auroc(std_fp, table.labels, std_split, seed), 4),
                     "standardised_any": round(forest_auroc(std_fp, merged_any, std_split, seed), 4),
                     "seconds": round(time.perf_counter() - t0, 1)})
        print(json.dumps(runs[-1]), flush=True)
    report["forest"] = {
        "model": "medai random_forest (500 trees per task, Morgan counts radius 2, 2048 bits)",
        "split": "medai random 80/10/10 (the CLI's split for the same seed)", "per_seed": runs,
        "mean_test_auroc": {k: round(float(np.mean([r[k] for r in runs])), 4)
                            for k in ("raw_rows", "standardised", "standardised_any")},
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
