"""``medai federated``: train one model across hospitals with Flower (logic in :mod:`medai.privacy.federated`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from medai.cli.errors import handle_errors

federated_app = typer.Typer(help="Federated learning across hospitals (Flower; needs the federated extra).",
                            invoke_without_command=True)


@federated_app.callback()
@handle_errors
def federated(
    ctx: typer.Context,
    data: Annotated[Optional[str], typer.Option(help="A multi-site table (CSV/Parquet/ARFF or a known name such as heart), or a folder with one table per site (or the UCI heart folder).")] = None,
    sites: Annotated[Optional[list[str]], typer.Option("--sites", help="Repeat: one table file per site (then --data is not needed), or site names of --data to keep.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Folder to write the model bundle to.")] = None,
    site_column: Annotated[Optional[str], typer.Option(help="Column naming each row's hospital.")] = None,
    target: Annotated[Optional[str], typer.Option(help="Column to predict (known tables have one).")] = None,
    id_column: Annotated[Optional[str], typer.Option(help="Column of patient/record ids.")] = None,
    rounds: Annotated[int, typer.Option(help="Federated rounds (the best on pooled validation AUROC is kept).")] = 60,
    strategy: Annotated[str, typer.Option(help="fedavg or fedprox.")] = "fedavg",
    proximal_mu: Annotated[float, typer.Option(help="FedProx: weight of the proximal term.")] = 0.1,
    local_epochs: Annotated[int, typer.Option(help="Local epochs per round at each site.")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed (site splits, initial weights, shuffling).")] = 0,
    secure_aggregation: Annotated[bool, typer.Option("--secure-aggregation/--no-secure-aggregation", help="SecAgg+: the server sees only the sum of masked updates.")] = False,
    dp_noise: Annotated[float, typer.Option(help="Client-side DP: Gaussian noise multiplier (0 = off).")] = 0.0,
    dp_clip: Annotated[float, typer.Option(help="Client-side DP: L2 bound of each site's update.")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document instead of a table.")] = False,
):
    """Simulate a federation of the sites in DATA in this process (Flower ServerApp + one ClientApp per site).

    Real mode, with a server and clients as separate processes: `medai federated server` and `medai federated client`.
    """
    from medai.cli.errors import fail
    from medai.privacy.federated import train_federated

    if ctx.invoked_subcommand is not None:
        return
    if (data is None and not sites) or out is None:
        raise fail("give --data (or --sites) and --out to simulate a federation, or use `medai federated server` / `client`")

    bundle = train_federated(data, out, sites=sites, rounds=rounds, strategy=strategy, proximal_mu=proximal_mu,
                             local_epochs=local_epochs, seed=seed, secure_aggregation=secure_aggregation,
                             dp_noise_multiplier=dp_noise, dp_clipping_norm=dp_clip, target=target,
                             id_column=id_column, site_column=site_column)  # fmt: skip
    summary = {"bundle": str(bundle.path), "best_round": bundle.metrics["fit"]["best_round"],
               "pooled_test_auroc": bundle.metrics["test"]["auroc"],
               "site_test_auroc": {name: site["test"]["auroc"] for name, site in bundle.metrics["sites"].items()}}  # fmt: skip
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo(f"saved {summary['bundle']}  (round {summary['best_round']} of {rounds} kept)")
    typer.echo(f"  pooled test AUROC {summary['pooled_test_auroc']:.3f}")
    for name, value in summary["site_test_auroc"].items():
        typer.echo(f"  {name:14s} AUROC {'n/a' if value is None else f'{value:.3f}'}")


@federated_app.command("server")
@handle_errors
def server(
    out: Annotated[Path, typer.Option(help="Folder to write the model bundle to.")],
    sites: Annotated[int, typer.Option(help="Number of sites (SuperNodes) to wait for.")],
    port: Annotated[int, typer.Option(help="Loopback port of the SuperLink (Fleet, Control and Runtime APIs).")] = 9093,
    rounds: Annotated[int, typer.Option(help="Federated rounds.")] = 60,
    strategy: Annotated[str, typer.Option(help="fedavg or fedprox.")] = "fedavg",
    proximal_mu: Annotated[float, typer.Option(help="FedProx: weight of the proximal term.")] = 0.1,
    local_epochs: Annotated[int, typer.Option(help="Local epochs per round at each site.")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    secure_aggregation: Annotated[bool, typer.Option("--secure-aggregation/--no-secure-aggregation", help="SecAgg+.")] = False,
    target: Annotated[Optional[str], typer.Option(help="Column to predict (every site's file must have it).")] = None,
    id_column: Annotated[Optional[str], typer.Option(help="Column of patient/record ids.")] = None,
    flwr_home: Annotated[Path, typer.Option(help="Folder for Flower's state (FLWR_HOME) of this server.")] = Path(".medai-flower/server"),
):
    """Real mode, server side: a Flower SuperLink on loopback plus the medai ServerApp; writes the bundle."""
    from medai.privacy.federated import FederatedSettings
    from medai.privacy.federated_deploy import serve

    settings = FederatedSettings(rounds=rounds, strategy=strategy, proximal_mu=proximal_mu, local_epochs=local_epochs,
                                 seed=seed, secure_aggregation=secure_aggregation, target=target,
                                 id_column=id_column).validate()  # fmt: skip
    typer.echo(f"saved {serve(out, sites, settings, flwr_home=flwr_home, port=port)}")


@federated_app.command("client")
@handle_errors
def client(
    data: Annotated[str, typer.Option(help="This site's table (or a multi-site table or name, with --site).")],
    site: Annotated[str, typer.Option(help="This site's name (the value of the site column, or any name for its own file).")],
    server_address: Annotated[str, typer.Option("--server", help="SuperLink address, host:port.")] = "127.0.0.1:9093",
    port: Annotated[int, typer.Option(help="Loopback port of this SuperNode's runtime API (one per SuperNode).")] = 9094,
    flwr_home: Annotated[Optional[Path], typer.Option(help="Folder for Flower's state of this client.")] = None,
):
    """Real mode, client side: a Flower SuperNode serving one site's records until stopped (Ctrl+C)."""
    from medai.privacy.federated_deploy import join

    raise typer.Exit(join(server_address, data, site, flwr_home=flwr_home or Path(f".medai-flower/client-{site}"), port=port))
