"""Drug-target affinity data: DeepDTA folders, (SMILES, sequence, affinity) tables, encodings, real DAVIS."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("rdkit")

from medai.chem.datasets import load_affinity_dataset
from medai.chem.dta import load_deepdta_folder, read_affinity_table
from medai.chem.report import issue_rows
from medai.chem.sequences import (
    PROTEIN_ALPHABET,
    check_protein_sequence,
    encode_proteins,
    encode_smiles_characters,
)
from medai.errors import DataNotFoundError, InvalidInputError

KIBA_FILE = "kiba_binding_affinity_v2.txt"
DAVIS_FILE = "drug-target_interaction_affinities_Kd__Davis_et_al.2011v1.txt"


def deepdta_folder(tmp_path, ligands: dict, proteins: dict, matrix: np.ndarray, matrix_file: str, folds=None):
    (tmp_path / "ligands_can.txt").write_text(json.dumps(ligands))
    (tmp_path / "proteins.txt").write_text(json.dumps(proteins))
    np.savetxt(tmp_path / matrix_file, matrix)
    if folds is not None:
        (tmp_path / "folds").mkdir()
        (tmp_path / "folds" / "train_fold_setting1.txt").write_text(json.dumps(folds[0]))
        (tmp_path / "folds" / "test_fold_setting1.txt").write_text(json.dumps(folds[1]))
    return tmp_path


def test_protein_and_smiles_encodings():
    assert check_protein_sequence(" mkvx ") == ("MKVX", "")
    for bad in ("MKJ", "MK1V", "MK V", "", None, "MK*"):
        assert check_protein_sequence(bad)[0] is None
    assert "'J'" in check_protein_sequence("MKJ")[1]
    codes, truncated = encode_proteins(["ACDY", PROTEIN_ALPHABET], max_length=6)
    assert codes.tolist()[0] == [1, 2, 3, 20, 0, 0] and codes[1].tolist() == [1, 2, 3, 4, 5, 6] and truncated == 1
    with pytest.raises(InvalidInputError, match="check_protein_sequence"):
        encode_proteins(["MKJ"])
    chars, truncated = encode_smiles_characters(["C(=O)[O-]", "Cé"], max_length=4)
    assert chars.tolist() == [[35, 8, 29, 47], [35, 95, 0, 0]] and truncated == 1
    with pytest.raises(InvalidInputError, match="max_length"):
        encode_smiles_characters(["C"], max_length=0)


def test_deepdta_folder_pairs_follow_numpy_where_order_and_davis_becomes_pkd(tmp_path):
    kd = np.array([[10.0, 1000.0, 10000.0], [1.0, 100.0, 10.0]])  # nM
    folder = deepdta_folder(tmp_path, {"d1": "CCO", "d2": "c1ccccc1O"}, {"p1": "MKV", "p2": "ACD", "p3": "mkx"},
                            kd, DAVIS_FILE, folds=([[0, 1], [2, 3]], [4, 5]))
    data = load_deepdta_folder(folder)
    assert data.affinity_name == "pKd" and (data.max_smiles_length, data.max_sequence_length) == (85, 1200)
    rows, cols = np.where(~np.isnan(kd))
    assert (data.drug_index == rows).all() and (data.protein_index == cols).all()
    assert np.allclose(data.affinity, -np.log10(kd[rows, cols] / 1e9)) and data.affinity.dtype == np.float32
    assert data.sequences[2] == "MKX" and data.split(1)["val"].tolist() == [2, 3]
    assert data.drug_codes().shape == (2, 85) and data.protein_codes(max_length=5).shape == (3, 5)
    assert np.allclose(data.affinity_matrix(), -np.log10(kd / 1e9))
    kd[0, 0] = 0.0
    np.savetxt(folder / DAVIS_FILE, kd)
    with pytest.raises(InvalidInputError, match="Kd values <= 0"):
        load_deepdta_folder(folder)


def test_deepdta_folder_skips_bad_drugs_and_proteins_and_remaps_folds(tmp_path):
    scores = np.array([[11.0, np.nan, 12.0], [13.0, 14.0, np.nan], [15.0, 16.0, 17.0]])  # KIBA layout, NaN = none
    folder = deepdta_folder(tmp_path, {"d1": "CCO", "bad": "C1CC", "d3": "CCN.Cl"},
                            {"p1": "MKV", "p2": "MK1J", "p3": "ACD"}, scores, KIBA_FILE,
                            folds=([[0, 1, 2], [3, 4]], [5, 6]))
    data = load_deepdta_folder(folder)
    # observed pairs: (0,0) (0,2) (1,0) (1,1) (2,0) (2,1) (2,2); drug "bad" and protein p2 are dropped
    assert data.drug_ids == ["d1", "d3"] and data.protein_ids == ["p1", "p3"]
    assert data.pair_numbers.tolist() == [0, 1, 4, 6] and data.affinity.tolist() == [11.0, 12.0, 15.0, 17.0]
    assert data.drug_index.tolist() == [0, 0, 1, 1] and data.protein_index.tolist() == [0, 1, 0, 1]
    assert data.canonical_smiles == ["CCO", "CCN"] and data.drug_smiles[1] == "CCN.Cl"
    issues = data.report["issues"]
    assert issues["invalid"][0]["drug"] == "bad" and issues["invalid_sequence"][0]["protein"] == "p2"
    assert issues["standardised"][0]["changes"] == ["salt_stripped"]
    assert data.folds.folds[0].tolist() == [0, 1] and data.folds.test.tolist() == [3]
    assert data.folds.report["pairs_dropped_from_folds"] == 3 and data.report["rows_kept"] == 4


def test_deepdta_folder_errors(tmp_path):
    with pytest.raises(DataNotFoundError, match="ligands_can.txt"):
        load_deepdta_folder(tmp_path)
    folder = deepdta_folder(tmp_path, {"d1": "CCO"}, {"p1": "MKV", "p2": "ACD"}, np.ones((1, 3)), KIBA_FILE)
    with pytest.raises(InvalidInputError, match=r"shape \(1, 3\); expected .* \(1, 2\)"):
        load_deepdta_folder(folder)
    (folder / KIBA_FILE).unlink()
    with pytest.raises(DataNotFoundError, match="never unpickles"):
        load_deepdta_folder(folder)
    (folder / "proteins.txt").write_text("[1, 2]")
    with pytest.raises(InvalidInputError, match="JSON object"):
        load_deepdta_folder(folder)


def test_affinity_table_reports_bad_pairs_and_averages_repeats(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("SMILES,target_sequence,pKd\nCCO,MKV,5.0\nOCC,MKV,6.0\nC1CC,MKV,7.0\nCCN,MK1B,7.5\n"
                    "CCN,ACDX,\nCCN,acdx,8.0\n,MKV,5.5\n")
    data = read_affinity_table(path)
    assert data.affinity_name == "pKd" and data.canonical_smiles == ["CCO", "CCN"]
    assert data.sequences == ["MKV", "ACDX"] and data.affinity.tolist() == [5.5, 8.0]
    assert data.pair_numbers.tolist() == [1, 6] and data.folds is None
    report = data.report
    assert issue_rows(report, "invalid") == [3] and issue_rows(report, "invalid_sequence") == [4]
    assert issue_rows(report, "missing_affinity") == [5] and issue_rows(report, "empty") == [7]
    assert report["issues"]["label_averaged"][0]["values"] == [5.0, 6.0]
    with pytest.raises(InvalidInputError, match="random_split"):
        data.split()
    json.dumps(report)


def test_affinity_table_with_text_affinity_or_no_sequence_column(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("smiles,sequence,affinity\nCCO,MKV,5.0\nCCN,MKV,strong\n")
    with pytest.raises(InvalidInputError, match="'affinity'.*rows 2.*'strong'"):
        read_affinity_table(path)
    path.write_text("smiles,chain,affinity\nCCO,MKV,5.0\n")
    with pytest.raises(InvalidInputError, match="no sequence column"):
        read_affinity_table(path)


@pytest.mark.realdata
def test_real_davis_matrix_folds_and_deepdta_index_convention(real_data_dir):
    data = load_affinity_dataset("davis")
    assert len(data.drug_ids) == 68 and len(data.protein_ids) == 442 and len(data) == 68 * 442 == 30056
    assert data.report["rows_kept"] == 30056 and data.folds.report["folds"] == [5010, 5009, 5009, 5009, 5009]
    assert len(data.folds.test) == 5010 and data.folds.report["unused_pairs"] == 0
    parts = data.split(0)
    assert (len(parts["train"]), len(parts["val"]), len(parts["test"])) == (20036, 5010, 5010)
    kd = np.loadtxt(real_data_dir / "dta_davis" / DAVIS_FILE)
    rows, cols = np.where(np.isnan(kd) == False)
    test = json.loads((real_data_dir / "dta_davis" / "folds" / "test_fold_setting1.txt").read_text())
    assert (data.drug_index[test] == rows[test]).all() and (data.protein_index[test] == cols[test]).all()
    assert np.allclose(data.affinity[test], -np.log10(kd[rows[test], cols[test]] / 1e9), atol=1e-5)
    assert data.affinity.min() == pytest.approx(5.0) and data.affinity.max() == pytest.approx(10.8, abs=0.01)
    assert data.drug_codes().shape == (68, 85) and data.protein_codes().shape == (442, 1200)
