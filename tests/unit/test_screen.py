"""Pieces of the screening report that need no model: structural alerts, the atom pictures, the page."""

from __future__ import annotations

import pytest

Chem = pytest.importorskip("rdkit.Chem")

from medai.chem.screen import ALERT_CATALOGS, ScreenReport, alert_catalogs, read_rows, structural_alerts  # noqa: E402
from medai.chem.screen_html import contribution_svg  # noqa: E402
from medai.errors import DataNotFoundError, InvalidInputError  # noqa: E402


@pytest.fixture(scope="module")
def catalogs():
    return alert_catalogs()


@pytest.mark.parametrize(("smiles", "catalog", "name"), [
    ("O=C1C(=Cc2ccccc2)SC(=S)N1", "PAINS_A", "ene_rhod_A(235)"),  # benzylidene rhodanine
    ("O=C1C=CC(=O)C=C1", "PAINS_A", "quinone_A(370)"),
    ("Oc1ccccc1O", "PAINS_B", "catechol_A(92)"),
    ("Nc1ccccc1", "BRENK", "aniline"),
])
def test_known_alerts_are_found_with_their_atoms(catalogs, smiles, catalog, name):
    alerts = structural_alerts(smiles, catalogs)
    match = next(a for a in alerts if (a["catalog"], a["name"]) == (catalog, name))
    n_atoms = Chem.MolFromSmiles(smiles).GetNumAtoms()
    assert match["atoms"] and all(0 <= i < n_atoms for i in match["atoms"])


def test_a_plain_molecule_raises_no_alert(catalogs):
    assert set(catalogs) == set(ALERT_CATALOGS)
    assert structural_alerts("CCO", catalogs) == [] and structural_alerts("CC(=O)Nc1ccc(O)cc1", catalogs) != []


@pytest.mark.parametrize(("smiles", "weights"), [("Oc1ccccc1O", [0.5, -0.2, 0, 0, 0, 0, 0.1, 0.0]),
                                                 ("C", [0.0]), ("CCO", [0.0, 0.0, 0.0])])
def test_contribution_pictures_are_inline_svg(smiles, weights):
    svg = contribution_svg(smiles, weights)
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>") and "<?xml" not in svg
    assert len(svg) < 40_000  # dozens of pictures fit one page


def test_rows_are_counted_from_one_and_bad_tables_named(tmp_path):
    table = tmp_path / "m.csv"
    table.write_text("name,SMILES\na,CCO\nb,\n")
    assert [(r["row"], r["input"]) for r in read_rows(table, None, "m.csv")] == [(1, "CCO"), (2, "")]
    with pytest.raises(InvalidInputError, match="'smile', which is not a column of 'm.csv'"):
        read_rows(table, "smile", "m.csv")
    with pytest.raises(DataNotFoundError, match="gone.csv"):
        read_rows(tmp_path / "gone.csv", None, "gone.csv")


def test_a_report_of_only_skipped_rows_still_renders(tmp_path):
    header = {"name": "m", "path": "runs/m", "network": "dmpnn", "ensemble": 2, "medai_version": "0",
              "format_version": 1, "weights_sha256": "ab" * 32, "domain_sha256": "cd" * 32,
              "tasks": [{"name": "p", "type": "classification"}],
              "domain": {"threshold": 0.3, "percentile": 5.0, "method": "max Tanimoto"}, "training_data": "t.csv",
              "training_data_sha256": None, "attribution": "integrated gradients"}
    report = ScreenReport("x.csv", [header], [], [{"row": 1, "input": "C1CC<b>", "error": "invalid", "reason": "ring"}])
    assert report.summary() == {"rows": 1, "screened": 0, "skipped": 1, "with_alerts": 0, "with_pains": 0,
                                "out_of_domain": 0}
    page = report.write(tmp_path / "r.html").read_text()
    assert "C1CC&lt;b&gt;" in page and "<b>" not in page.split("Skipped rows")[1]
    assert report.write(tmp_path / "r.json").read_text().startswith("{")
