"""``medai screen`` on tiny bundles trained in the test; also ``medai train``'s ``--task`` help and DTA columns."""

from __future__ import annotations

import csv
import json
import re

import pytest
import typer
from typer.testing import CliRunner

from medai.cli.main import app
from tests.molecules import write_molecules

Chem = pytest.importorskip("rdkit.Chem")
runner = CliRunner()
RHODANINE = "O=C1C(=Cc2ccccc2)SC(=S)N1"  # PAINS A ene_rhod_A; Brenk Michael acceptor, thiocarbonyl
CATECHOL = "Oc1ccccc1O"  # PAINS B catechol_A; Brenk catechol
EXTRA = [{"smiles": "not a molecule"}, {"smiles": RHODANINE}, {"smiles": CATECHOL}, {"smiles": "CC(=O)[O-].[Na+]"},
         {"smiles": ""}]  # rows 7 to 11 after six synthetic molecules


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """A D-MPNN ensemble on both tasks (integrated gradients) and a fingerprint MLP on one (atom occlusion)."""
    folder = tmp_path_factory.mktemp("screen")
    data = write_molecules(folder / "train.csv", n=60)
    common = ["train", "--task", "molecular-property", "--data", str(data), "--epochs", "2", "--features", "none",
              "--quiet"]
    runs = {"graph": ["--target", "has_nitrogen", "--target", "size", "--model", "dmpnn", "--ensemble", "2"],
            "fingerprints": ["--target", "has_nitrogen", "--model", "fingerprint_mlp", "--ensemble", "1"]}
    for name, options in runs.items():
        result = runner.invoke(app, [*common, *options, "--out", str(folder / name)])
        assert result.exit_code == 0, result.output
    screen = write_molecules(folder / "screen.csv", n=6, seed=3, with_labels=False, extra_rows=EXTRA)
    return folder, [folder / "graph", folder / "fingerprints"], screen


def test_screen_writes_a_self_contained_page_and_the_json_document(bundles, tmp_path):
    _, paths, screen = bundles
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["screen", *map(str, paths), "--data", str(screen), "--out", str(out), "--images", "3",
                                 "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"data", "created", "medai_version", "alert_catalogs", "images", "bundles", "summary", "molecules",
            "skipped"} <= set(report)
    summary = report["summary"]
    assert (summary["rows"], summary["screened"], summary["skipped"], summary["with_pains"]) == (11, 9, 2, 2)
    assert [(s["row"], s["error"]) for s in report["skipped"]] == [(7, "invalid"), (11, "empty")]
    assert all(s["reason"] for s in report["skipped"])
    header = {b["name"]: b for b in report["bundles"]}
    assert set(header) == {"graph", "fingerprints"} and len(header["graph"]["weights_sha256"]) == 64
    assert 0 <= header["graph"]["domain"]["threshold"] <= 1
    molecules = {m["row"]: m for m in report["molecules"]}
    for molecule in molecules.values():
        graph, fingerprints = molecule["predictions"]["graph"], molecule["predictions"]["fingerprints"]
        assert {"probability", "uncertainty"} <= set(graph["tasks"]["has_nitrogen"])
        assert {"value", "uncertainty"} <= set(graph["tasks"]["size"])
        assert set(fingerprints["tasks"]) == {"has_nitrogen"}
        assert {"score", "threshold", "in_domain"} <= set(graph["domain"])
    alerts = {row: {(a["catalog"], a["name"]) for a in molecules[row]["alerts"]} for row in (8, 9)}
    assert ("PAINS_A", "ene_rhod_A(235)") in alerts[8] and ("PAINS_B", "catechol_A(92)") in alerts[9]
    assert ("BRENK", "catechol") in alerts[9] and not molecules[1]["alerts"]
    assert molecules[10]["smiles"] == "CC(=O)O" and molecules[10]["standardised"]  # the salt, stripped
    assert not molecules[8]["predictions"]["graph"]["domain"]["in_domain"]  # nothing like it in training
    explained = [m for m in report["molecules"] if "attributions" in m]
    assert [m["row"] for m in explained] == [1, 2, 3]
    first = explained[0]
    assert set(first["attributions"]) == {"graph", "fingerprints"}
    n_atoms = Chem.MolFromSmiles(first["smiles"]).GetNumAtoms()
    assert all(len(first["attributions"]["graph"][task]) == n_atoms for task in ("has_nitrogen", "size"))
    page = out.read_text()
    assert page.count("<svg") == 3 * 3 and "<?xml" not in page  # 3 molecules x 3 properties, inline
    assert "ene_rhod_A(235)" in page and "Skipped rows (2)" in page and "not a molecule" in page
    assert header["graph"]["weights_sha256"][:16] in page and f"{header['graph']['domain']['threshold']:.3f}" in page
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)  # nothing fetched from elsewhere


def test_pictures_show_the_contributions_medai_explain_gives(bundles, tmp_path):
    from medai.chem.screen import screen

    _, paths, screen_csv = bundles
    report = screen(paths, screen_csv, images=2)
    for molecule in report.molecules[:2]:
        for path in paths:
            result = runner.invoke(app, ["explain", str(path), "--smiles", molecule["smiles"], "--target",
                                         "has_nitrogen", "--out", str(tmp_path / "atoms.png"), "--json"])
            assert result.exit_code == 0, result.output
            expected = [atom["contribution"] for atom in json.loads(result.stdout)["atoms"]]
            assert molecule["attributions"][path.name]["has_nitrogen"] == pytest.approx(expected, rel=1e-3, abs=1e-7)


def test_screen_to_a_json_file_with_a_text_summary(bundles, tmp_path):
    _, paths, screen = bundles
    out = tmp_path / "report.json"
    result = runner.invoke(app, ["screen", str(paths[1]), "--data", str(screen), "--out", str(out), "--images", "0",
                                 "--smiles-column", "smiles"])
    assert result.exit_code == 0, result.output
    assert "screened 9 of 11 rows with 1 model(s)" in result.output and "skipped row 7: invalid" in result.output
    report = json.loads(out.read_text())
    assert len(report["molecules"]) == 9 and not any("attributions" in m for m in report["molecules"])


def test_screen_bad_input_gets_clear_messages(bundles, tmp_path):
    folder, paths, screen = bundles
    base = ["screen", str(paths[0]), "--data", str(screen)]
    result = runner.invoke(app, base)
    assert result.exit_code == 2 and "--out" in result.output
    result = runner.invoke(app, [*base, "--json", "--smiles-column", "smile"])
    assert result.exit_code == 2 and "Did you mean 'smiles'" in result.output
    result = runner.invoke(app, ["screen", str(paths[0]), "--data", str(tmp_path / "missing.csv"), "--json"])
    assert result.exit_code == 2 and "missing.csv" in result.output
    result = runner.invoke(app, ["screen", str(folder), "--data", str(screen), "--json"])  # not a bundle
    assert result.exit_code == 2 and "Traceback" not in result.output
    result = runner.invoke(app, [*base, "--json", "--images", "-1"])
    assert result.exit_code == 2 and "'images'" in result.output


# -- train: the --task help follows the task registry; drug-target affinity takes --sequence-column ---------------


def test_task_help_lists_every_registered_task():
    from medai.tasks import TASKS

    train = typer.main.get_command(app).commands["train"]
    help_text = next(p.help for p in train.params if p.name == "task")
    assert all(name in help_text for name in TASKS)


def test_drug_target_affinity_takes_a_sequence_column(tmp_path):
    data = tmp_path / "pairs.csv"
    drugs, chains = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "CCN(CC)CC"], ["MKTAYIAKQRQISFVKSHFSRQ", "GSHMLEDPVDAFQ"]
    with open(data, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ligand", "chain", "pkd"])
        for i, drug in enumerate(drugs * 3):
            writer.writerow([drug, chains[i % 2] + "A" * (i % 5), 5 + 0.1 * i])
    base = ["train", "--task", "drug-target-affinity", "--data", str(data), "--smiles-column", "ligand",
            "--target", "pkd", "--epochs", "1", "--quiet"]
    result = runner.invoke(app, [*base, "--sequence-column", "chian", "--out", str(tmp_path / "a")])
    assert result.exit_code == 2 and "Did you mean 'chain'" in result.output
    result = runner.invoke(app, [*base, "--sequence-column", "chain", "--out", str(tmp_path / "b"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "b" / "config.json").read_text())["settings"]["sequence_column"] == "chain"
    result = runner.invoke(app, ["train", "--task", "molecular-property", "--data", str(data), "--sequence-column",
                                 "chain", "--out", str(tmp_path / "c")])
    assert result.exit_code == 2 and "sequence_column" in result.output
