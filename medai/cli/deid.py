"""``medai deid``: de-identification of notes (``text``), tables (``table``) and DICOM (``dicom``).

Each command is a thin layer over :mod:`medai.privacy.deid`; ``--report FILE.json`` counts what was found per
category and never holds a value read from the data.
"""

from __future__ import annotations

import typer

from medai.cli.deid_records import dicom, table
from medai.cli.deid_text import text

deid_app = typer.Typer(help="De-identify patient data: clinical notes, tables and DICOM files.", no_args_is_help=True,
                       pretty_exceptions_show_locals=False)  # fmt: skip
deid_app.command("text")(text)
deid_app.command("table")(table)
deid_app.command("dicom")(dicom)
