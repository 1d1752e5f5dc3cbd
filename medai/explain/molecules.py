"""Atom contributions to a molecular-property prediction, drawn on the molecule.

- ``dmpnn``: integrated gradients (Captum) on the atom features, from a baseline molecule whose atoms have all-zero
  features (same bonds, same molecule-level features); an atom's contribution is the sum over its features. The
  contributions add up to prediction - baseline prediction (up to the integral's ``convergence_delta``).
- ``fingerprint_mlp`` and ``random_forest``: atom occlusion. Each atom's contribution is the prediction minus
  the prediction from the Morgan fingerprint computed without the environments rooted at that atom
  (``fromAtoms`` = every other atom), as RDKit's ``SimilarityMaps.GetAtomicWeightsForModel`` does.

The explained quantity is the task's probability (classification) or value in original units (regression).
The picture is RDKit's similarity map (green: raises the prediction, pink: lowers it) written as PNG; the same
numbers go to a JSON file next to it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from medai.errors import InvalidInputError, require

IG_STEPS = 64


def explain_molecule(bundle, row: dict, task: int, out: Path) -> dict:
    """Explain ``task`` of one input row (``{"source", "row", "input"}``); write ``out`` (PNG) and its JSON."""
    from medai.chem.molecules import standardise_all
    from medai.tasks.molecular_property import predictions_for
    from medai.tasks.molecule_fit import featurise_all

    Chem = require("rdkit.Chem", extra="chem")
    config = bundle.config
    result = standardise_all([row["input"]], _options(config), use_cache=False)[0]
    if result.status != "ok":
        raise InvalidInputError(f"Cannot explain {row['input']!r}: {result.status} ({result.reason or 'no molecule'}).")
    mol = Chem.MolFromSmiles(result.canonical)  # the atom order every featuriser sees
    parts = featurise_all([result.canonical], config["network"], config["features"], use_cache=False)
    prediction = float(predictions_for(bundle.model, config, parts)[0][0, task])
    if config["network"] == "dmpnn":
        contributions, reference, delta = _integrated_gradients(bundle.model, config, parts, task)
        method = "integrated gradients on atom features (Captum), zero-feature atoms as baseline"
    else:
        contributions, reference = _occlusion(bundle.model, config, parts, mol, task)
        delta, method = None, "atom occlusion: Morgan environments rooted at the atom removed"
    name, kind = config["task_names"][task], config["task_types"][task]
    explanation = {
        "input": row["input"], "smiles": result.canonical, "explained_class": name, "task_type": kind,
        "label": f"{name} {'probability' if kind == 'classification' else 'value'} {prediction:.3f}",
        "prediction": prediction, "method": method, "reference_prediction": reference,
        "sum_of_contributions": float(np.sum(contributions)), "convergence_delta": delta,
        "atoms": [{"index": i, "symbol": atom.GetSymbol(), "contribution": float(contributions[i])}
                  for i, atom in enumerate(mol.GetAtoms())],
        "image": str(out), "json": str(out.with_suffix(".json")),
    }
    draw_contributions(mol, contributions, out)
    out.with_suffix(".json").write_text(json.dumps(explanation, indent=2))
    return explanation


def _options(config: dict):
    from medai.chem.standardise import StandardiseOptions

    return StandardiseOptions(**config.get("source", {}).get("load_report", {}).get("standardise_options", {}))


def _integrated_gradients(model, config: dict, parts: dict, task: int) -> tuple[np.ndarray, float, float]:
    """(contribution per atom, baseline prediction, convergence delta) for a one-molecule ``parts``."""
    from medai.tasks.molecule_fit import dataset_of

    attr = require("captum.attr", "explain")
    data = dataset_of(parts, config)
    graph = data.collate(np.zeros(1, dtype=np.int64))
    atoms = graph["atom_features"]  # (n_atoms, atom_dim)
    model.eval()

    def forward(atom_features: torch.Tensor) -> torch.Tensor:  # (k, n_atoms, atom_dim) -> (k,)
        batch = data.collate(np.zeros(len(atom_features), dtype=np.int64))
        batch["atom_features"] = atom_features.reshape(-1, atoms.shape[1])
        return model.member_predictions(batch).mean(dim=0)[:, task]

    inputs, baseline = atoms.unsqueeze(0), torch.zeros_like(atoms).unsqueeze(0)
    values, delta = attr.IntegratedGradients(forward).attribute(
        inputs, baselines=baseline, n_steps=IG_STEPS, internal_batch_size=IG_STEPS, return_convergence_delta=True)
    with torch.no_grad():
        reference = float(forward(baseline)[0])
    return values[0].sum(dim=1).detach().numpy(), reference, float(delta[0])


def _occlusion(model, config: dict, parts: dict, mol, task: int) -> tuple[np.ndarray, float]:
    """(prediction minus prediction without each atom's environments, per atom; the full prediction)."""
    from medai.tasks.molecular_property import predictions_for
    from medai.tasks.molecule_fit import FINGERPRINT

    generators = require("rdkit.Chem.rdFingerprintGenerator", extra="chem")
    generator = generators.GetMorganGenerator(radius=FINGERPRINT.radius, fpSize=FINGERPRINT.n_bits,
                                              includeChirality=FINGERPRINT.chirality)
    n = mol.GetNumAtoms()
    others = [[j for j in range(n) if j != i] for i in range(n)]  # fromAtoms=[] would mean every atom
    occluded = np.stack([generator.GetCountFingerprintAsNumPy(mol, fromAtoms=rest) if rest
                         else np.zeros(FINGERPRINT.n_bits, np.uint32) for rest in others])
    variants = {**parts, "fingerprints": np.concatenate([parts["fingerprints"], occluded]).astype(np.uint16),
                "descriptors": None if parts["descriptors"] is None else np.repeat(parts["descriptors"], n + 1, axis=0)}
    predictions = predictions_for(model, config, variants)[0][:, task]
    return predictions[0] - predictions[1:], float(predictions[0])


def draw_contributions(mol, contributions: np.ndarray, out: Path, size: int = 500) -> Path:
    """RDKit similarity map of per-atom contributions (n_atoms,), written as PNG to ``out``."""
    draw = require("rdkit.Chem.Draw", extra="chem")
    maps = require("rdkit.Chem.Draw.SimilarityMaps", extra="chem")
    canvas = draw.rdMolDraw2D.MolDraw2DCairo(size, size)
    weights = [float(w) for w in contributions]
    if len(weights) > 1 and max(abs(w) for w in weights) > 0:
        maps.GetSimilarityMapFromWeights(mol, weights, draw2d=canvas)
    else:  # one atom, or nothing to colour: the plain structure
        canvas.DrawMolecule(mol)
    canvas.FinishDrawing()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(canvas.GetDrawingText())
    return out
