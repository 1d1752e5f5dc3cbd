"""Drug-target affinity (DTA): DeepDTA on (drug SMILES, protein sequence) pairs -> bundle.

Data: a DeepDTA folder (``ligands_can.txt``, ``proteins.txt``, affinity matrix, ``folds/``; e.g. DAVIS or KIBA),
the names ``davis`` / ``kiba`` under the data folder, or a CSV/TSV/Parquet table of (SMILES, sequence, affinity)
rows (:mod:`medai.chem.dta`). DeepDTA folders use its setting-1 split (training folds minus a validation fold,
the official test fold); tables a seeded random 80/10/10 split of pairs (or ``split="cold-drug"`` /
``"cold-protein"``). Targets are standardised on the training split; predictions are in the data's units (pKd for
DAVIS). Training batches group the pairs of whole proteins (:mod:`medai.tasks.affinity_data`), so each protein is
encoded about once per epoch. Explanations: integrated gradients on both sequences' embeddings
(:mod:`medai.explain.affinity`).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from medai.bundle import ModelBundle, save_bundle
from medai.chem.metrics import affinity_metrics, concordance_index, mse
from medai.chem.sequences import PROTEIN_ALPHABET, SMILES_VOCABULARY_SIZE
from medai.engine.trainer import Trainer, TrainerConfig
from medai.errors import BundleIntegrityError, InvalidInputError, check_choice, did_you_mean
from medai.models import NETWORKS
from medai.models.affinity import AffinityModel
from medai.tasks import affinity_data as pairs_io

TASK = "drug-target-affinity"
SPLITS = ("train", "val", "test", "all")
SMILES_ENCODING = "SMILES characters as given: printable ASCII '!'..'~' -> 1..94, other 95, padding 0"
EVAL_BATCH_SIZE = 1024  # pairs per inference chunk (grouped by protein, each protein encoded once per chunk)


@dataclass
class AffinitySettings:
    """User-facing settings of ``medai train --task drug-target-affinity``; defaults are the benchmarked ones."""

    model: str = "deepdta"  # network from the registry (modality "affinity")
    epochs: int = 50  # maximum epochs (best on validation loss kept)
    batch_size: int = 256  # pairs per step, about (the pairs of one protein share a step)
    learning_rate: float = 1e-3  # peak of the one-cycle schedule (AdamW)
    weight_decay: float = 0.0
    patience: int | None = None  # stop after this many epochs without improvement
    split: str = "auto"  # auto (DeepDTA folds, else random), deepdta, random, cold-drug, cold-protein
    validation_fold: int = 0  # DeepDTA folds: the training fold held out for epoch selection
    max_smiles_length: int | None = None  # None: the data's DeepDTA length (DAVIS 85, KIBA 100, tables 100)
    max_sequence_length: int | None = None  # None: DAVIS 1200, KIBA 1000, tables 1000
    target: str | None = None  # tables: the affinity column (found by name when None)
    smiles_column: str | None = None  # tables: the SMILES column (found by name when None)
    sequence_column: str | None = None  # tables: the protein sequence column (found by name when None)
    seed: int = 0
    device: str = "auto"
    num_threads: int | None = None  # CPU threads (None: all cores, or OMP_NUM_THREADS)
    progress: bool = True

    def validate(self) -> AffinitySettings:
        choices = NETWORKS.names("affinity")
        if self.model not in choices:
            raise InvalidInputError(f"Unknown affinity model {self.model!r}; known: {', '.join(choices)}."
                                    f"{did_you_mean(self.model, choices)}")
        check_choice("split", self.split, pairs_io.SPLIT_METHODS)
        for name in ("epochs", "batch_size", "max_smiles_length", "max_sequence_length"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1 or (name == "batch_size" and value < 2)):
                raise InvalidInputError(f"The '{name}' parameter must be an int >= {2 if name == 'batch_size' else 1}; "
                                        f"got {value!r}.")
        return self

    def trainer_config(self, rows_per_batch: int) -> TrainerConfig:
        return TrainerConfig(max_epochs=self.epochs, batch_size=rows_per_batch, learning_rate=self.learning_rate,
                             weight_decay=self.weight_decay, patience=self.patience, monitor="loss", seed=self.seed,
                             device=self.device, num_threads=self.num_threads, eval_batch_size=EVAL_BATCH_SIZE,
                             progress=self.progress)


Settings = AffinitySettings


# -- models -----------------------------------------------------------------------------------------------------


def build_model(config: dict) -> AffinityModel:
    """Rebuild the (untrained) model a config.json describes."""
    encoding = config["encoding"]
    if encoding["protein_alphabet"] != PROTEIN_ALPHABET or encoding["smiles_vocabulary"] != SMILES_VOCABULARY_SIZE:
        raise BundleIntegrityError("This bundle encodes sequences differently from this medai version "
                                   f"(protein alphabet {encoding['protein_alphabet']!r}); use the medai it was made with.")
    norm = config["target_normalisation"]
    return AffinityModel(NETWORKS.create(config["network"], **config["network_kwargs"]), norm["mean"], norm["std"])


def predict_pairs(model: AffinityModel, dataset, device: str = "auto") -> np.ndarray:
    """Affinities of a pair dataset (:func:`medai.tasks.affinity_data.pair_dataset`), shape (n_pairs,)."""
    if len(dataset) == 0:
        return np.zeros(0)
    order = pairs_io.grouped_order(dataset)
    config = TrainerConfig(eval_batch_size=EVAL_BATCH_SIZE, device=device, num_threads=torch.get_num_threads(),
                           progress=False)  # keeps the caller's thread count
    trainer = Trainer(config)
    values = np.empty(len(dataset), dtype=np.float64)
    values[order] = trainer.predict(model, dataset.subset(order))[:, 0]
    return values


def validation_metrics(logits: np.ndarray, labels: np.ndarray) -> dict:
    """CI and MSE of each epoch on the validation pairs."""
    return {"ci": concordance_index(labels, logits[:, 0]), "mse": mse(labels, logits[:, 0])}


def fit(data, parts: dict, settings: AffinitySettings) -> tuple[AffinityModel, dict, dict]:
    """Train on ``parts["train"]`` of ``data`` (an AffinityData), selecting the epoch on ``parts["val"]``.

    Returns:
        (model, config, fit summary).
    """
    lengths = (settings.max_smiles_length or data.max_smiles_length, settings.max_sequence_length or data.max_sequence_length)
    drug_codes, protein_codes = pairs_io.encode(data, *lengths)
    train_values = data.affinity[parts["train"]].astype(np.float64)
    config = {
        "task": TASK, "network": settings.model, "affinity_name": data.affinity_name,
        "network_kwargs": dict(NETWORKS.get(settings.model).defaults),
        "encoding": {"smiles": SMILES_ENCODING, "smiles_vocabulary": SMILES_VOCABULARY_SIZE,
                     "protein_alphabet": PROTEIN_ALPHABET, "max_smiles_length": lengths[0],
                     "max_sequence_length": lengths[1],
                     "truncated_drugs": int(sum(len(s) > lengths[0] for s in data.drug_smiles)),
                     "truncated_proteins": int(sum(len(s) > lengths[1] for s in data.sequences))},
        "target_normalisation": {"mean": float(train_values.mean()), "std": float(train_values.std()) or 1.0,
                                 "fitted_on": "train"},
        "columns": {"smiles": settings.smiles_column, "sequence": settings.sequence_column, "affinity": settings.target},
        "settings": asdict(settings),
    }
    torch.manual_seed(settings.seed)
    model = build_model(config)
    rows = pairs_io.protein_rows(data, parts["train"], protein_codes, seed=settings.seed)
    if len(rows) < 2 and len(parts["train"]) >= 2:  # one protein (a single-target table): two rows of its pairs
        rows = pairs_io.protein_rows(data, parts["train"], protein_codes, -(-len(parts["train"]) // 2), settings.seed)
    if len(rows) < 2:
        raise InvalidInputError(f"Training needs at least 2 training pairs; the split left {len(parts['train'])}.")
    val = pairs_io.pairs_of(data, parts["val"], drug_codes, protein_codes)
    val = val.subset(pairs_io.grouped_order(val))
    per_row = len(parts["train"]) / len(rows)
    rows_per_batch = max(2, round(settings.batch_size / per_row))
    trainer = Trainer(settings.trainer_config(rows_per_batch), train_transform=pairs_io.DrugPanel(drug_codes),
                      metric_fn=validation_metrics)
    result = trainer.fit(model, rows, val)
    model.cpu().eval()
    summary = {**result.to_dict(), "rows_per_batch": rows_per_batch, "pairs_per_step": rows_per_batch * per_row,
               "best_epochs": [result.best_epoch]}
    return model, config, summary


# -- train / evaluate / predict / explain -------------------------------------------------------------------------


def load(data, settings: AffinitySettings):
    return pairs_io.load_affinity_data(data, settings.smiles_column, settings.sequence_column, settings.target)


def fingerprint(data) -> str:
    """SHA-256 of the pairs (SMILES, sequences, affinities): says whether a file is the one a bundle was split on."""
    digest = hashlib.sha256()
    for texts in (data.drug_smiles, data.sequences):
        digest.update("\n".join(texts).encode())
    for array in (data.drug_index, data.protein_index, data.affinity, data.pair_numbers):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def train(data, out, settings: AffinitySettings | None = None, **overrides) -> ModelBundle:
    """Train on DAVIS/KIBA-style folders or (SMILES, sequence, affinity) tables and save the bundle in ``out``.

    Examples:
        >>> import medai
        >>> bundle = medai.train("drug-target-affinity", "davis", "runs/davis")  # doctest: +SKIP
        >>> bundle.metrics["test"]["ci"]  # doctest: +SKIP
    """
    from medai.tasks.affinity_card import render

    settings = AffinitySettings(**{**asdict(settings or AffinitySettings()), **overrides}).validate()
    start = time.perf_counter()
    affinity = load(data, settings)
    parts, description = pairs_io.split_pairs(affinity, settings.split, settings.seed, settings.validation_fold)
    model, config, summary = fit(affinity, parts, settings)
    method = settings.split if settings.split != "auto" else ("deepdta" if affinity.folds is not None else "random")
    config["source"] = {"data": affinity.source or Path(str(data)).name, "split": description, "split_method": method,
                        "pairs": len(affinity), "drugs": len(affinity.drug_ids), "proteins": len(affinity.protein_ids),
                        "distinct_sequences": len(set(affinity.sequences)), "fingerprint": fingerprint(affinity), "load_report": _short_report(affinity.report)}
    drug_codes, protein_codes = pairs_io.encode(affinity, config["encoding"]["max_smiles_length"],
                                                config["encoding"]["max_sequence_length"])
    metrics, predictions = {"fit": summary}, {}
    for name, index in parts.items():
        predictions[name] = predict_pairs(model, pairs_io.pairs_of(affinity, index, drug_codes, protein_codes))
        metrics[name] = affinity_metrics(predictions[name], affinity.affinity[index])
    metrics["fit"]["wall_seconds"] = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        plots = _plots(predictions["test"], affinity.affinity[parts["test"]], metrics["test"], summary["history"],
                       config["affinity_name"], Path(tmp))
        return save_bundle(
            out, model, config, metrics=metrics, card=render(config, metrics, {k: len(v) for k, v in parts.items()}),
            files={f"plots/{p.name}": p for p in plots},
            json_files={"splits.json": {k: affinity.pair_numbers[v].tolist() for k, v in parts.items()}},
        )  # fmt: skip


def _plots(predictions, targets, metrics: dict, history: list, name: str, folder: Path) -> list[Path]:
    from medai.engine.plots import plot_training_curves
    from medai.engine.regression_plots import plot_predicted_vs_measured

    values = ", ".join(f"{k.upper()} {metrics[k]:.3f}" for k in ("ci", "mse") if metrics[k] is not None)
    title = f"Test pairs (n = {len(targets)}): {values}"
    return [plot_predicted_vs_measured(predictions, targets, folder / "predicted_vs_measured.png", name, title),
            plot_training_curves(history, folder / "training_curves.png")]


def _short_report(report: dict) -> dict:
    """The load report without per-row issue lists (counts and notes only)."""
    return {k: v for k, v in report.items() if k != "issues"}


def _pairs_for_bundle(bundle: ModelBundle, data, split: str):
    """(AffinityData, pair indices) of ``split`` of the training data, or every pair of ``data`` for ``"all"``."""
    check_choice("split", split, SPLITS)
    columns = bundle.config["columns"]
    affinity = pairs_io.load_affinity_data(data, columns["smiles"], columns["sequence"], columns["affinity"])
    if split == "all":
        return affinity, np.arange(len(affinity))
    saved = json.loads((bundle.path / "splits.json").read_text()) if bundle.path else {}
    wanted = np.asarray(saved.get(split, []), dtype=np.int64)
    index = np.flatnonzero(np.isin(affinity.pair_numbers, wanted))
    if fingerprint(affinity) != bundle.config["source"]["fingerprint"] or len(index) != len(wanted) or not len(wanted):
        raise InvalidInputError(f"The {split!r} split of the training data is not in this file; for another file "
                                f"use --split all.")
    return affinity, index


def evaluate(bundle: ModelBundle, data, split: str = "test", *, plots_dir=None) -> dict:
    """CI, MSE, RMSE, MAE, R^2 and r_m^2 on one split of the training data, or on every pair of another file."""
    affinity, index = _pairs_for_bundle(bundle, data, split)
    encoding = bundle.config["encoding"]
    drug_codes, protein_codes = pairs_io.encode(affinity, encoding["max_smiles_length"], encoding["max_sequence_length"])
    predictions = predict_pairs(bundle.model, pairs_io.pairs_of(affinity, index, drug_codes, protein_codes))
    metrics = affinity_metrics(predictions, affinity.affinity[index])
    if plots_dir is not None:
        from medai.engine.regression_plots import plot_predicted_vs_measured

        plot_predicted_vs_measured(predictions, affinity.affinity[index], Path(plots_dir) / "predicted_vs_measured.png",
                                   bundle.config["affinity_name"])
    return metrics


def _records(bundle: ModelBundle, item, split: str):
    check_choice("split", split, SPLITS)
    columns = bundle.config["columns"]
    records = pairs_io.read_pair_records(item, columns["smiles"], columns["sequence"])
    if split != "all":
        affinity, index = _pairs_for_bundle(bundle, item, split)
        keep = set(f"pair-{n}" for n in affinity.pair_numbers[index])
        rows = [k for k, name in enumerate(records.inputs) if name in keep]
        records = pairs_io.PairRecords([records.inputs[k] for k in rows], [records.smiles[k] for k in rows],
                                       [records.sequences[k] for k in rows], [records.issues[k] for k in rows])
    return records


def predict(bundle: ModelBundle, inputs: list, split: str = "all") -> list[dict]:
    """Predicted affinity of every (SMILES, sequence) row of each table (or pair of a DeepDTA folder).

    Returns:
        One dict per row, in file order: ``{"input": "row-<k>", "affinity", "affinity_name", "label"}``, or
        ``{"input", "error", "reason"}`` for a row whose SMILES RDKit cannot read (``"invalid SMILES"``) or whose
        sequence holds non-amino-acid letters (``"invalid sequence"``).
    """
    name, encoding = bundle.config["affinity_name"], bundle.config["encoding"]
    results = []
    for item in inputs:
        records = _records(bundle, item, split)
        usable = np.flatnonzero(records.usable)
        values = predict_pairs(bundle.model, records.dataset(encoding["max_smiles_length"],
                                                             encoding["max_sequence_length"], name))
        predicted = dict(zip(usable.tolist(), values.tolist()))
        for k, row in enumerate(records.inputs):
            if k in predicted:
                results.append({"input": row, "affinity": predicted[k], "affinity_name": name,
                                "label": f"{name} {predicted[k]:.3f}"})
            else:
                error, reason = records.issues[k]
                results.append({"input": row, "error": error, "reason": reason})
    return results


def explain(bundle: ModelBundle, data, out, *, row: int = 0, target: str | None = None, split: str = "all",
            index=None, window: int = 15) -> dict:
    """Which SMILES characters and protein residues drive the prediction of row ``row`` (0-based) of ``data``.

    Writes a PNG to ``out`` and the attributions as JSON beside it (same name, .json).
    """
    from medai.explain.affinity import explain_pair

    if target is not None:
        raise InvalidInputError("--target names a class to explain; an affinity model has one output, leave it out.")
    records = _records(bundle, data, split)
    row = row if index is None else index
    if not 0 <= row < len(records.inputs):
        raise InvalidInputError(f"--row must lie in [0, {len(records.inputs) - 1}] for this file; got {row}.")
    if records.issues[row] is not None:
        raise InvalidInputError(f"{records.inputs[row]} cannot be explained: {': '.join(records.issues[row])}.")
    name, encoding = bundle.config["affinity_name"], bundle.config["encoding"]
    single = pairs_io.PairRecords([records.inputs[row]], [records.smiles[row]], [records.sequences[row]], [None])
    dataset = single.dataset(encoding["max_smiles_length"], encoding["max_sequence_length"], name)
    result = explain_pair(bundle.model, dataset.extras["drug"][0], dataset.inputs[0], records.smiles[row],
                          records.sequences[row], name, out, window=window)
    return {"input": records.inputs[row], "label": f"{name} {result['prediction']:.3f}", "explained_class": name,
            **result}
