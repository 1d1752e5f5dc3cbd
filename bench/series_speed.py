"""Speed check: seconds per training epoch of each series network on a PhysioNet-2012-sized synthetic set.

3,200 records (one cross-validation fold's training part) x 48 hourly steps x 37 variables, about 20% of values
observed, 5 static features, batch 64, through ``Trainer`` on this machine's CPU (or GPU with --device cuda).

    python bench/series_speed.py [--epochs 2] [--threads 1] [--networks grud gru]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from medai.data import Dataset, Schema
from medai.engine.trainer import Trainer, TrainerConfig
from medai.models import NETWORKS, SeriesModel

SETTINGS = {
    "stacked_lstm": {"use_mask": True},
    "gru": {"use_mask": True, "use_delta": True},
    "grud": {},
    "ecg_cnn1d": {"use_mask": True},
}


def synthetic(n: int, steps: int = 48, variables: int = 37, n_static: int = 5, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    mask = (rng.random((n, steps, variables)) < 0.2).astype(np.float32)
    values = rng.standard_normal((n, steps, variables)).astype(np.float32) * mask
    delta = np.zeros_like(values)
    for t in range(1, steps):  # forward fill and time since last observation
        values[:, t] = np.where(mask[:, t] > 0, values[:, t], values[:, t - 1])
        delta[:, t] = np.where(mask[:, t - 1] > 0, 1.0, delta[:, t - 1] + 1.0)
    labels = rng.integers(0, 2, n)
    extras = {"mask": mask, "delta": delta / steps, "static": rng.standard_normal((n, n_static)).astype(np.float32)}
    schema = Schema("series", "binary", ("survived", "died"), (steps, variables))
    return Dataset(values, labels, np.arange(n), schema, extras=extras)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)  # small RNNs: more threads on busy cores is far slower
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--networks", nargs="*", default=list(SETTINGS))
    args = parser.parse_args()
    train, val = synthetic(3200), synthetic(64, seed=1)
    results = {}
    for name in args.networks:
        torch.manual_seed(0)
        network = NETWORKS.create(name, n_features=37, n_outputs=2, n_static=5, **SETTINGS[name])
        config = TrainerConfig(
            max_epochs=args.epochs, batch_size=64, monitor="loss", progress=False, device=args.device,
            num_threads=args.threads,
        )  # fmt: skip
        fit = Trainer(config).fit(SeriesModel(network, "binary"), train, val)
        results[name] = {
            "seconds_per_epoch": round(fit.train_seconds / args.epochs, 2),
            "parameters": sum(p.numel() for p in network.parameters()),
            "settings": SETTINGS[name],
        }
        print(name, results[name], flush=True)
    print(json.dumps({"threads": args.threads, "device": args.device, "networks": results}, indent=2))


if __name__ == "__main__":
    main()
