"""Screening report: a table of molecules through one or more molecular-property bundles, in HTML and JSON.

Per molecule (each row of the table, standardised as every bundle does it; invalid or empty SMILES are listed with
their row and reason and skipped):

- every property of every bundle: the probability (classification) or value (regression) with its uncertainty
  (the ensemble members' spread) and the applicability-domain score (largest Tanimoto similarity to the bundle's
  training molecules) flagged below the bundle's threshold, as :func:`medai.tasks.molecule_predict.predict_molecules`
  gives them;
- structural alerts from RDKit's filter catalogues (PAINS families A, B and C, and Brenk's unwanted groups): each
  match's catalogue, name and atoms;
- for the first ``images`` molecules, each atom's contribution to each property, computed as ``medai explain``
  does (:mod:`medai.explain.molecules`: integrated gradients for ``dmpnn``, atom occlusion for fingerprint models)
  and drawn in the HTML as an inline SVG.

Examples:
    >>> from medai.chem.screen import screen
    >>> report = screen(["runs/bbbp", "runs/tox21"], "candidates.csv", images=20)  # doctest: +SKIP
    >>> report.write("report.html"), report.write("report.json")  # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

from medai.errors import InvalidInputError, require

TASK = "molecular-property"
ALERT_CATALOGS = ("PAINS_A", "PAINS_B", "PAINS_C", "BRENK")
DEFAULT_IMAGES = 50  # molecules that get atom-attribution pictures (each costs a few model calls per property)
OCCLUSION_CHUNK = 64  # molecules per occlusion call of a fingerprint model (~30 fingerprints per molecule)


@dataclass
class ScreenReport:
    """What :func:`screen` found; ``to_dict`` is the JSON document, ``to_html`` the page.

    Attributes:
        data: the name of the screened table.
        bundles: one header per bundle: name, path, network, tasks, versions, checksums, domain threshold.
        molecules: one entry per screened row: ``row``, ``input``, ``smiles``, ``predictions`` (bundle name ->
            ``{"tasks", "domain"}``), ``alerts`` and, for the first ``images`` molecules, ``attributions``
            (bundle name -> task name -> contribution per atom of ``smiles``).
        skipped: ``{"row", "input", "error", "reason"}`` per row that could not be screened.
        images: the most molecules with attribution pictures.
        created: when the report was made (UTC, ISO 8601).
    """

    data: str
    bundles: list[dict]
    molecules: list[dict]
    skipped: list[dict]
    images: int = DEFAULT_IMAGES
    created: str = field(default_factory=lambda: _now())

    def summary(self) -> dict:
        """Counts: rows read, screened, skipped, with any alert, with a PAINS alert, out of any bundle's domain."""
        out_of_domain = sum(any(not p["domain"]["in_domain"] for p in m["predictions"].values() if "domain" in p)
                            for m in self.molecules)
        return {"rows": len(self.molecules) + len(self.skipped), "screened": len(self.molecules),
                "skipped": len(self.skipped), "with_alerts": sum(bool(m["alerts"]) for m in self.molecules),
                "with_pains": sum(any(a["catalog"].startswith("PAINS") for a in m["alerts"]) for m in self.molecules),
                "out_of_domain": out_of_domain}

    def to_dict(self) -> dict:
        from medai import __version__

        return {"data": self.data, "created": self.created, "medai_version": __version__,
                "alert_catalogs": list(ALERT_CATALOGS), "images": self.images, "bundles": self.bundles,
                "summary": self.summary(), "molecules": self.molecules, "skipped": self.skipped}

    def to_html(self) -> str:
        from medai.chem.screen_html import render

        return render(self.to_dict())

    def write(self, path: str | Path) -> Path:
        """Write the report to ``path``: JSON for a ``.json`` name, else the HTML page."""
        path = Path(path)
        as_json = path.suffix.lower() == ".json"
        text = json.dumps(self.to_dict(), indent=2, allow_nan=True) if as_json else self.to_html()
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
        return path


def screen(bundles: list[str | Path], data: str | Path, smiles_column: str | None = None,
           images: int = DEFAULT_IMAGES) -> ScreenReport:
    """Predict, check and explain every molecule of ``data`` with every bundle (see the module docstring).

    Args:
        bundles: molecular-property bundle folders.
        data: a CSV/TSV/Parquet table with a SMILES column (an encrypted ``.enc`` file is read too).
        smiles_column: the SMILES column; default the first of ``smiles``, ``canonical_smiles``, ... present.
        images: attribution pictures for the first this many screened molecules (0: none).

    Returns:
        A :class:`ScreenReport` with one entry per screened row and one per skipped row.
    """
    from medai.privacy.crypto import decrypted_input
    from medai.tasks.molecule_predict import predict_molecules

    if not bundles:
        raise InvalidInputError("Give at least one molecular-property bundle to screen with.")
    if not isinstance(images, int) or images < 0:
        raise InvalidInputError(f"The 'images' parameter must be an int >= 0; got {images!r}.")
    loaded = [_load(path) for path in bundles]
    names = _unique_names(loaded)
    with decrypted_input(str(data)) as plain:
        rows = read_rows(Path(plain), smiles_column, Path(str(data)).name)
    results = [predict_molecules(bundle, rows, alerts=False) for bundle in loaded]  # alerts: once, below
    catalogs = alert_catalogs()
    molecules, skipped = [], []
    for i, row in enumerate(rows):
        per_bundle = [result[i] for result in results]
        screened = [r for r in per_bundle if "tasks" in r]
        if not screened:
            skipped.append({"row": row["row"], "input": row["input"], "error": per_bundle[0]["error"],
                            "reason": per_bundle[0]["reason"]})
            continue
        first = screened[0]
        molecules.append({
            "row": row["row"], "input": row["input"], "smiles": first["smiles"],
            "standardised": first.get("standardised", []),
            "predictions": {name: ({"tasks": r["tasks"], "domain": r["domain"]} if "tasks" in r
                                   else {"error": r["error"], "reason": r["reason"]})
                            for name, r in zip(names, per_bundle)},
            "alerts": structural_alerts(first["smiles"], catalogs)})
    _add_attributions(molecules[:images], dict(zip(names, loaded)))
    headers = [_header(name, bundle) for name, bundle in zip(names, loaded)]
    return ScreenReport(Path(str(data)).name, headers, molecules, skipped, images)


def read_rows(path: Path, smiles_column: str | None, source: str) -> list[dict]:
    """``{"source", "row", "input"}`` per data row of a molecule table (rows counted from 1)."""
    from medai.chem.molecules import SMILES_COLUMN_NAMES, find_column
    from medai.data.sources.tabular import read_frame
    from medai.errors import DataNotFoundError

    if not path.is_file():
        raise DataNotFoundError(f"No molecule table at {source!r}.")
    columns = read_frame(path, fmt="csv" if path.name.lower().endswith(".csv.gz") else None)
    if not columns or not any(len(values) for values in columns.values()):
        raise InvalidInputError(f"'{source}' holds no rows; expected a header with a SMILES column and molecules.")
    name = find_column(columns, smiles_column, SMILES_COLUMN_NAMES, "smiles_column", source)
    return [{"source": source, "row": i + 1, "input": "" if value is None else str(value)}
            for i, value in enumerate(columns[name])]


def alert_catalogs() -> dict:
    """RDKit filter catalogues by name (see ``ALERT_CATALOGS``), built once per thread (about 30 ms; the
    catalogues are not shared between threads)."""
    catalogs = getattr(_PER_THREAD, "catalogs", None)
    if catalogs is not None:
        return catalogs
    filters = require("rdkit.Chem.FilterCatalog", extra="chem")
    catalogs = {}
    for name in ALERT_CATALOGS:
        params = filters.FilterCatalogParams()
        params.AddCatalog(getattr(filters.FilterCatalogParams.FilterCatalogs, name))
        catalogs[name] = filters.FilterCatalog(params)
    _PER_THREAD.catalogs = catalogs
    return catalogs


_PER_THREAD = threading.local()


def structural_alerts(smiles: str, catalogs: dict) -> list[dict]:
    """``{"catalog", "name", "atoms"}`` per filter of ``catalogs`` that matches (atoms: indices in ``smiles``)."""
    Chem = require("rdkit.Chem", extra="chem")
    mol = Chem.MolFromSmiles(smiles)
    alerts = []
    for catalog, filters in catalogs.items():
        for entry in filters.GetMatches(mol):
            atoms = sorted({pair.target for match in entry.GetFilterMatches(mol) for pair in match.atomPairs})
            alerts.append({"catalog": catalog, "name": entry.GetDescription(), "atoms": atoms})
    return alerts


def atom_contributions(bundle, smiles: list[str]) -> list[dict[str, list[float]]]:
    """Per molecule, each atom's contribution to each task (by name), as ``medai explain`` computes it.

    Atoms are in the order of each standardised SMILES. ``dmpnn``: integrated gradients, one molecule and task at a
    time; fingerprint models: atom occlusion, every molecule, atom and task in one model call per chunk (a forest
    costs the same for one row as for thousands).
    """
    if bundle.config["network"] == "dmpnn":
        return [_integrated_gradients(bundle, s) for s in smiles]
    return [entry for begin in range(0, len(smiles), OCCLUSION_CHUNK)
            for entry in _occlusion(bundle, smiles[begin:begin + OCCLUSION_CHUNK])]


def _integrated_gradients(bundle, smiles: str) -> dict[str, list[float]]:
    from medai.explain import molecules as explain
    from medai.tasks.molecule_fit import featurise_all

    config = bundle.config
    parts = featurise_all([smiles], config["network"], config["features"], use_cache=False)
    return {name: _rounded(explain._integrated_gradients(bundle.model, config, parts, task)[0])
            for task, name in enumerate(config["task_names"])}


def _occlusion(bundle, smiles: list[str]) -> list[dict[str, list[float]]]:
    """Prediction minus the prediction without the Morgan environments rooted at the atom (as explain does)."""
    import numpy as np

    from medai.tasks.molecular_property import predictions_for
    from medai.tasks.molecule_fit import FINGERPRINT, featurise_all

    Chem = require("rdkit.Chem", extra="chem")
    generators = require("rdkit.Chem.rdFingerprintGenerator", extra="chem")
    generator = generators.GetMorganGenerator(radius=FINGERPRINT.radius, fpSize=FINGERPRINT.n_bits,
                                              includeChirality=FINGERPRINT.chirality)
    config = bundle.config
    parts = featurise_all(smiles, config["network"], config["features"], use_cache=False)
    occluded, owners = [], []  # one fingerprint per (molecule, atom); owners: the molecule of each
    for i, text in enumerate(smiles):
        mol = Chem.MolFromSmiles(text)
        n = mol.GetNumAtoms()
        for atom in range(n):
            rest = [j for j in range(n) if j != atom]  # fromAtoms=[] would mean every atom
            occluded.append(generator.GetCountFingerprintAsNumPy(mol, fromAtoms=rest) if rest
                            else np.zeros(FINGERPRINT.n_bits, np.uint32))
            owners.append(i)
    owners = np.asarray(owners)
    descriptors = parts["descriptors"]
    variants = {**parts, "fingerprints": np.concatenate([parts["fingerprints"], np.stack(occluded)]).astype(np.uint16),
                "descriptors": None if descriptors is None else np.concatenate([descriptors, descriptors[owners]])}
    predictions = predictions_for(bundle.model, config, variants)[0]  # (n_molecules + n_atoms, n_tasks)
    contributions = predictions[owners] - predictions[len(smiles):]  # (n_atoms, n_tasks)
    return [{name: _rounded(contributions[owners == i, task]) for task, name in enumerate(config["task_names"])}
            for i in range(len(smiles))]


def _rounded(values) -> list[float]:
    return [float(f"{float(v):.4g}") for v in values]  # 4 significant digits keep the JSON short


def _add_attributions(molecules: list[dict], bundles: dict) -> None:
    """Attributions of every bundle for ``molecules`` (each distinct SMILES explained once)."""
    unique = list(dict.fromkeys(m["smiles"] for m in molecules))
    for name, bundle in bundles.items():
        wanted = [s for s in unique if any(m["smiles"] == s and "tasks" in m["predictions"][name] for m in molecules)]
        found = dict(zip(wanted, atom_contributions(bundle, wanted))) if wanted else {}
        for molecule in molecules:
            if molecule["smiles"] in found:
                molecule.setdefault("attributions", {})[name] = found[molecule["smiles"]]
    for molecule in molecules:
        molecule.setdefault("attributions", {})


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _load(path):
    from medai.bundle import load_bundle

    bundle = load_bundle(path)
    if bundle.task != TASK:
        raise InvalidInputError(f"{path} is a {bundle.task} bundle; screening needs {TASK} bundles "
                                f"(made with `medai train --task {TASK}`).")
    return bundle


def _unique_names(bundles: list) -> list[str]:
    """Bundle folder names, made unique with a suffix (``model``, ``model-2``) when two folders share one."""
    names = []
    for bundle in bundles:
        base = Path(bundle.path).name
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}-{n}"
        names.append(name)
    return names


def _header(name: str, bundle) -> dict:
    config = bundle.config
    return {"name": name, "path": str(bundle.path), "network": config["network"],
            "ensemble": config.get("ensemble"), "medai_version": config.get("medai_version"),
            "format_version": config.get("format_version"), "weights_sha256": config.get("weights_sha256"),
            "domain_sha256": config["domain"].get("sha256"),
            "tasks": [{"name": n, "type": t} for n, t in zip(config["task_names"], config["task_types"])],
            "domain": {"threshold": config["domain"]["threshold"], "percentile": config["domain"]["percentile"],
                       "method": config["domain"]["method"]},
            "training_data": config.get("source", {}).get("data"),
            "training_data_sha256": config.get("source", {}).get("data_sha256"),
            "attribution": "integrated gradients on atom features" if config["network"] == "dmpnn"
            else "atom occlusion (Morgan environments removed)"}
