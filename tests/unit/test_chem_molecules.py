"""Molecule tables: SMILES standardisation, every malformed-input case, duplicates, labels, cache, real MoleculeNet."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("rdkit")

from medai.chem import molecules as molecules_module
from medai.chem.datasets import load_molecule_dataset
from medai.chem.molecules import molecule_table, read_molecule_table
from medai.chem.report import issue_rows
from medai.chem.standardise import StandardiseOptions, standardise_smiles
from medai.errors import DataNotFoundError, InvalidInputError


def write(tmp_path, text: str, name: str = "mols.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------ one SMILES at a time


@pytest.mark.parametrize("smiles, canonical, changes", [
    ("OCC", "CCO", ()),
    ("[Na+].[O-]C(=O)c1ccccc1", "O=C(O)c1ccccc1", ("salt_stripped", "neutralised")),
    ("c1ccccc1.Cl", "c1ccccc1", ("salt_stripped",)),
    ("[NH3+]CC(=O)[O-]", "NCC(=O)O", ("neutralised",)),
    ("CN(=O)=O", "C[N+](=O)[O-]", ("sanitisation_normalised",)),
    ("Cc1ccnc1", "Cc1cc[nH]c1", ("kekulisation_fixed",)),
    ("CN(C)(C)C", "C[N+](C)(C)C", ("valence_fixed",)),
    ("CC(=O)O[Na]", "CC(=O)O", ("metal_disconnected", "salt_stripped", "neutralised")),
    ("CC(=O)O[AlH3](O)O", "CC(=O)O", ("metal_disconnected", "valence_fixed", "salt_stripped", "neutralised")),
])
def test_standardise_reports_each_change(smiles, canonical, changes):
    result = standardise_smiles(smiles)
    assert result.status == "ok" and result.canonical == canonical and result.changes == changes
    assert result.mol is not None and result.mol.GetNumHeavyAtoms() == result.heavy_atoms


@pytest.mark.parametrize("smiles, status, reason", [
    ("", "empty", "no smiles"), (None, "empty", "no smiles"), ("   ", "empty", "no smiles"),
    ("C1CC", "invalid", "syntax"), ("xyz", "invalid", "syntax"),
    ("C(C)(C)(C)(C)C", "invalid", "valence"), ("c1cccc1", "invalid", "kekulize"),
    ("[H][H]", "invalid", "no heavy atoms"),
])
def test_standardise_rejects_with_a_reason(smiles, status, reason):
    result = standardise_smiles(smiles)
    assert result.status == status and result.canonical is None and reason in result.reason.lower()


def test_fixes_can_be_switched_off_and_inorganics_are_kept_whole():
    assert standardise_smiles("Cc1ccnc1", StandardiseOptions(fix_invalid=False)).status == "invalid"
    kept = standardise_smiles("[Na+].[O-]C(=O)C", StandardiseOptions(largest_fragment=False, neutralise=False))
    assert kept.canonical == "CC(=O)[O-].[Na+]" and kept.changes == ()
    salt = standardise_smiles("[Na+].[Cl-]")  # no carbon: nothing to pick, kept as written
    assert salt.status == "ok" and salt.canonical == "[Cl-].[Na+]" and not salt.organic
    assert standardise_smiles("Cl[Pt]Cl.N.N").canonical == "N.N.[Cl][Pt][Cl]"  # cisplatin, not ammonia
    with pytest.raises(InvalidInputError, match="max_heavy_atoms"):
        StandardiseOptions(max_heavy_atoms=0)


def test_neutralising_never_leaves_an_unparseable_ring():
    result = standardise_smiles("[Fe+2].c1cc[cH-]c1.c1cc[cH-]c1")  # ferrocene: uncharging the anion breaks it
    assert result.status == "ok" and result.canonical == "c1cc[cH-]c1" and "neutralised" not in result.changes


# ----------------------------------------------------------------------------------------------------- tables


def test_every_malformed_row_is_reported_by_row_and_skipped():
    smiles = ["CCO", "", "C1CC", "[Na+].[O-]C(=O)C", "C" * 30, "Cc1ccnc1", "[Na+].[Cl-]", None]
    table = molecule_table(smiles, labels=np.arange(8.0), options=StandardiseOptions(max_heavy_atoms=20))
    report = table.report
    assert issue_rows(report, "empty") == [2, 8] and issue_rows(report, "invalid") == [3]
    assert issue_rows(report, "too_large") == [5] and "30 heavy atoms" in report["issues"]["too_large"][0]["reason"]
    assert issue_rows(report, "standardised") == [4, 6] and issue_rows(report, "no_organic_fragment") == [7]
    assert report["issues"]["standardised"][1]["changes"] == ["kekulisation_fixed"]
    assert table.row_numbers.tolist() == [1, 4, 6, 7] and table.labels[:, 0].tolist() == [0.0, 3.0, 5.0, 6.0]
    assert table.input_smiles[1] == "[Na+].[O-]C(=O)C" and table.smiles[1] == "CC(=O)O"
    assert report["rows_read"] == 8 and report["rows_kept"] == 4
    json.dumps(report)


def test_duplicates_merge_agreeing_conflicting_and_regression_labels():
    smiles = ["CCO", "OCC", "CCN", "NCC", "CCCl", "ClCC", "c1ccccc1"]
    labels = {"active": [1, 1, 1, 0, 0, None, 1], "logS": [1.0, 2.0, 3.0, 3.0, None, 5.0, 0.5]}
    table = molecule_table(smiles, labels=labels)
    assert table.smiles == ["CCO", "CCN", "CCCl", "c1ccccc1"] and table.task_types == ("classification", "regression")
    assert table.labels[:, 0].tolist()[:3] == [1.0, pytest.approx(np.nan, nan_ok=True), 0.0]
    assert table.labels[:, 1].tolist() == [1.5, 3.0, 5.0, 0.5]
    issues = table.report["issues"]
    assert [entry["rows"] for entry in issues["duplicate"]] == [[1, 2], [3, 4], [5, 6]]
    assert issues["label_conflict"] == [{"rows": [3, 4], "task": "active", "values": [1.0, 0.0],
                                         "resolution": "label set to missing"}]
    assert issues["label_averaged"] == [{"rows": [1, 2], "task": "logS", "values": [1.0, 2.0], "mean": 1.5}]
    assert table.report["tasks"]["active"] == {"type": "classification", "labelled": 3, "missing": 1, "positives": 2}


def test_multitask_csv_gives_nan_matrix_and_autodetects_columns(tmp_path):
    path = write(tmp_path, "name,SMILES,NR-AR,SR-p53,logP\nethanol,CCO,0,,0.5\nphenol,c1ccccc1O,1,0,1.5\n"
                           "amine,CCN,,1,2.5\n")
    table = read_molecule_table(path)
    assert table.task_names == ("NR-AR", "SR-p53", "logP")
    assert table.task_types == ("classification", "classification", "regression")
    assert table.labels.dtype == np.float32 and table.labels.shape == (3, 3)
    assert np.isnan(table.labels).tolist() == [[False, True, False], [False, False, False], [True, False, False]]
    assert any("'name'" in note and "text only" in note for note in table.report["notes"])
    assert len(table.mols) == 3 and table.mols[1].GetNumAtoms() == 7


def test_text_in_a_label_column_names_column_rows_and_values(tmp_path):
    path = write(tmp_path, "smiles,activity\nCCO,1\nCCN,active\nCCC,0\nCCCC,inactive\n")
    with pytest.raises(InvalidInputError, match=r"'activity'.*rows 2, 4.*'active', 'inactive'"):
        read_molecule_table(path)
    with pytest.raises(InvalidInputError, match="'activity'.*text"):
        read_molecule_table(path, targets=["activity"])
    with pytest.raises(InvalidInputError, match="infinity"):
        molecule_table(["CCO"], labels=[np.inf])


def test_bad_columns_and_missing_files_are_named(tmp_path):
    path = write(tmp_path, "compound_id,structure_text,y\na,CCO,1\n")
    with pytest.raises(InvalidInputError, match="no smiles column.*smiles_column"):
        read_molecule_table(path)
    good = write(tmp_path, "smiles,p_np\nCCO,1\n", "good.csv")
    with pytest.raises(InvalidInputError, match="Did you mean 'p_np'"):
        read_molecule_table(good, targets=["p_pn"])
    with pytest.raises(InvalidInputError, match="Did you mean 'smiles'"):
        read_molecule_table(good, smiles_column="smile")
    with pytest.raises(DataNotFoundError):
        read_molecule_table(tmp_path / "absent.csv")
    with pytest.raises(InvalidInputError, match="one per SMILES"):
        molecule_table(["CCO", "CCN"], labels=[1])


def test_standardisation_results_are_cached_and_reused(tmp_path, monkeypatch):
    path = write(tmp_path, "smiles,y\nCCO,1\n[Na+].[O-]C(=O)C,0\nC1CC,1\n")
    first = read_molecule_table(path)

    def fail(*args, **kwargs):
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(molecules_module.Standardiser, "many", fail)
    second = read_molecule_table(path)
    assert second.smiles == first.smiles and second.report["issues"] == first.report["issues"]
    assert second._mols is None and [m.GetNumAtoms() for m in second.mols] == [3, 4]
    subset = second.subset([1])
    assert subset.smiles == ["CC(=O)O"] and subset.row_numbers.tolist() == [2]


# ------------------------------------------------------------------------------------------------- real data


@pytest.mark.realdata
def test_real_bbbp_and_esol(real_data_dir):
    bbbp = load_molecule_dataset("bbbp")
    assert bbbp.report["rows_read"] == 2039 and 1900 < len(bbbp) <= 2039
    assert bbbp.task_names == ("p_np",) and bbbp.task_types == ("classification",)
    assert bbbp.report["counts"]["duplicate"] > 0 and "standardised" in bbbp.report["counts"]
    esol = load_molecule_dataset("esol")
    assert esol.task_names == ("log_solubility",) and esol.task_types == ("regression",)
    assert esol.report["rows_read"] == 1128 and abs(esol.report["tasks"]["log_solubility"]["mean"] + 3.05) < 0.1


@pytest.mark.realdata
def test_real_tox21_and_clintox_are_multitask_with_missing_labels(real_data_dir):
    tox21 = load_molecule_dataset("tox21")
    assert tox21.report["rows_read"] == 7831 and tox21.labels.shape == (len(tox21), 12) and len(tox21) > 7400
    assert set(tox21.task_types) == {"classification"} and tox21.task_names[0] == "NR-AR"
    missing = np.isnan(tox21.labels).mean()
    assert 0.1 < missing < 0.3 and set(np.unique(tox21.labels[~np.isnan(tox21.labels)])) == {0.0, 1.0}
    clintox = load_molecule_dataset("clintox")
    assert clintox.task_names == ("FDA_APPROVED", "CT_TOX") and clintox.report["rows_read"] == 1478
    json.dumps(clintox.report)
