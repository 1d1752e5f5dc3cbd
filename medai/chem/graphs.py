"""Molecular graphs for directed message passing (D-MPNN, chemprop v2 style): atom and bond features, batches.

Each molecule is stored compactly as integer feature codes (:class:`MolGraphSet`); :meth:`MolGraphSet.batch`
expands any set of molecules into the float arrays a model consumes (:class:`BatchMolGraph`):

=================  ========================  ===================================================================
key                shape, dtype              meaning
=================  ========================  ===================================================================
atom_features      (n_atoms, 72) float32     one-hot blocks below, then aromatic (0/1), then atomic mass / 100
edge_features      (n_edges, 14) float32     features of the bond behind each directed edge
edge_index         (2, n_edges) int64        row 0 = source atom, row 1 = target atom (indices into the batch)
rev_edge_index     (n_edges,) int64          the edge in the opposite direction: bond b gives edges 2b (u->v)
                                             and 2b+1 (v->u), so ``rev_edge_index[e] == e ^ 1``
batch              (n_atoms,) int64          the molecule (0..n_molecules-1) each atom belongs to
=================  ========================  ===================================================================

Atom one-hot blocks, each with a final "other" slot: atomic number (1-36 and 53), total degree (0-5), formal
charge (-2..2), chiral tag (0-3), total hydrogens (0-4), hybridisation (S, SP, SP2, SP2D, SP3, SP3D, SP3D2).
Bond features: type (single, double, triple, aromatic, other), conjugated, in ring, stereo (none, any, Z, E, cis,
trans, other). A D-MPNN step reads: ``h0 = W_i [atom_features[edge_index[0]] | edge_features]``, then
``m_atom = scatter_sum(h, edge_index[1])`` and ``m_edge = m_atom[edge_index[0]] - h[rev_edge_index]``; atom
states are pooled per molecule with ``batch``.

Examples:
    >>> from rdkit import Chem
    >>> graphs = MolGraphFeaturiser().featurise_mols([Chem.MolFromSmiles("CCO"), Chem.MolFromSmiles("C#N")])
    >>> batch = graphs.batch([0, 1])
    >>> batch.atom_features.shape, batch.edge_index.tolist(), batch.batch.tolist()
    ((5, 72), [[0, 1, 1, 2, 3, 4], [1, 0, 2, 1, 4, 3]], [0, 0, 0, 1, 1])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medai.errors import InvalidInputError, require

ELEMENTS = (*range(1, 37), 53)
DEGREES = (0, 1, 2, 3, 4, 5)
FORMAL_CHARGES = (-2, -1, 0, 1, 2)
CHIRAL_TAGS = (0, 1, 2, 3)
HYDROGEN_COUNTS = (0, 1, 2, 3, 4)
HYBRIDISATIONS = ("S", "SP", "SP2", "SP2D", "SP3", "SP3D", "SP3D2")
ATOM_BLOCKS = (ELEMENTS, DEGREES, FORMAL_CHARGES, CHIRAL_TAGS, HYDROGEN_COUNTS, HYBRIDISATIONS)
_ATOM_OFFSETS = np.cumsum([0] + [len(block) + 1 for block in ATOM_BLOCKS])  # start column of each block
AROMATIC_COLUMN = int(_ATOM_OFFSETS[-1])
MASS_COLUMN = AROMATIC_COLUMN + 1
ATOM_FEATURE_DIM = MASS_COLUMN + 1  # 72

BOND_TYPES = ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC")
BOND_STEREO = ("STEREONONE", "STEREOANY", "STEREOZ", "STEREOE", "STEREOCIS", "STEREOTRANS")
CONJUGATED_COLUMN = len(BOND_TYPES) + 1
RING_COLUMN = CONJUGATED_COLUMN + 1
STEREO_OFFSET = RING_COLUMN + 1
BOND_FEATURE_DIM = STEREO_OFFSET + len(BOND_STEREO) + 1  # 14


@dataclass
class BatchMolGraph:
    """Several molecules as one disconnected graph (see the module docstring for shapes and meaning)."""

    atom_features: np.ndarray
    edge_features: np.ndarray
    edge_index: np.ndarray
    rev_edge_index: np.ndarray
    batch: np.ndarray
    n_molecules: int

    def tensors(self, device=None) -> dict:
        """The arrays as torch tensors under the same names (float32 features, int64 indices)."""
        import torch

        names = ("atom_features", "edge_features", "edge_index", "rev_edge_index", "batch")
        return {name: torch.from_numpy(np.ascontiguousarray(getattr(self, name))).to(device) for name in names}


@dataclass
class MolGraphSet:
    """The graphs of n molecules, packed: molecule i owns atoms ``atom_offsets[i]:atom_offsets[i+1]``.

    Attributes:
        atom_codes: int16 (n_atoms_total, 7): index within each atom block (len(block) = other), then aromatic.
        atom_mass: float32 (n_atoms_total,): atomic mass / 100.
        bond_codes: int8 (n_bonds_total, 4): bond type index, conjugated, in ring, stereo index.
        bond_atoms: int32 (n_bonds_total, 2): begin and end atom of each bond, counted within its molecule.
        atom_offsets / bond_offsets: int64 (n_molecules + 1,).
        report: featurisation account (counts, timing, cache use).
    """

    atom_codes: np.ndarray
    atom_mass: np.ndarray
    bond_codes: np.ndarray
    bond_atoms: np.ndarray
    atom_offsets: np.ndarray
    bond_offsets: np.ndarray
    report: dict = field(default_factory=dict)

    ARRAY_NAMES = ("atom_codes", "atom_mass", "bond_codes", "bond_atoms", "atom_offsets", "bond_offsets")

    def __len__(self) -> int:
        return len(self.atom_offsets) - 1

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.ARRAY_NAMES}

    def batch(self, indices) -> BatchMolGraph:
        """Expand the molecules at ``indices`` (in that order) into one :class:`BatchMolGraph`."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(indices) and (indices.min() < 0 or indices.max() >= len(self)):
            raise InvalidInputError(f"Molecule indices must lie in [0, {len(self) - 1}]; got values from "
                                    f"{indices.min()} to {indices.max()}.")
        n_atoms = self.atom_offsets[indices + 1] - self.atom_offsets[indices]  # (batch,)
        n_bonds = self.bond_offsets[indices + 1] - self.bond_offsets[indices]
        atoms = _ranges(self.atom_offsets[indices], n_atoms)  # rows of the packed atom arrays
        bonds = _ranges(self.bond_offsets[indices], n_bonds)
        first_atom = np.cumsum(n_atoms) - n_atoms  # index of each molecule's first atom in the batch
        ends = self.bond_atoms[bonds].astype(np.int64) + np.repeat(first_atom, n_bonds)[:, None]  # (n_bonds, 2)
        edge_index = np.stack([ends.reshape(-1), ends[:, ::-1].reshape(-1)])  # (2, 2 * n_bonds): u->v, v->u
        return BatchMolGraph(
            atom_features=atom_features(self.atom_codes[atoms], self.atom_mass[atoms]),
            edge_features=np.repeat(bond_features(self.bond_codes[bonds]), 2, axis=0),
            edge_index=edge_index,
            rev_edge_index=np.arange(edge_index.shape[1], dtype=np.int64) ^ 1,
            batch=np.repeat(np.arange(len(indices), dtype=np.int64), n_atoms),
            n_molecules=len(indices),
        )


class MolGraphFeaturiser:
    """Builds a :class:`MolGraphSet` from RDKit molecules (used through :func:`medai.chem.featurise.featurise`)."""

    name = "graph"
    VERSION = 1  # bump when the features change, so cached graphs are rebuilt

    def config(self) -> dict:
        return {"cls": self.name, "version": self.VERSION, "atom_dim": ATOM_FEATURE_DIM,
                "bond_dim": BOND_FEATURE_DIM}

    def __call__(self, mols: list) -> tuple[dict[str, np.ndarray], dict]:
        return self.featurise_mols(mols).arrays(), {}

    def wrap(self, arrays: dict[str, np.ndarray], report: dict) -> MolGraphSet:
        return MolGraphSet(**{name: arrays[name] for name in MolGraphSet.ARRAY_NAMES}, report=report)

    def featurise_mols(self, mols: list) -> MolGraphSet:
        Chem = require("rdkit.Chem", extra="chem")
        lookups = _atom_lookups(Chem)
        bond_types = {getattr(Chem.BondType, name): i for i, name in enumerate(BOND_TYPES)}
        stereo = {getattr(Chem.BondStereo, name): i for i, name in enumerate(BOND_STEREO)}
        atom_codes, masses, bond_codes, bond_atoms = [], [], [], []
        atom_counts, bond_counts = [], []
        for mol in mols:
            for atom in mol.GetAtoms():
                values = (atom.GetAtomicNum(), atom.GetTotalDegree(), atom.GetFormalCharge(),
                          int(atom.GetChiralTag()), atom.GetTotalNumHs(), atom.GetHybridization())
                atom_codes.append([table.get(v, len(table)) for table, v in zip(lookups, values)]
                                  + [int(atom.GetIsAromatic())])
                masses.append(atom.GetMass() * 0.01)
            for bond in mol.GetBonds():
                bond_codes.append((bond_types.get(bond.GetBondType(), len(BOND_TYPES)), int(bond.GetIsConjugated()),
                                   int(bond.IsInRing()), stereo.get(bond.GetStereo(), len(BOND_STEREO))))
                bond_atoms.append((bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()))
            atom_counts.append(mol.GetNumAtoms())
            bond_counts.append(mol.GetNumBonds())
        return MolGraphSet(
            atom_codes=np.array(atom_codes, dtype=np.int16).reshape(-1, len(ATOM_BLOCKS) + 1),
            atom_mass=np.array(masses, dtype=np.float32),
            bond_codes=np.array(bond_codes, dtype=np.int8).reshape(-1, 4),
            bond_atoms=np.array(bond_atoms, dtype=np.int32).reshape(-1, 2),
            atom_offsets=np.concatenate([[0], np.cumsum(atom_counts)]).astype(np.int64),
            bond_offsets=np.concatenate([[0], np.cumsum(bond_counts)]).astype(np.int64),
        )


def atom_features(codes: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """Integer atom codes (n, 7) and mass / 100 (n,) -> float32 features (n, ATOM_FEATURE_DIM)."""
    features = np.zeros((len(codes), ATOM_FEATURE_DIM), dtype=np.float32)
    rows = np.arange(len(codes))[:, None]
    features[rows, _ATOM_OFFSETS[:-1] + codes[:, : len(ATOM_BLOCKS)]] = 1.0
    features[:, AROMATIC_COLUMN] = codes[:, len(ATOM_BLOCKS)]
    features[:, MASS_COLUMN] = mass
    return features


def bond_features(codes: np.ndarray) -> np.ndarray:
    """Integer bond codes (n, 4) -> float32 features (n, BOND_FEATURE_DIM)."""
    features = np.zeros((len(codes), BOND_FEATURE_DIM), dtype=np.float32)
    rows = np.arange(len(codes))
    features[rows, codes[:, 0]] = 1.0
    features[:, CONJUGATED_COLUMN] = codes[:, 1]
    features[:, RING_COLUMN] = codes[:, 2]
    features[rows, STEREO_OFFSET + codes[:, 3].astype(np.int64)] = 1.0
    return features


def _atom_lookups(Chem) -> list[dict]:
    hybridisations = [getattr(Chem.HybridizationType, name) for name in HYBRIDISATIONS]
    blocks = (*ATOM_BLOCKS[:-1], hybridisations)
    return [{value: i for i, value in enumerate(block)} for block in blocks]


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(start, start + count)`` for each pair, without a Python loop."""
    counts = counts.astype(np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    shifts = np.repeat(starts.astype(np.int64) - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return shifts + np.arange(total, dtype=np.int64)
