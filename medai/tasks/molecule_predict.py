"""Predictions of a molecular-property bundle for new molecules, one result per input row.

Every SMILES goes through the bundle's standardisation (salts stripped, charges neutralised, ...). A row whose
SMILES is empty, unparseable or too large gets ``{"row", "input", "error"}``; every other row is predicted, so a
few bad lines never stop a file. Duplicate molecules are featurised once but reported on every row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medai.chem.domain import ApplicabilityDomain
from medai.errors import BundleIntegrityError, DataNotFoundError, InvalidInputError

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".gz", ".txt", ".smi")


def rows_of(config: dict, inputs: list, smiles: list[str]) -> list[dict]:
    """Input rows ``{"source", "row", "input"}`` from table files and SMILES strings.

    An input that is an existing file is read as a table (rows counted from 1); a :class:`~pathlib.Path` or a
    name ending like a table file that does not exist is an error; any other string is a SMILES.
    """
    rows = []
    for item in [*inputs, *smiles]:
        path = Path(str(item)).expanduser()
        if path.is_file():
            rows.extend(_table_rows(config, path))
        elif (isinstance(item, Path) and path.suffix.lower() in TABLE_SUFFIXES) or (
                isinstance(item, str) and item.lower().endswith(TABLE_SUFFIXES)):
            raise DataNotFoundError(f"No molecule table at {str(item)!r}.")
        else:
            rows.append({"source": "<smiles>", "row": None, "input": str(item)})
    if not rows:
        raise InvalidInputError("Give molecules to predict: a table file (--data FILE) or SMILES (--smiles S).")
    return rows


def _table_rows(config: dict, path: Path) -> list[dict]:
    from medai.chem.molecules import SMILES_COLUMN_NAMES, find_column
    from medai.data.sources.tabular import read_frame

    columns = read_frame(path, fmt="csv" if path.name.lower().endswith(".csv.gz") else None)
    if not columns:
        raise InvalidInputError(f"'{path.name}' holds no rows; expected a header with a SMILES column.")
    given = config.get("smiles_column")
    name = find_column(columns, given if given in columns else None, SMILES_COLUMN_NAMES, "smiles_column", path.name)
    return [{"source": path.name, "row": i + 1, "input": "" if value is None else str(value)}
            for i, value in enumerate(columns[name])]


def predict_molecules(bundle, rows: list[dict], alerts: bool = True) -> list[dict]:
    """Standardise, featurise and predict every row (see the module docstring); with ``alerts``, each predicted
    row lists its structural alerts (``{"catalog", "name", "atoms"}``, see :mod:`medai.chem.screen`)."""
    from medai.chem.molecules import standardise_all
    from medai.chem.standardise import StandardiseOptions
    from medai.tasks.molecular_property import predictions_for
    from medai.tasks.molecule_fit import featurise_all

    config = bundle.config
    options = StandardiseOptions(**config.get("source", {}).get("load_report", {}).get("standardise_options", {}))
    results = standardise_all([row["input"] for row in rows], options, use_cache=False)
    canonical = sorted({r.canonical for r in results if r.status == "ok"})
    position = {smiles: i for i, smiles in enumerate(canonical)}
    out, found_alerts = [], {}
    if alerts and canonical:
        from medai.chem.screen import alert_catalogs, structural_alerts

        catalogs = alert_catalogs()  # built once per thread
    if canonical:
        parts = featurise_all(canonical, config["network"], config["features"], use_cache=False)
        means, spreads = predictions_for(bundle.model, config, parts)
        scores, flags = load_domain(bundle).flag(parts["fingerprints"])
    for row, result in zip(rows, results):
        entry = {"source": row["source"], "row": row["row"], "input": row["input"]}
        if result.status != "ok":
            out.append({**entry, "error": result.status, "reason": result.reason or result.status})
            continue
        i = position[result.canonical]
        entry |= {"smiles": result.canonical, "tasks": _task_entries(config, means[i], spreads[i]),
                  "domain": {"score": float(scores[i]), "threshold": config["domain"]["threshold"],
                             "in_domain": not bool(flags[i])}}
        if result.changes:
            entry["standardised"] = list(result.changes)
        if alerts:
            if result.canonical not in found_alerts:
                found_alerts[result.canonical] = structural_alerts(result.canonical, catalogs)
            entry["alerts"] = found_alerts[result.canonical]
        out.append(entry)
    return out


def _task_entries(config: dict, means: np.ndarray, spreads: np.ndarray) -> dict:
    entries = {}
    for name, kind, mean, spread in zip(config["task_names"], config["task_types"], means, spreads):
        if kind == "classification":
            entries[name] = {"probability": float(mean), "label": int(mean >= 0.5), "uncertainty": float(spread)}
        else:
            entries[name] = {"value": float(mean), "uncertainty": float(spread)}
    return entries


def load_domain(bundle) -> ApplicabilityDomain:
    """The bundle's applicability domain (training fingerprints checked against the sha256 in config.json)."""
    import hashlib

    from safetensors.numpy import load_file

    path = bundle.path / "domain.safetensors" if bundle.path else None
    if path is None or not path.is_file():
        raise BundleIntegrityError(f"{bundle.path} lacks domain.safetensors (the applicability domain).")
    if hashlib.sha256(path.read_bytes()).hexdigest() != bundle.config["domain"].get("sha256"):
        raise BundleIntegrityError(f"{path} does not match the checksum in config.json: it was changed or damaged.")
    return ApplicabilityDomain.from_parts(bundle.config["domain"], load_file(str(path)))
