"""``medai deid table`` and ``medai deid dicom`` (registered on ``deid_app`` in :mod:`medai.cli.deid`).

The key of the pseudonyms, date offsets and UIDs comes from ``MEDAI_DEID_KEY`` or ``MEDAI_DEID_KEY_FILE``; with
``--ephemeral-key`` a random one is used instead (nothing then links this export to any other).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from medai.cli.errors import handle_errors

ReportOption = Annotated[Optional[Path], typer.Option(help="Write the counts (never values) to this JSON file.")]
EphemeralFlag = Annotated[bool, typer.Option("--ephemeral-key", help="Use a random key when MEDAI_DEID_KEY is not set (pseudonyms then differ from run to run).")]
Columns = Optional[list[str]]


def _key(ephemeral: bool):
    from medai.privacy.pseudonym import load_key

    return load_key(allow_ephemeral=ephemeral)


@handle_errors
def table(
    input: Annotated[Path, typer.Option("--input", help="A CSV, TSV or Parquet table (or one encrypted with `medai encrypt`).")],
    output: Annotated[Path, typer.Option("--output", help="The de-identified table: .csv, .tsv or .parquet.")],
    patient_column: Annotated[Optional[str], typer.Option(help="The patient identifier: pseudonymised, and the key of each row's date shift.")] = None,
    id_column: Annotated[Columns, typer.Option(help="Another identifier to pseudonymise (repeatable).")] = None,
    date_column: Annotated[Columns, typer.Option(help="A text column of dates to shift (repeatable); date-typed columns are always shifted.")] = None,
    drop_column: Annotated[Columns, typer.Option(help="A direct identifier to remove: name, phone, address... (repeatable).")] = None,
    age_column: Annotated[Columns, typer.Option(help="Ages to top-code at 90+ (default: columns named age, anchor_age...).")] = None,
    zip_column: Annotated[Columns, typer.Option(help="ZIP codes to cut to 3 digits (default: columns named zip, zip_code...).")] = None,
    quasi_identifier: Annotated[Columns, typer.Option(help="A column of the k-anonymity report (repeatable).")] = None,
    k: Annotated[int, typer.Option("--k", help="The k-anonymity target.")] = 5,
    date_format: Annotated[Optional[str], typer.Option(help="strptime format of text dates (default: ISO 8601).")] = None,
    report: ReportOption = None,
    ephemeral_key: EphemeralFlag = False,
):
    """De-identify a table: pseudonyms, per-patient date shifts, 90+ ages, 3-digit ZIPs, k-anonymity report."""
    from medai.privacy.deid.table import deidentify_table_file

    summary = deidentify_table_file(
        input, output, key=_key(ephemeral_key), report=report, patient_column=patient_column,
        id_columns=id_column or (), date_columns=date_column, drop_columns=drop_column or (), age_columns=age_column,
        zip_columns=zip_column, quasi_identifiers=quasi_identifier or (), k=k, date_format=date_format,
    )  # fmt: skip
    anonymity = summary["k_anonymity"]
    typer.echo(f"wrote {summary['rows']} rows to {output}")
    if anonymity["k"] is not None:
        typer.echo(f"k-anonymity over {', '.join(anonymity['quasi_identifiers'])}: k = {anonymity['k']}; "
                   f"{anonymity['records_below_k']} records in classes smaller than {anonymity['k_target']}")
    if summary["possible_identifiers_kept"]:
        typer.echo(f"warning: columns that look like identifiers were kept: {', '.join(summary['possible_identifiers_kept'])}", err=True)


@handle_errors
def dicom(
    input: Annotated[Path, typer.Option("--input", help="A folder of DICOM files (searched recursively).")],
    output: Annotated[Path, typer.Option("--output", help="The folder to write the de-identified tree to.")],
    dates: Annotated[str, typer.Option(help="shift (by the patient's offset) or remove.")] = "shift",
    keep_patient_characteristics: Annotated[bool, typer.Option(help="Keep sex, age (90+ capped), size and weight.")] = False,
    report: ReportOption = None,
    ephemeral_key: EphemeralFlag = False,
):
    """De-identify DICOM files with the PS3.15 basic confidentiality profile (UIDs remapped consistently)."""
    from medai.privacy.deid.dicom import deidentify_dicom_folder

    summary = deidentify_dicom_folder(input, output, key=_key(ephemeral_key), report=report, dates=dates,
                                      retain_patient_characteristics=keep_patient_characteristics)  # fmt: skip
    typer.echo(f"de-identified {summary['deidentified']} of {summary['files']} files into {output}; "
               f"skipped {summary['skipped']}")
    for entry in summary["per_file"]:
        if entry["status"] == "skipped":
            typer.echo(f"skipped {entry['input']}: {entry['reason']}", err=True)
        for warning in entry.get("warnings", []):
            typer.echo(f"warning: {entry['input']}: {warning}", err=True)
    if report is None:
        typer.echo(json.dumps(summary["totals"]))
