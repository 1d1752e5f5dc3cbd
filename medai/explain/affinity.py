"""Which residues and SMILES characters drive one drug-target affinity prediction.

Integrated gradients (Captum) on the embeddings of both sequences of a DeepDTA-style network (one with
``drug_encoder``, ``protein_encoder`` and ``combine``). The baseline keeps both sequences' lengths but sets every
embedding to zero (the padding embedding): no chemical or residue identity. A position's attribution is the sum
over its embedding dimensions; all attributions together add up to the prediction minus the baseline's prediction,
in affinity units, up to the reported ``convergence_delta``. Positive values raise the predicted affinity.

Protein windows are sums over ``window`` consecutive residues; the strongest non-overlapping windows (by absolute
sum) are reported with their 1-based positions and residues.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from medai.engine.plots import _new_figure, _save
from medai.errors import require


def integrated_gradients(model, drug_codes: np.ndarray, protein_codes: np.ndarray, steps: int = 50) -> dict:
    """Attributions of one pair.

    Args:
        model: an :class:`~medai.models.affinity.AffinityModel` (in eval mode).
        drug_codes: int codes of shape (max_smiles_length,); protein_codes: shape (max_sequence_length,).
        steps: integration steps.

    Returns:
        ``{"drug": (drug length,), "protein": (protein length,), "prediction", "baseline_prediction",
        "convergence_delta"}`` with float64 arrays.
    """
    attr = require("captum.attr", "explain")
    network = model.network.eval()
    drug, drug_lengths = network.drug_encoder.embed(torch.as_tensor(drug_codes)[None].long())  # (1, Ld', E)
    protein, protein_lengths = network.protein_encoder.embed(torch.as_tensor(protein_codes)[None].long())  # (1, Lp', E)

    def forward(drugs: torch.Tensor, proteins: torch.Tensor) -> torch.Tensor:  # (n, L, E) each -> (n,)
        n = len(drugs)
        encoded = (network.drug_encoder.encode_embedded(drugs, drug_lengths.expand(n)),
                   network.protein_encoder.encode_embedded(proteins, protein_lengths.expand(n)))
        return network.combine(*encoded) * model.target_std + model.target_mean

    inputs = (drug.detach(), protein.detach())
    baselines = tuple(torch.zeros_like(x) for x in inputs)
    (drug_attr, protein_attr), delta = attr.IntegratedGradients(forward).attribute(
        inputs, baselines=baselines, n_steps=steps, internal_batch_size=steps, return_convergence_delta=True)
    with torch.no_grad():
        prediction, baseline = float(forward(*inputs)), float(forward(*baselines))
    per_position = [a[0].sum(dim=1).double().numpy()[: int(n)] for a, n in
                    ((drug_attr, drug_lengths[0]), (protein_attr, protein_lengths[0]))]
    return {"drug": per_position[0], "protein": per_position[1], "prediction": prediction,
            "baseline_prediction": baseline, "convergence_delta": float(delta.abs().max())}


def top_windows(values: np.ndarray, sequence: str, window: int = 15, count: int = 5) -> list[dict]:
    """Strongest non-overlapping windows of ``window`` positions by absolute summed attribution.

    Examples:
        >>> top_windows(np.array([0.0, 1.0, 1.0, 0.0, -3.0, 0.0]), "ACDEFG", window=2, count=2)
        [{'start': 4, 'end': 5, 'residues': 'EF', 'attribution': -3.0}, {'start': 2, 'end': 3, 'residues': 'CD', 'attribution': 2.0}]
    """
    window = max(1, min(window, len(values)))
    sums = np.convolve(values, np.ones(window), mode="valid")  # sums[i] covers positions i .. i + window - 1
    taken, found = np.zeros(len(values), dtype=bool), []
    for start in np.argsort(-np.abs(sums), kind="stable"):
        if len(found) == count:
            break
        if not taken[start : start + window].any():
            taken[start : start + window] = True
            found.append({"start": int(start) + 1, "end": int(start) + window, "residues": sequence[start : start + window],
                          "attribution": round(float(sums[start]), 6)})
    return found


def explain_pair(model, drug_codes, protein_codes, smiles: str, sequence: str, name: str, out, *,
                 window: int = 15, steps: int = 50) -> dict:
    """Attribute one pair, write a PNG to ``out`` and the attributions as JSON beside it; return the summary."""
    result = integrated_gradients(model, drug_codes, protein_codes, steps)
    drug, protein = result["drug"], result["protein"]
    smiles, sequence = smiles[: len(drug)], sequence[: len(protein)]
    characters = [{"position": int(i) + 1, "character": smiles[i], "attribution": round(float(drug[i]), 6)}
                  for i in np.argsort(-np.abs(drug), kind="stable")[:10]]
    summary = {
        "prediction": result["prediction"], "baseline_prediction": result["baseline_prediction"],
        "convergence_delta": result["convergence_delta"], "affinity_name": name,
        "drug_total": float(drug.sum()), "protein_total": float(protein.sum()),
        "top_drug_characters": characters, "top_protein_windows": top_windows(protein, sequence, window),
        "window": window, "method": f"integrated gradients on embeddings (Captum, {steps} steps, zero baseline)",
    }
    out = Path(out)
    plot_attributions(drug, protein, smiles, summary, out)
    json_path = out.with_suffix(".json")
    json_path.write_text(json.dumps({**summary, "smiles": smiles, "sequence": sequence, "drug_attributions":
                                     drug.round(6).tolist(), "protein_attributions": protein.round(6).tolist()}, indent=2))
    return {**summary, "png": str(out), "json": str(json_path)}


def plot_attributions(drug: np.ndarray, protein: np.ndarray, smiles: str, summary: dict, path: Path) -> Path:
    """Bars per SMILES character above the per-residue attribution along the protein, top windows shaded."""
    figure = _new_figure(12.0, 6.5)
    top, bottom = figure.subplots(2, 1, gridspec_kw={"height_ratios": [1, 1.2]})
    colours = np.where(drug >= 0, "tab:red", "tab:blue")
    top.bar(np.arange(len(drug)), drug, color=colours)
    top.set_xticks(np.arange(len(drug)), list(smiles), fontsize=6 if len(drug) > 60 else 8, family="monospace")
    top.axhline(0, color="grey", lw=0.8)
    top.set_ylabel("attribution")
    top.set_title(f"Drug SMILES characters (sum {summary['drug_total']:+.3f}); predicted {summary['affinity_name']} "
                  f"{summary['prediction']:.2f}, baseline {summary['baseline_prediction']:.2f}", fontsize="medium")
    positions = np.arange(1, len(protein) + 1)
    bottom.plot(positions, protein, lw=0.7, color="tab:grey", label="per residue")
    window = summary["window"]
    smooth = np.convolve(protein, np.ones(window) / window, mode="same")
    bottom.plot(positions, smooth, lw=1.5, color="tab:purple", label=f"mean over {window} residues")
    low, high = bottom.get_ylim()
    for rank, entry in enumerate(sorted(summary["top_protein_windows"], key=lambda e: e["start"])):
        colour = "tab:red" if entry["attribution"] >= 0 else "tab:blue"
        bottom.axvspan(entry["start"], entry["end"], color=colour, alpha=0.2)
        height = high - (0.04 + 0.07 * (rank % 2)) * (high - low)  # alternate heights so labels never overlap
        bottom.annotate(f"{entry['start']}-{entry['end']}", (entry["start"], height), fontsize=7, va="top")
    bottom.axhline(0, color="grey", lw=0.8)
    bottom.set_xlabel("residue position")
    bottom.set_ylabel("attribution")
    bottom.set_title(f"Protein residues (sum {summary['protein_total']:+.3f}); shaded: strongest windows "
                     "(red raises, blue lowers the prediction)", fontsize="medium")
    bottom.legend(loc="lower right", fontsize="small")
    return _save(figure, path)
