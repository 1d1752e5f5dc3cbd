"""``medai audit`` and the differential-privacy options of ``medai train``; the logic lives in medai.privacy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from medai.cli.errors import handle_errors


def train_private_or_not(train, task: str, data: str, out: Path, dp: tuple, **settings):
    """``train(task, data, out, **settings)``, or ``medai.privacy.dp.train_private`` when ``--dp-epsilon`` is given."""
    epsilon, delta, max_grad_norm = dp
    if epsilon is None:
        if delta is not None:
            from medai.cli.errors import fail

            raise fail("--dp-delta needs --dp-epsilon (the privacy budget to spend)")
        return train(task, data, out, **settings)
    from medai.privacy.dp import train_private

    return train_private(task, data, out, {"epsilon": epsilon, "delta": delta, "max_grad_norm": max_grad_norm}, **settings)


@handle_errors
def audit(
    bundle: Annotated[Path, typer.Argument(help="A model bundle folder.")],
    data: Annotated[str, typer.Option(help="The data the bundle was trained on (its train and test splits are compared).")],
    split: Annotated[str, typer.Option(help="The held-out split the training records are compared with.")] = "test",
    write: Annotated[bool, typer.Option("--write/--no-write", help="Write privacy_audit.json and a card section into the bundle.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document instead of a summary.")] = False,
):
    """Membership-inference audit: can the model's outputs tell its training records from held-out ones?"""
    from medai.privacy.audit import audit_bundle

    result = audit_bundle(bundle, data, write=write, non_member_split=split)
    if as_json:
        typer.echo(json.dumps(result, indent=2, allow_nan=True))
        return
    typer.echo(f"membership-inference AUROC {result['attack_auroc']:.3f} (0.5 = no leakage detected): "
               f"loss attack {result['loss_attack']['auroc']:.3f}, confidence attack {result['confidence_attack']['auroc']:.3f}"
               f"; {result['n_members']} train vs {result['n_non_members']} {split} records")  # fmt: skip
    if write:
        typer.echo(f"written to {bundle / 'privacy_audit.json'} and {bundle / 'card.md'}")


def register(app: typer.Typer) -> None:
    """Add the privacy commands to the ``medai`` app."""
    app.command()(audit)
