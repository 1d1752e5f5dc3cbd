"""``medai deid text`` (registered on ``deid_app`` in :mod:`medai.cli.deid`); the logic is in
:mod:`medai.privacy.deid.notes_io` and :mod:`medai.privacy.deid.text`.

Surrogates use the key in ``MEDAI_DEID_KEY`` or ``MEDAI_DEID_KEY_FILE``; with ``--ephemeral-key`` a random one is
used instead. Tags (``--mode tag``, the default) need no key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from medai.cli.errors import handle_errors


@handle_errors
def text(
    input: Annotated[Path, typer.Option("--input", help="Notes: JSON lines with 'id' and 'text' (optional 'patient_id'), or one plain .txt note (either may be encrypted with `medai encrypt`).")],
    output: Annotated[Path, typer.Option("--output", help="Where to write the de-identified notes (.jsonl, or .txt for a .txt input).")],
    report: Annotated[Optional[Path], typer.Option(help="Write the counts per category (never values) to this JSON file.")] = None,
    mode: Annotated[str, typer.Option(help="tag: replace with [CATEGORY]; surrogate: consistent fake values, dates shifted per patient.")] = "tag",
    ephemeral_key: Annotated[bool, typer.Option("--ephemeral-key", help="Surrogates: use a random key when MEDAI_DEID_KEY is not set (surrogates then differ from run to run).")] = False,
    spans: Annotated[bool, typer.Option("--spans/--no-spans", help="Add the offsets and categories of what was replaced to each output line (never the values).")] = False,
):
    """De-identify clinical notes: find the HIPAA Safe Harbor identifiers and replace them with tags or surrogates."""
    from medai.privacy.deid.notes_io import deidentify_file

    summary = deidentify_file(input, output, mode=mode, ephemeral_key=ephemeral_key, with_spans=spans)
    if report is not None:
        report.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    found = ", ".join(f"{category} {count}" for category, count in summary["found"].items()) or "nothing"
    typer.echo(f"de-identified {summary['documents']} note(s) -> {output}  ({found})")
