"""Featurising, fitting and predicting for the molecular-property task (the task module holds the user verbs).

How training fits the Trainer: a molecule batch is a graph whose size varies with the molecules drawn, so it
cannot be sliced out of in-memory tensors. The Trainer therefore accepts a
:class:`~medai.engine.trainer.CollatedDataset` (here :class:`~medai.chem.batches.MoleculeDataset`): it draws the
same seeded index order as for tensors and asks the dataset to collate each batch from its packed integer codes.
Best-epoch selection on validation, checkpoints, determinism and the progress bar are the Trainer's own; nothing
is padded to a maximum molecule size. Each ensemble member is trained on its own (seed + 1000 * index).

Inputs per molecule: the graph (``dmpnn``), Morgan counts (``fingerprint_mlp``, ``random_forest`` and the
applicability domain) and, with ``features="rdkit_2d"``, RDKit 2-D descriptors normalised by their training CDF.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from medai.chem.batches import MoleculeDataset
from medai.chem.featurise import MorganFingerprint, RDKitDescriptors, featurise
from medai.chem.graphs import MolGraphFeaturiser
from medai.chem.scaling import DescriptorScaler
from medai.engine.metrics import regression_metrics
from medai.engine.trainer import FitResult, Trainer, TrainerConfig
from medai.errors import InvalidInputError
from medai.models import NETWORKS
from medai.models.forest import TreeForests
from medai.models.molecule import MoleculeEnsemble, MoleculeModel

FINGERPRINT = MorganFingerprint(radius=2, n_bits=2048, counts=True)
INFERENCE_CHUNK = 64  # molecules per inference batch; the last one is padded so outputs never depend on batch-mates
FOREST_TREES = 500  # trees per task of the random-forest baseline


# -- features ---------------------------------------------------------------------------------------------------


def featurise_all(molecules, network: str, features: str, use_cache: bool = True) -> dict:
    """Raw inputs of a MoleculeTable or list of canonical SMILES: ``graphs``, ``fingerprints``, ``descriptors``.

    Returns:
        ``{"graphs": MolGraphSet | None, "fingerprints": uint16 (n, 2048), "descriptors": float32 (n, d) | None,
        "seconds": {...}}``; descriptors are raw (NaN where RDKit fails).
    """
    parts, seconds = {"graphs": None, "descriptors": None}, {}
    # Always from the canonical SMILES: the molecules a table kept from standardisation may number their atoms
    # differently, and training, evaluation, prediction and explanation must see identical inputs.
    molecules = list(molecules.smiles) if hasattr(molecules, "smiles") else list(molecules)
    if network == "dmpnn":
        parts["graphs"] = featurise(molecules, MolGraphFeaturiser(), use_cache)
        seconds["graph"] = parts["graphs"].report
    matrix = featurise(molecules, FINGERPRINT, use_cache)
    parts["fingerprints"], seconds["morgan"] = matrix.values, matrix.report
    if features == "rdkit_2d":
        matrix = featurise(molecules, RDKitDescriptors(), use_cache)
        parts["descriptors"], seconds["descriptors"] = matrix.values, matrix.report
    parts["reports"] = seconds
    return parts


def dataset_of(parts: dict, config: dict, indices=None, labels: np.ndarray | None = None) -> MoleculeDataset:
    """The MoleculeDataset of the molecules at ``indices`` (default all) for the config's network and features."""
    n = len(parts["fingerprints"])
    indices = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
    scaler = config.get("descriptor_scaler")
    features = None
    if scaler is not None:
        features = DescriptorScaler.from_dict(scaler).transform(parts["descriptors"][indices])
    graphs = parts["graphs"]
    if graphs is not None and len(indices) != len(graphs):
        graphs = _graph_subset(graphs, indices)
    return MoleculeDataset(graphs=graphs if config["network"] == "dmpnn" else None,
                           fingerprints=parts["fingerprints"][indices] if config["network"] != "dmpnn" else None,
                           features=features, labels=labels)


def _graph_subset(graphs, indices):
    """A MolGraphSet of the molecules at ``indices`` (re-packed)."""
    from medai.chem.graphs import MolGraphSet, _ranges

    atom_counts = graphs.atom_offsets[indices + 1] - graphs.atom_offsets[indices]
    bond_counts = graphs.bond_offsets[indices + 1] - graphs.bond_offsets[indices]
    atoms = _ranges(graphs.atom_offsets[indices], atom_counts)
    bonds = _ranges(graphs.bond_offsets[indices], bond_counts)
    return MolGraphSet(graphs.atom_codes[atoms], graphs.atom_mass[atoms], graphs.bond_codes[bonds],
                       graphs.bond_atoms[bonds], np.concatenate([[0], np.cumsum(atom_counts)]).astype(np.int64),
                       np.concatenate([[0], np.cumsum(bond_counts)]).astype(np.int64), graphs.report)


# -- models -----------------------------------------------------------------------------------------------------


def build_ensemble(config: dict) -> MoleculeEnsemble | TreeForests:
    """The (untrained) torch ensemble a config.json describes, or the empty forests to load a forest into."""
    if config["network"] == "random_forest":
        return TreeForests(config["forest"]["nodes"], config["forest"]["trees"])
    members = [MoleculeModel(NETWORKS.create(config["network"], **config["network_kwargs"]), config["task_types"],
                             config["target_mean"], config["target_std"]) for _ in range(config["ensemble"])]
    return MoleculeEnsemble(members)


def validation_metric(task_types, target_std):
    """``f(logits, labels) -> {"score", ...}`` for best-epoch selection; higher score is better.

    The score is the mean over tasks of AUROC (classification) and of -RMSE / training std (regression).
    """
    def metric(logits: np.ndarray, labels: np.ndarray) -> dict:
        return {"score": selection_score(logits_to_predictions(logits, task_types), labels, task_types, target_std)}

    return metric


def selection_score(predictions: np.ndarray, labels: np.ndarray, task_types, target_std) -> float:
    """The validation score of :func:`validation_metric` on predictions (probabilities or original units)."""
    values = task_values(predictions, labels, task_types)
    parts = [v for v, t in zip(values, task_types) if t == "classification" and v is not None]
    parts += [-v / s for v, t, s in zip(values, task_types, target_std) if t == "regression" and v is not None]
    return float(np.mean(parts)) if parts else float("nan")


def logits_to_predictions(logits: np.ndarray, task_types) -> np.ndarray:
    """Log-odds -> probabilities on classification columns; regression columns unchanged; shape (n, n_tasks)."""
    regression = np.array([t == "regression" for t in task_types])
    return np.where(regression, logits, 1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50))))


def task_values(predictions: np.ndarray, labels: np.ndarray, task_types) -> list:
    """AUROC (classification) or RMSE (regression) of each task on its labelled molecules (None if undefined)."""
    from sklearn.metrics import roc_auc_score

    values = []
    for j, kind in enumerate(task_types):
        present = np.isfinite(labels[:, j])
        y, p = labels[present, j], predictions[present, j]
        if kind == "classification":
            values.append(float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None)
        else:
            values.append(float(math.sqrt(np.mean((y - p) ** 2))) if len(y) else None)
    return values


def fit_ensemble(config: dict, train: MoleculeDataset, val: MoleculeDataset, trainer_config: TrainerConfig,
                 checkpoints: Path | None = None) -> tuple[MoleculeEnsemble, dict]:
    """Train every member on its own seed, keeping each one's best validation epoch; returns (ensemble, summary)."""
    torch.manual_seed(trainer_config.seed)
    ensemble = build_ensemble(config)
    metric = validation_metric(config["task_types"], config["target_std"])
    fits: list[FitResult] = []
    for index, member in enumerate(ensemble.members):
        trainer = Trainer(replace(trainer_config, seed=trainer_config.seed + 1000 * index), metric_fn=metric,
                          checkpoint_dir=None if checkpoints is None else checkpoints / f"member-{index}")
        fits.append(trainer.fit(member, train, val))
    ensemble.eval()
    seconds = sum(f.train_seconds for f in fits)
    samples = sum(f.train_samples for f in fits)
    summary = {"members": [f.to_dict() for f in fits], "best_epochs": [f.best_epoch for f in fits],
               "best_scores": [f.best_score for f in fits], "max_epochs": trainer_config.max_epochs,
               "train_seconds": seconds, "train_samples": samples,
               "molecules_per_second": samples / seconds if seconds else 0.0}
    return ensemble, summary


def fit_forest(config: dict, fingerprints: np.ndarray, labels: np.ndarray, seed: int,
               n_jobs: int = 1) -> tuple[TreeForests, dict]:
    """One random forest per task (FOREST_TREES trees) on Morgan counts of its labelled training molecules.

    scikit-learn fits them on ``n_jobs`` threads (every tree's seed is drawn first: the forests do not depend on
    it); they are kept as :class:`medai.models.forest.TreeForests` (flat arrays, saved in safetensors), whose node
    counts go to ``config["forest"]``.
    """
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    forests = []
    for j, kind in enumerate(config["task_types"]):
        present = np.isfinite(labels[:, j])
        cls = RandomForestClassifier if kind == "classification" else RandomForestRegressor
        extra = {"class_weight": "balanced_subsample"} if kind == "classification" else {}
        forest = cls(n_estimators=FOREST_TREES, max_features="sqrt" if kind == "classification" else 0.33,
                     min_samples_leaf=1, n_jobs=n_jobs, random_state=seed + j, **extra)
        y = labels[present, j]
        forests.append(forest.fit(fingerprints[present].astype(np.float32), y.astype(int) if kind == "classification" else y))
    model = TreeForests.from_sklearn(forests, config["task_types"])
    config["forest"] = model.config()
    return model, {"model": "random_forest", "trees_per_task": FOREST_TREES, "train_molecules": len(labels)}


# -- predictions and metrics ------------------------------------------------------------------------------------


@torch.no_grad()
def predict_arrays(model, config: dict, data: MoleculeDataset | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean prediction, member spread), both (n_molecules, n_tasks): probabilities or values in original units.

    ``data`` is a MoleculeDataset for torch models, Morgan counts (n, 2048) for random forests (spread = std over
    trees).
    """
    n_tasks = len(config["task_types"])
    if isinstance(model, TreeForests):
        x = np.asarray(data, dtype=np.float32)
        each = [model.tree_outputs(x, j) for j in range(n_tasks)]  # (trees, n) per task
        return (np.stack([e.mean(axis=0) for e in each], axis=1).astype(np.float32),
                np.stack([e.std(axis=0) for e in each], axis=1).astype(np.float32))
    if isinstance(model, list):  # bundles saved before forests were kept as arrays: forests from model.skops
        return _forest_predictions(model, config["task_types"], np.asarray(data, dtype=np.float32))
    model.eval()
    means, spreads = [], []
    for begin in range(0, len(data), INFERENCE_CHUNK):
        index = np.arange(begin, min(begin + INFERENCE_CHUNK, len(data)))
        padded = np.concatenate([index, np.full(INFERENCE_CHUNK - len(index), index[0])])
        batch = {k: v for k, v in data.collate(padded).items() if k != "label"}
        each = model.member_predictions(batch)[:, : len(index)]  # (members, chunk, n_tasks)
        means.append(each.mean(dim=0))
        spreads.append(each.std(dim=0, unbiased=False))
    if not means:
        return np.zeros((0, n_tasks), np.float32), np.zeros((0, n_tasks), np.float32)
    return torch.cat(means).numpy(), torch.cat(spreads).numpy()


def _forest_predictions(forests: list, task_types, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    means, spreads = [], []
    for forest, kind in zip(forests, task_types):
        if kind == "classification":
            positive = list(forest.classes_).index(1) if 1 in forest.classes_ else None
            trees = np.stack([t.predict_proba(x)[:, positive] if positive is not None else np.zeros(len(x))
                              for t in forest.estimators_])
        else:
            trees = np.stack([t.predict(x) for t in forest.estimators_])  # (trees, n)
        means.append(trees.mean(axis=0))
        spreads.append(trees.std(axis=0))
    return np.stack(means, axis=1).astype(np.float32), np.stack(spreads, axis=1).astype(np.float32)


def molecule_metrics(predictions: np.ndarray, labels: np.ndarray, task_names, task_types) -> dict:
    """Per-task and mean metrics on the labelled entries (NaN labels skipped), JSON-ready.

    Classification tasks: ``auroc_<task>``, ``auprc_<task>``; ``auroc`` and ``auprc`` are their means over tasks
    with both classes present. Regression tasks: ``rmse_<task>``, ``mae_<task>``, ``r2_<task>``; ``rmse``, ``mae``
    and ``r2`` are means over regression tasks. ``n_samples``: molecules; ``n_labels_<task>``: labelled ones.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    result: dict = {"n_samples": len(labels)}
    sums: dict[str, list] = {"auroc": [], "auprc": [], "rmse": [], "mae": [], "r2": []}
    for j, (name, kind) in enumerate(zip(task_names, task_types)):
        present = np.isfinite(labels[:, j])
        y, p = labels[present, j].astype(np.float64), predictions[present, j].astype(np.float64)
        result[f"n_labels_{name}"] = int(present.sum())
        if kind == "classification":
            both = len(np.unique(y)) == 2
            values = {"auroc": float(roc_auc_score(y, p)) if both else None,
                      "auprc": float(average_precision_score(y, p)) if both else None}
        else:
            values = regression_metrics(p, y) if len(y) else {"rmse": None, "mae": None, "r2": None}
            values = {k: values[k] for k in ("rmse", "mae", "r2")}
        for key, value in values.items():
            result[f"{key}_{name}"] = value
            if value is not None:
                sums[key].append(value)
    for key, values in sums.items():
        if values:
            result[key] = float(np.mean(values))
    kinds = set(task_types)
    for key in (("auroc", "auprc") if "classification" in kinds else ()) + (("rmse", "mae", "r2") if "regression" in kinds else ()):
        result.setdefault(key, None)
    return result


def check_labels(labels: np.ndarray, task_names, task_types, where: str) -> None:
    """Every task needs labels in ``where``; classification tasks need both classes."""
    for j, (name, kind) in enumerate(zip(task_names, task_types)):
        present = labels[np.isfinite(labels[:, j]), j]
        if len(present) == 0:
            raise InvalidInputError(f"The task {name!r} has no labels in the {where} split; drop it with --target or "
                                    f"use more data.")
        if kind == "classification" and len(np.unique(present)) < 2:
            raise InvalidInputError(f"The classification task {name!r} has a single class in the {where} split; it "
                                    f"needs both 0 and 1 (drop it with --target, or use more data).")
