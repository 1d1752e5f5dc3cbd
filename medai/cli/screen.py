"""``medai screen``: a screening report of a molecule table through molecular-property bundles.

Registered in :mod:`medai.cli.main`; the work is done by :func:`medai.chem.screen.screen`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

DEFAULT_IMAGES = 50  # as medai.chem.screen.DEFAULT_IMAGES (not imported: keeps `medai --help` free of RDKit)


def screen_command(
    bundles: Annotated[list[Path], typer.Argument(metavar="BUNDLE", help="Molecular-property bundle folders.")],
    data: Annotated[Path, typer.Option(help="A table of molecules (CSV/TSV/Parquet) with a SMILES column.")],
    out: Annotated[Optional[Path], typer.Option(help="Report: .html (the page) or .json.")] = None,
    smiles_column: Annotated[Optional[str], typer.Option(help="The SMILES column (default: found by name).")] = None,
    images: Annotated[int, typer.Option(help="Atom pictures for the first N molecules (0: none).")] = DEFAULT_IMAGES,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON document.")] = False,
):
    """Screen molecules: each model's predictions, uncertainty and domain flag; PAINS/Brenk alerts; atom pictures."""
    from medai.chem.screen import screen
    from medai.cli.errors import fail

    if out is None and not as_json:
        raise fail("give --out report.html (or report.json), --json, or both")
    report = screen(bundles, data, smiles_column=smiles_column, images=images)
    if out is not None:
        report.write(out)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, allow_nan=True))
        return
    summary = report.summary()
    typer.echo(f"screened {summary['screened']} of {summary['rows']} rows with {len(report.bundles)} model(s): "
               f"{summary['with_alerts']} with structural alerts ({summary['with_pains']} PAINS), "
               f"{summary['out_of_domain']} outside a model's domain; report: {out}")
    for row in report.skipped:
        typer.echo(f"  skipped row {row['row']}: {row['error']} ({row['reason']})")
