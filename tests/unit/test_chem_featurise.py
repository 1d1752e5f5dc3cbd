"""Featurisers: Morgan bits and counts, RDKit descriptors (non-finite values), molecular graphs, the .npz cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("rdkit")

from medai import settings
from medai.chem import featurise as featurise_module
from medai.chem.featurise import (
    MorganFingerprint,
    RDKitDescriptors,
    featurise,
    featuriser_from_config,
    make_featuriser,
)
from medai.chem.graphs import (
    AROMATIC_COLUMN,
    ATOM_BLOCKS,
    ATOM_FEATURE_DIM,
    BOND_FEATURE_DIM,
    MolGraphFeaturiser,
)
from medai.chem.molecules import molecule_table
from medai.errors import InvalidInputError

SMILES = ["CCO", "c1ccccc1O", "C#N", "C", "C[C@H](N)C(=O)O", "O=C(O)c1ccccc1"]


def test_morgan_bits_and_counts():
    bits = featurise(SMILES, MorganFingerprint(n_bits=256), use_cache=False)
    counts = featurise(SMILES, MorganFingerprint(n_bits=256, counts=True), use_cache=False)
    assert bits.values.shape == (6, 256) and bits.values.dtype == np.uint8 and set(np.unique(bits.values)) <= {0, 1}
    assert counts.values.dtype == np.uint16 and ((counts.values > 0) == (bits.values > 0)).all()
    assert counts.values.sum() > bits.values.sum() and bits.names[0] == "morgan_bit_0"
    assert bits.report["n_molecules"] == 6 and bits.report["molecules_per_second"] > 0
    assert not bits.report["from_cache"]
    with pytest.raises(InvalidInputError, match="'n_bits'.*>= 1"):
        MorganFingerprint(n_bits=0)


def test_descriptors_named_subset_and_unknown_name():
    features = featurise(SMILES, RDKitDescriptors(["MolWt", "NumHDonors", "TPSA"]), use_cache=False)
    assert features.values.shape == (6, 3) and features.values.dtype == np.float32
    assert features.names == ["MolWt", "NumHDonors", "TPSA"]
    assert features.values[0, 0] == pytest.approx(46.069, abs=1e-3) and features.values[0, 1] == 1
    with pytest.raises(InvalidInputError, match="Did you mean 'MolWt'"):
        RDKitDescriptors(["MolWeight"])([])


def test_descriptor_failures_and_infinities_become_nan_and_are_counted(monkeypatch):
    def boom(mol):
        raise ValueError("RDKit failure")

    functions = [("finite", lambda mol: 1.0), ("infinite", lambda mol: float("inf")), ("failing", boom),
                 ("overflow", lambda mol: 1e300)]
    monkeypatch.setattr(RDKitDescriptors, "_functions", lambda self: functions)
    features = featurise(SMILES[:2], RDKitDescriptors(), use_cache=False)
    assert features.values[:, 0].tolist() == [1.0, 1.0] and np.isnan(features.values[:, 1:]).all()
    assert features.report["nonfinite"] == {"infinite": 2, "failing": 2, "overflow": 2}


def test_all_descriptors_are_computed_for_a_table():
    table = molecule_table(SMILES[:2])
    features = featurise(table, "descriptors", use_cache=False)
    assert features.values.shape[0] == 2 and features.values.shape[1] > 150 and "qed" in features.names


def test_graph_shapes_directions_and_one_hot_blocks():
    graphs = featurise(SMILES, MolGraphFeaturiser(), use_cache=False)
    assert len(graphs) == 6 and graphs.report["molecules_per_second"] > 0
    batch = graphs.batch([1, 0, 3])  # phenol, ethanol, methane
    assert batch.atom_features.shape == (7 + 3 + 1, ATOM_FEATURE_DIM) == (11, 72)
    assert batch.edge_features.shape == (2 * (7 + 2), BOND_FEATURE_DIM) == (18, 14)
    assert batch.batch.tolist() == [0] * 7 + [1] * 3 + [2] and batch.n_molecules == 3
    source, target = batch.edge_index
    rev = batch.rev_edge_index
    assert (source[rev] == target).all() and (target[rev] == source).all() and (rev[rev] == np.arange(18)).all()
    assert (batch.batch[source] == batch.batch[target]).all()  # no edge between molecules
    assert (batch.edge_features[rev] == batch.edge_features).all()
    one_hot = batch.atom_features[:, :AROMATIC_COLUMN]
    assert (one_hot.sum(axis=1) == len(ATOM_BLOCKS)).all()  # one slot per block
    assert batch.atom_features[:6, AROMATIC_COLUMN].tolist() == [1.0] * 6  # phenol ring carbons
    assert batch.atom_features[10, -1] == pytest.approx(0.12011, abs=1e-4)  # methane carbon mass / 100
    assert batch.edge_features[:, 3].sum() == 12  # six aromatic bonds, both directions


def test_graph_batch_matches_single_molecules_and_feeds_torch():
    import torch

    graphs = MolGraphFeaturiser().featurise_mols(molecule_table(SMILES).mols)
    together = graphs.batch([4, 2])
    alone = [graphs.batch([4]), graphs.batch([2])]
    assert (together.atom_features == np.concatenate([g.atom_features for g in alone])).all()
    assert (together.edge_index[:, 10:] == alone[1].edge_index + 6).all()  # alanine has 6 atoms, 5 bonds
    tensors = together.tensors()
    assert tensors["atom_features"].dtype == torch.float32 and tensors["edge_index"].dtype == torch.int64
    hidden = torch.cat([tensors["atom_features"][tensors["edge_index"][0]], tensors["edge_features"]], dim=1)
    messages = torch.zeros(len(tensors["atom_features"]), hidden.shape[1]).index_add_(0, tensors["edge_index"][1],
                                                                                     hidden)
    step = messages[tensors["edge_index"][0]] - hidden[tensors["rev_edge_index"]]  # one D-MPNN update
    assert step.shape == (together.edge_index.shape[1], ATOM_FEATURE_DIM + BOND_FEATURE_DIM)
    assert graphs.batch([]).atom_features.shape == (0, 72)
    with pytest.raises(InvalidInputError, match=r"\[0, 5\]"):
        graphs.batch([6])


def test_features_are_cached_as_npz_and_json_without_pickle():
    first = featurise(SMILES, "graph")
    second = featurise(SMILES, "graph")
    assert not first.report["from_cache"] and second.report["from_cache"]
    assert all((a == b).all() for a, b in zip(first.arrays().values(), second.arrays().values()))
    files = sorted(path.suffix for path in (settings.cache_dir() / "chem").iterdir())
    assert files == [".json", ".npz"]
    for path in (settings.cache_dir() / "chem").glob("*.npz"):
        np.load(path, allow_pickle=False).close()
    meta = json.loads(next((settings.cache_dir() / "chem").glob("*.json")).read_text())
    assert meta["config"]["cls"] == "graph" and meta["report"]["n_molecules"] == 6
    other = featurise(SMILES, MorganFingerprint(n_bits=64))
    assert not other.report["from_cache"]  # another featuriser, another key


def test_featurise_rejects_unparseable_smiles_and_rebuilds_from_config():
    with pytest.raises(InvalidInputError, match="could not be parsed.*molecule_table"):
        featurise(["CCO", "C1CC"], "morgan", use_cache=False)
    with pytest.raises(InvalidInputError, match="Did you mean 'morgan'"):
        make_featuriser("morgen")
    rebuilt = featuriser_from_config(MorganFingerprint(radius=3, counts=True).config())
    assert (rebuilt.radius, rebuilt.counts) == (3, True)
    assert featuriser_from_config(MolGraphFeaturiser().config()).name == "graph"
    with pytest.raises(InvalidInputError, match="Re-featurise"):
        featuriser_from_config({**MolGraphFeaturiser().config(), "version": 0})
    assert featurise_module.FEATURISERS.keys() == {"morgan", "descriptors", "graph"}
