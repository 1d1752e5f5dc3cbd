"""Featurisers for molecules: Morgan fingerprints, RDKit 2-D descriptors and molecular graphs, cached per dataset.

A featuriser stores its settings (``config()`` gives ``{"cls": name, **settings}``, enough to rebuild it with
:func:`make_featuriser`) and turns a list of RDKit molecules into arrays. :func:`featurise` runs one over a
:class:`~medai.chem.molecules.MoleculeTable` (or a list of SMILES), times it, and caches the arrays as ``.npz`` +
JSON in the medai cache folder, keyed by the canonical SMILES and the featuriser's settings.

==============  ===========================================  ===============================================
name            output                                        notes
==============  ===========================================  ===============================================
``morgan``      :class:`FeatureMatrix`, (n, n_bits) uint8     bits, or counts (uint16) with ``counts=True``
``descriptors`` :class:`FeatureMatrix`, (n, n_descr) float32  NaN where RDKit fails or gives inf/overflow;
                                                              counted per descriptor in ``report["nonfinite"]``
``graph``       :class:`~medai.chem.graphs.MolGraphSet`        see :mod:`medai.chem.graphs`
==============  ===========================================  ===============================================

Descriptors are not scaled here: scale them with statistics of the training split only (NaN left for the
imputer of that step).

Examples:
    >>> features = featurise(["CCO", "c1ccccc1"], MorganFingerprint(radius=2, n_bits=64), use_cache=False)
    >>> features.values.shape, features.values.dtype.name, int(features.values[0].sum())
    ((2, 64), 'uint8', 6)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from medai.chem import cache
from medai.chem.graphs import MolGraphFeaturiser, MolGraphSet
from medai.errors import InvalidInputError, check_choice, did_you_mean, require

FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class FeatureMatrix:
    """One feature vector per molecule.

    Attributes:
        values: array of shape (n_molecules, n_features).
        names: one name per feature column.
        config: the featuriser's settings (``{"cls": ..., ...}``).
        report: timing (``molecules_per_second``), cache use and any non-finite values per feature.
    """

    values: np.ndarray
    names: list[str]
    config: dict
    report: dict = field(default_factory=dict)


class MorganFingerprint:
    """Morgan (ECFP-like) circular fingerprint from ``rdFingerprintGenerator``.

    Args:
        radius: neighbourhood radius in bonds (2 ~ ECFP4).
        n_bits: length of the folded vector.
        counts: count vector (uint16) instead of bits (uint8).
        chirality: include chirality in the atom invariants.
    """

    name = "morgan"

    def __init__(self, radius: int = 2, n_bits: int = 2048, counts: bool = False, chirality: bool = False):
        for parameter, value, low in (("radius", radius, 0), ("n_bits", n_bits, 1)):
            if not isinstance(value, int) or value < low:
                raise InvalidInputError(f"The '{parameter}' parameter of MorganFingerprint must be an int >= {low}; "
                                        f"got {value!r}.")
        self.radius, self.n_bits, self.counts, self.chirality = radius, n_bits, bool(counts), bool(chirality)

    def config(self) -> dict:
        return {"cls": self.name, "radius": self.radius, "n_bits": self.n_bits, "counts": self.counts,
                "chirality": self.chirality}

    def __call__(self, mols: list) -> tuple[dict[str, np.ndarray], dict]:
        generators = require("rdkit.Chem.rdFingerprintGenerator", extra="chem")
        generator = generators.GetMorganGenerator(radius=self.radius, fpSize=self.n_bits,
                                                  includeChirality=self.chirality)
        values = np.zeros((len(mols), self.n_bits), dtype=np.uint16 if self.counts else np.uint8)
        for i, mol in enumerate(mols):
            if self.counts:
                values[i] = np.minimum(generator.GetCountFingerprintAsNumPy(mol), np.iinfo(np.uint16).max)
            else:
                values[i] = generator.GetFingerprintAsNumPy(mol)
        return {"values": values}, {}

    def wrap(self, arrays: dict, report: dict) -> FeatureMatrix:
        kind = "count" if self.counts else "bit"
        return FeatureMatrix(arrays["values"], [f"morgan_{kind}_{i}" for i in range(self.n_bits)], self.config(),
                             report)


class RDKitDescriptors:
    """RDKit 2-D descriptors (``Descriptors._descList``: about 200, or the ``names`` given).

    Values RDKit cannot compute, and infinite or float32-overflowing ones, become NaN and are counted per
    descriptor in the report's ``nonfinite``.
    """

    name = "descriptors"

    def __init__(self, names: list[str] | None = None):
        self.names = None if names is None else [str(name) for name in names]

    def config(self) -> dict:
        return {"cls": self.name, "names": self.names}

    def _functions(self) -> list[tuple[str, object]]:
        descriptors = require("rdkit.Chem.Descriptors", extra="chem")
        available = dict(descriptors._descList)
        if self.names is None:
            return list(available.items())
        unknown = [name for name in self.names if name not in available]
        if unknown:
            raise InvalidInputError(f"Unknown RDKit descriptor(s) {unknown}; {len(available)} are available "
                                    f"(rdkit.Chem.Descriptors._descList).{did_you_mean(unknown[0], available)}")
        return [(name, available[name]) for name in self.names]

    def __call__(self, mols: list) -> tuple[dict[str, np.ndarray], dict]:
        functions = self._functions()
        values = np.full((len(mols), len(functions)), np.nan, dtype=np.float64)  # (n_molecules, n_descriptors)
        with require("rdkit.rdBase", extra="chem").BlockLogs():
            for i, mol in enumerate(mols):
                for j, (_, function) in enumerate(functions):
                    try:
                        values[i, j] = function(mol)
                    except Exception:
                        values[i, j] = np.nan  # counted in the report's "nonfinite"
        bad = ~np.isfinite(values) | (np.abs(values) > FLOAT32_MAX)
        values[bad] = np.nan
        counts = bad.sum(axis=0)
        nonfinite = {functions[j][0]: int(counts[j]) for j in np.flatnonzero(counts)}
        return {"values": values.astype(np.float32), "names": np.array([n for n, _ in functions])}, \
            {"nonfinite": nonfinite}

    def wrap(self, arrays: dict, report: dict) -> FeatureMatrix:
        return FeatureMatrix(arrays["values"], [str(name) for name in arrays["names"]], self.config(), report)


FEATURISERS = {"morgan": MorganFingerprint, "descriptors": RDKitDescriptors, "graph": MolGraphFeaturiser}


def make_featuriser(name: str, **settings):
    """A featuriser by name (``"morgan"``, ``"descriptors"``, ``"graph"``) with its settings."""
    check_choice("featuriser", name, FEATURISERS)
    return FEATURISERS[name](**settings)


def featuriser_from_config(config: dict):
    """Rebuild a featuriser from its ``config()`` dict (``version`` and dimension entries are checks, not settings)."""
    settings = {k: v for k, v in config.items() if k not in ("cls", "version", "atom_dim", "bond_dim")}
    featuriser = make_featuriser(config["cls"], **settings)
    if featuriser.config() != config:
        raise InvalidInputError(f"This medai builds {config['cls']!r} features as {featuriser.config()}; the saved "
                                f"configuration is {config}. Re-featurise with the current version.")
    return featuriser


def featurise(molecules, featuriser, use_cache: bool = True) -> FeatureMatrix | MolGraphSet:
    """Featurise every molecule of a table (or list of SMILES), reusing the cache when possible.

    Args:
        molecules: a :class:`~medai.chem.molecules.MoleculeTable` (its canonical SMILES and molecules), or a list
            of SMILES (each must parse; read them through :func:`~medai.chem.molecules.molecule_table` first to
            standardise and report bad ones).
        featuriser: :class:`MorganFingerprint`, :class:`RDKitDescriptors` or
            :class:`~medai.chem.graphs.MolGraphFeaturiser`, or a name for :func:`make_featuriser`.
        use_cache: read and write ``<cache dir>/chem/<name>-<hash>.npz`` keyed by SMILES, settings and RDKit version.

    Returns:
        A :class:`FeatureMatrix`, or a :class:`~medai.chem.graphs.MolGraphSet` for graphs; ``report`` holds
        ``n_molecules``, ``seconds``, ``molecules_per_second`` (of the featurisation itself) and ``from_cache``.
    """
    if isinstance(featuriser, str):
        featuriser = make_featuriser(featuriser)
    smiles, mols = _smiles_and_mols(molecules)
    key = cache.cache_key(smiles, featuriser.config(), cache.rdkit_version())
    stored = cache.load_arrays(featuriser.name, key) if use_cache else None
    if stored is not None:
        arrays, meta = stored
        return featuriser.wrap(arrays, {**meta.get("report", {}), "from_cache": True})
    start = time.perf_counter()
    arrays, extra = featuriser(mols() if callable(mols) else mols)
    seconds = time.perf_counter() - start
    report = {"n_molecules": len(smiles), "seconds": round(seconds, 4),
              "molecules_per_second": round(len(smiles) / seconds, 1) if seconds > 0 else None, **extra}
    if use_cache:
        cache.save_arrays(featuriser.name, key, arrays, {"config": featuriser.config(), "report": report})
    return featuriser.wrap(arrays, {**report, "from_cache": False})


def _smiles_and_mols(molecules):
    """(SMILES list, molecules or a function giving them) for a MoleculeTable or a list of SMILES."""
    if hasattr(molecules, "smiles") and hasattr(molecules, "mols"):
        return list(molecules.smiles), lambda: molecules.mols
    smiles = [str(text) for text in molecules]

    def parse():
        Chem, rdbase = require("rdkit.Chem", extra="chem"), require("rdkit.rdBase", extra="chem")
        with rdbase.BlockLogs():
            mols = [Chem.MolFromSmiles(text) for text in smiles]
        bad = [i for i, mol in enumerate(mols) if mol is None]
        if bad:
            raise InvalidInputError(f"{len(bad)} SMILES could not be parsed (positions {bad[:5]}, e.g. "
                                    f"{smiles[bad[0]]!r}); read them with molecule_table() to skip and report them.")
        return mols

    return smiles, parse
