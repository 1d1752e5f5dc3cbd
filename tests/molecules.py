"""Tiny synthetic molecule sets for the molecular-property tests (made in the test, no real data)."""

from __future__ import annotations

import csv

import numpy as np

RINGS = ["c1ccccc1", "C1CCCCC1", "c1ccncc1", "C1CCOC1", "c1ccsc1"]
GROUPS = ["C", "CC", "CCC", "O", "CO", "N", "CN", "Cl", "C(=O)O", "C(F)(F)F", "OC", "CCN"]


def synthetic_smiles(n: int = 60) -> list[str]:
    """n distinct small molecules: a ring with one or two substituents, or a chain."""
    out = []
    for ring in RINGS:
        for group in GROUPS:
            out.append(f"{group}{ring}")
            out.append(f"{group}{ring}{GROUPS[(GROUPS.index(group) + 3) % len(GROUPS)]}")
    for length in range(2, 12):
        out.append("C" * length + "O")
        out.append("C" * length + "N")
    unique = list(dict.fromkeys(out))
    rng = np.random.default_rng(0)
    return [unique[i] for i in rng.permutation(len(unique))[:n]]


def labels_of(smiles: list[str], seed: int = 0) -> dict[str, np.ndarray]:
    """has_nitrogen (0/1) and a size-driven number (heavy atom count + noise); some labels missing."""
    rng = np.random.default_rng(seed)
    nitrogen = np.array([1.0 if "N" in s or "n" in s else 0.0 for s in smiles])
    size = np.array([sum(ch.isalpha() and ch not in "lH" for ch in s) for s in smiles], dtype=float)
    size = size + rng.normal(0, 0.2, len(smiles))
    nitrogen[rng.random(len(smiles)) < 0.1] = np.nan
    return {"has_nitrogen": nitrogen, "size": size}


def write_molecules(path, n: int = 60, seed: int = 0, with_labels: bool = True, extra_rows=()):
    """A CSV with columns smiles[, has_nitrogen, size]; ``extra_rows`` (dicts) are appended as written."""
    smiles = synthetic_smiles(n)
    labels = labels_of(smiles, seed)
    with open(path, "w", newline="") as handle:
        names = ["smiles", *(labels if with_labels else [])]
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        for i, s in enumerate(smiles):
            row = {"smiles": s}
            if with_labels:
                row |= {k: "" if np.isnan(v[i]) else f"{v[i]:g}" for k, v in labels.items()}
            writer.writerow(row)
        for row in extra_rows:
            writer.writerow({k: row.get(k, "") for k in names})
    return path
