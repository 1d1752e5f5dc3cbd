"""Federated learning across hospitals with Flower: each site trains locally and only model updates travel.

Strategies FedAvg and FedProx (the proximal term is added to each site's local loss), optional SecAgg+ secure
aggregation (Flower's ``secaggplus_mod`` and ``SecAggPlusWorkflow``: the server sees only the sum of the masked
updates) and optional client-side differential privacy (Flower's ``fixedclipping_mod`` clips each site's update,
``DifferentialPrivacyClientSideFixedClipping`` adds Gaussian noise to the aggregate). The model is medai's tabular MLP,
trained locally by medai's Trainer; the result is a normal tabular-classification bundle (``medai evaluate`` and
``medai predict`` work on it) whose config and card hold the federated settings and per-site and pooled metrics.

What leaves a site (nothing else does):

- preprocessing statistics: per numeric column the count, sum and sum of squares of observed training values and a
  480-bin histogram; per categorical column the count of each category; the number of training rows;
- every round: the model weights after local training, the number of training rows and the mean training loss;
  the validation loss of the global model and 1000-bin histograms of its validation probabilities per class (the
  server's pooled validation AUROC, which picks the round kept);
- at the end: validation NLL summed for 49 candidate temperatures; test metrics of the site and 1000-bin
  histograms of predicted probabilities per class (for the pooled AUROC).

Modes: :func:`train_federated` simulates a federation in one process (Flower's own simulation engine needs Ray,
which medai does not require: see :mod:`medai.privacy.federated_server`); :func:`serve` and :func:`join` run a
server and clients as separate processes (see :mod:`medai.privacy.federated_deploy`).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from medai.errors import InvalidInputError, check_choice, did_you_mean, require
from medai.privacy.federated_sites import SiteData, partition_by_site, split_site

STRATEGIES = ("fedavg", "fedprox")


@dataclass
class FederatedSettings:
    """Settings of a federated run; defaults are the benchmarked ones (bench/federated.py).

    The recipe (fixed BatchNorm statistics, learning rate 1e-2, 1 local epoch, 60 rounds) was chosen on the heart
    sites' pooled validation AUROC (seeds 0-2; see the bench docstring), never on test rows.
    """

    rounds: int = 60  # federated rounds; the round best on pooled validation data (see monitor) is kept
    monitor: str = "auroc"  # round selection: pooled validation "auroc" (as the Trainer's default) or "loss"
    strategy: str = "fedavg"  # fedavg or fedprox
    proximal_mu: float = 0.1  # FedProx: weight of (mu / 2) * ||w - w_global||^2 in the local loss
    local_epochs: int = 1  # epochs each site trains per round (one-cycle schedule restarted every round)
    batch_size: int = 32
    learning_rate: float = 1e-2
    weight_decay: float = 1e-2
    server_momentum: float = 0.0  # FedAvg only: > 0 makes it FedAvgM (server momentum on the averaged update)
    batch_norm: str = "fixed"  # BatchNorm in local training: "fixed" normalises with the global model's running
    # statistics (never updated: BatchNorm is then a learned affine map, the same function at every site and at
    # inference); "batch" with each local batch's statistics (which removes each site's own shift of every hidden unit)
    seed: int = 0  # seeds the site splits, initial weights and local shuffling
    secure_aggregation: bool = False  # SecAgg+ (Flower): the server sees only the sum of masked updates
    secagg_clipping_range: float = 16.0  # SecAgg+ quantisation range [-r, r] of every weight
    dp_noise_multiplier: float = 0.0  # > 0: client-side clipping + Gaussian noise on the aggregate (Flower)
    dp_clipping_norm: float = 1.0  # L2 bound of each site's update under DP
    target: str | None = None
    id_column: str | None = None
    site_column: str | None = None

    def validate(self) -> FederatedSettings:
        check_choice("strategy", self.strategy, STRATEGIES)
        check_choice("monitor", self.monitor, ("auroc", "loss"))
        check_choice("batch_norm", self.batch_norm, ("batch", "fixed"))
        for name in ("rounds", "local_epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"The '{name}' parameter must be an int >= 1; got {value!r}.")
        for name in ("proximal_mu", "dp_noise_multiplier"):
            if getattr(self, name) < 0:
                raise InvalidInputError(f"The '{name}' parameter must be >= 0; got {getattr(self, name)!r}.")
        if not 0 <= self.server_momentum < 1:
            raise InvalidInputError(f"The 'server_momentum' parameter must be in [0, 1); got {self.server_momentum!r}.")
        if self.dp_clipping_norm <= 0 or self.learning_rate <= 0 or self.secagg_clipping_range <= 0:
            raise InvalidInputError("dp_clipping_norm, learning_rate and secagg_clipping_range must be > 0.")
        return self


# -- data -----------------------------------------------------------------------------------------------------------


@contextmanager
def _data_dir(folder: Path):
    previous = os.environ.get("MEDAI_DATA_DIR")
    os.environ["MEDAI_DATA_DIR"] = str(folder)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MEDAI_DATA_DIR", None)
        else:
            os.environ["MEDAI_DATA_DIR"] = previous


def load_sites(data, settings: FederatedSettings, *, site: str | None = None) -> list[SiteData]:
    """Every site's split records, from a multi-site table or name (``heart``), or a folder.

    A folder is either the UCI heart-disease folder (its four ``processed.*.data`` files) or holds one table file per
    site (site = file name without suffix). With ``site`` only that site is kept (a client in real mode).
    """
    from medai.data.sources.tabular import FORMATS, load_table
    from medai.tasks.tabular_classification import TabularSettings, load

    path = Path(str(data)).expanduser()
    if path.is_dir() and (path / "processed.cleveland.data").exists():
        with _data_dir(path.parent):
            return load_sites("heart", replace(settings, site_column=None), site=site)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in FORMATS)
        if len(files) < 2 and site is None:
            raise InvalidInputError(f"{path} holds {len(files)} table file(s); a federation needs one per site (>= 2).")
        sites = [split_site(p.stem, load_table(p, settings.target, id_column=settings.id_column), settings.seed)
                 for p in files if site is None or p.stem == site]
    else:
        table = load(data, TabularSettings(target=settings.target, id_column=settings.id_column,
                                           site_column=settings.site_column))  # fmt: skip
        if site is not None and table.sites is None:
            sites = [split_site(site, table, settings.seed)]  # a site's own file
        else:
            sites = partition_by_site(table, settings.seed)
    if site is not None:
        sites = [s for s in sites if s.name == site]
        if not sites:
            raise InvalidInputError(f"No rows of site {site!r} in {path.name}.")
    return sites


# -- simulation -------------------------------------------------------------------------------------------------


def select_sites(data, sites: list[str] | None, settings: FederatedSettings) -> list[SiteData]:
    """The sites of a simulation: every site of ``data``, only the named ones (``sites`` = names), or one site per
    table file (``sites`` = files, ``data`` not needed; site = file name without suffix)."""
    sites = list(sites or [])
    files = [Path(item).expanduser() for item in sites if Path(item).expanduser().is_file()]
    if files and len(files) != len(sites):
        raise InvalidInputError("--sites takes either table files (one per site) or site names of --data, not both.")
    if files:
        if len(files) < 2:
            raise InvalidInputError(f"A federation needs at least 2 sites; --sites gave {len(files)} file.")
        return [load_sites(path, settings, site=path.stem)[0] for path in files]
    if data is None:
        raise InvalidInputError("Give --data (a multi-site table or folder), or --sites with one table file per site.")
    loaded = load_sites(data, settings)
    if not sites:
        return loaded
    names = [s.name for s in loaded]
    unknown = [name for name in sites if name not in names]
    if unknown:
        raise InvalidInputError(f"Unknown site(s) {', '.join(map(repr, unknown))}; {Path(str(data)).name} has "
                                f"{', '.join(map(repr, names))}.{did_you_mean(unknown[0], names)}")
    chosen = [s for s in loaded if s.name in sites]
    if len(chosen) < 2:
        raise InvalidInputError(f"A federation needs at least 2 sites; --sites chose {len(chosen)}.")
    return chosen


def train_federated(data, out, settings: FederatedSettings | None = None, *, sites: list[str] | None = None,
                    **overrides):
    """Simulate a federation of the sites in ``data`` in this process and save the global model as a bundle.

    Examples:
        >>> from medai.privacy.federated import train_federated
        >>> bundle = train_federated("heart", "runs/heart-fed", rounds=30, strategy="fedavg")  # doctest: +SKIP
        >>> bundle.metrics["test"]["auroc"], sorted(bundle.metrics["sites"])  # doctest: +SKIP
        (0.9..., ['cleveland', 'hungarian', 'switzerland', 'va'])
    """
    settings = replace(settings or FederatedSettings(), **overrides).validate()
    require("flwr", "federated")
    sites = select_sites(data, sites, settings)
    results, traffic = simulate(sites, settings)
    splits = {part: np.concatenate([getattr(s, part).ids for s in sites]).tolist() for part in ("train", "val", "test")}
    source = Path(str(data)).name if data is not None else "+".join(site.name for site in sites)
    return save_federated_bundle(out, results, settings, source=source, mode="simulation (in-process)",
                                 traffic=traffic, splits=splits)  # fmt: skip


def simulate(sites: list[SiteData], settings: FederatedSettings) -> tuple[dict, dict]:
    """Run Flower's ServerApp and one ClientApp per site in this process; returns (results, traffic counts)."""
    from flwr.app import Context, RecordDict

    from medai.privacy.federated_client import make_client_app, make_numpy_client
    from medai.privacy.federated_server import InProcessGrid, ServerPlan, make_server_app

    clients = [make_numpy_client(site) for site in sites]
    client_app = make_client_app(lambda context: clients[int(context.node_config["partition-id"])],
                                 secure_aggregation=settings.secure_aggregation,
                                 dp_clipping=settings.dp_noise_multiplier > 0)  # fmt: skip
    grid = InProcessGrid(client_app, [{"partition-id": i, "num-partitions": len(sites)} for i in range(len(sites))])
    plan = ServerPlan(settings, len(sites))
    _quiet_flower()
    make_server_app(plan)(grid, Context(1, 0, {}, RecordDict(), {}))
    return plan.results, dict(grid.traffic)


def _quiet_flower() -> None:
    import logging

    logging.getLogger("flwr").setLevel(logging.WARNING)


# -- bundle ---------------------------------------------------------------------------------------------------------


def save_federated_bundle(out, results: dict, settings: FederatedSettings, *, source: str, mode: str,
                          traffic: dict | None = None, splits: dict | None = None):
    """The global model as a tabular-classification bundle; config["federated"] and the card say how it was made."""
    from medai.bundle import save_bundle
    from medai.privacy.federated_card import render
    from medai.privacy.federated_client import set_arrays
    from medai.tasks.tabular_classification import TabularSettings, build_model

    config = dict(results["config"])
    model = build_model(config)
    set_arrays(model, results["arrays"])
    config["settings"] = asdict(TabularSettings(target=config["target"], model="tabular_mlp", ensemble=1,
                                                epochs=settings.rounds, seed=settings.seed, progress=False,
                                                id_column=settings.id_column, site_column=settings.site_column,
                                                monitor=settings.monitor,  # the round was chosen by this
                                                wide=config["network_kwargs"].get("wide", False)))
    config["calibration"] = {"method": "temperature", "fitted_on": "val (sites' summed NLL over a grid)",
                             "temperature": results["temperature"]}
    config["source"] = {"data": source, "split": "per site, stratified 70/10/20 by patient", "split_seed": settings.seed}
    config["federated"] = {"framework": _flower_version(), "mode": mode, "sites": sorted(results["sites"]),
                           "settings": asdict(settings), "best_round": results["best_round"],
                           "shared_by_sites": SHARED}  # fmt: skip
    metrics = {
        "fit": {"rounds": settings.rounds, "best_round": results["best_round"], "train_seconds": results["seconds"],
                "val_loss_per_round": results["val_loss_per_round"],
                "val_auroc_per_round": results.get("val_auroc_per_round", {}),
                "train_loss_per_round": results["train_loss_per_round"], "traffic": traffic or {}},
        "test": results["pooled_test"],
        "sites": results["sites"],
    }  # fmt: skip
    json_files = {"splits.json": splits} if splits else {}
    return save_bundle(out, model, config, metrics=metrics, card=render(config, metrics), json_files=json_files)


SHARED = ("per numeric column: count, sum, sum of squares and a 480-bin histogram of observed training values; per "
          "categorical column: category counts; training row counts; model weights after each round's local training "
          "and mean training loss; validation loss and 1000-bin histograms of validation probabilities per class of the "
          "global model each round; validation NLL for 49 temperatures; per-site "
          "test metrics and 1000-bin histograms of predicted probabilities per class")


def _flower_version() -> str:
    from importlib.metadata import version

    return f"flwr {version('flwr')}"
