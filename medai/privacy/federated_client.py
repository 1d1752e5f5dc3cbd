"""The Flower client of one hospital: local training of a medai model, local validation and test metrics.

Only model weights, their number of training rows and aggregate statistics leave the site (see
:mod:`medai.privacy.federated_sites`); per-patient predictions never do. Test results travel as per-site metrics and
as histograms of predicted probabilities per class, from which the server computes the pooled AUROC.
"""

from __future__ import annotations

import json

import numpy as np
import torch
from torch import nn

from medai.data.dataset import Dataset, Schema
from medai.engine.calibration import softmax
from medai.engine.metrics import classification_metrics
from medai.engine.trainer import Trainer, TrainerConfig
from medai.errors import require
from medai.privacy.federated_sites import SiteData, site_histograms, site_moments

SCORE_BINS = 1000  # histogram of predicted probabilities sent for the pooled AUROC
TEMPERATURES = np.exp(np.linspace(np.log(0.25), np.log(4.0), 49)).tolist()  # grid for federated calibration


class ProximalObjective(nn.Module):
    """FedProx: the wrapped model's loss plus (mu / 2) * ||w - w_global||^2 over its trainable parameters.

    The global weights are copied when the wrapper is made (the start of a round); the term is added in training
    mode only, so validation losses stay comparable with FedAvg's.

    Examples:
        >>> model = nn.Linear(2, 2)
        >>> class Wrapped(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.linear = model
        ...     def forward(self, batch):
        ...         return {"logits": self.linear(batch["x"]), "loss": torch.zeros(())}
        >>> objective = ProximalObjective(Wrapped(), mu=2.0)
        >>> with torch.no_grad():
        ...     _ = model.bias.add_(1.0)  # moves 2 weights by 1 each
        >>> round(float(objective.proximal_term()), 4)
        2.0
    """

    def __init__(self, model: nn.Module, mu: float):
        super().__init__()
        self.model = model
        self.mu = float(mu)
        self._anchor = [p.detach().clone() for p in model.parameters()]  # not registered: not in state_dict

    def proximal_term(self) -> torch.Tensor:
        squares = [((p - a.to(p.device)) ** 2).sum() for p, a in zip(self.model.parameters(), self._anchor)]
        return self.mu / 2 * torch.stack(squares).sum()

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        output = self.model(batch)
        if self.training and "loss" in output and self.mu > 0:
            output = {**output, "loss": output["loss"] + self.proximal_term()}
        return output


class FixedNormalisation(nn.Module):
    """Trains the wrapped model with its BatchNorm layers in eval mode: they normalise with the global model's running
    statistics (not updated) instead of each local batch's, so every site trains the same function the global model
    computes at inference (a site's batches otherwise remove its own shift of every hidden unit)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.model(batch)


def exchanged_keys(model: nn.Module) -> list[str]:
    """State-dict entries that travel: parameters and float buffers (BatchNorm statistics), in a fixed order."""
    return [k for k, v in model.state_dict().items() if v.is_floating_point()]


def get_arrays(model: nn.Module) -> list[np.ndarray]:
    state = model.state_dict()
    return [state[k].detach().cpu().numpy().copy() for k in exchanged_keys(model)]


def set_arrays(model: nn.Module, arrays: list[np.ndarray]) -> None:
    keys = exchanged_keys(model)
    state = model.state_dict()
    model.load_state_dict({**state, **{k: torch.as_tensor(np.asarray(a), dtype=state[k].dtype) for k, a in zip(keys, arrays)}})


def _dataset(features: np.ndarray, table, label_names) -> Dataset:
    schema = Schema("table", "binary" if len(label_names) == 2 else "multiclass", tuple(label_names), (features.shape[1],), "table")
    return Dataset(features.astype(np.float32), table.labels, table.ids, schema)


def score_histograms(probabilities: np.ndarray, labels: np.ndarray) -> list[list[int]]:
    """Per true class, counts of the last class's probability in SCORE_BINS equal bins on [0, 1]."""
    edges = np.linspace(0.0, 1.0, SCORE_BINS + 1)
    return [np.histogram(probabilities[labels == c, -1], bins=edges)[0].tolist() for c in range(probabilities.shape[1])]


def _brier_sum(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Summed squared error: of the last class's probability (binary, as ``classification_metrics``), else of all."""
    truth = np.eye(probabilities.shape[1])[labels]
    if probabilities.shape[1] == 2:
        return float(((probabilities[:, 1] - truth[:, 1]) ** 2).sum())
    return float(((probabilities - truth) ** 2).sum())


def make_numpy_client(site: SiteData, *, threads: int = 1):
    """A ``flwr.client.NumPyClient`` serving ``site`` (Flower is imported here: it is an optional extra)."""
    flwr_client = require("flwr.client", "federated")

    class SiteClient(flwr_client.NumPyClient):
        """Answers the server's queries (statistics), fit (local training) and evaluate (val loss, test metrics)."""

        def __init__(self):
            self._cache: dict[str, tuple] = {}

        def get_properties(self, config):
            if config.get("stage") == "histograms":
                edges = json.loads(str(config["edges"]))
                return {"site": site.name, "summary": json.dumps(site_histograms(site.train, edges))}
            return {"site": site.name, "summary": json.dumps(site_moments(site.train))}

        def _prepared(self, model_config: str):
            """Model and preprocessed splits for the server's model config (cached per config)."""
            if model_config not in self._cache:
                from medai.tasks.tabular_classification import build_model, features_of

                config = json.loads(model_config)
                parts = {name: _dataset(features_of(config, t), t, config["label_names"])
                         for name, t in (("train", site.train), ("val", site.val), ("test", site.test))}
                self._cache = {model_config: (config, build_model, parts)}
            config, build_model, parts = self._cache[model_config]
            return config, build_model(config), parts

        def fit(self, parameters, config):
            _, model, parts = self._prepared(str(config["model_config"]))
            set_arrays(model, parameters)
            mu = float(config.get("proximal_mu", 0.0))
            objective = ProximalObjective(model, mu) if mu > 0 else model
            if str(config.get("batch_norm", "batch")) == "fixed":
                objective = FixedNormalisation(objective)
            trainer = Trainer(TrainerConfig(
                max_epochs=int(config["local_epochs"]), batch_size=int(config["batch_size"]),
                learning_rate=float(config["learning_rate"]), weight_decay=float(config["weight_decay"]),
                monitor="loss", seed=int(config["seed"]), device="cpu", num_threads=threads, progress=False))  # fmt: skip
            result = trainer.fit(objective, parts["train"], parts["train"])  # local epochs; selection stays on the server
            return get_arrays(model), len(parts["train"]), {"train_loss": float(result.history[-1]["train_loss"])}

        def evaluate(self, parameters, config):
            model_config, model, parts = self._prepared(str(config["model_config"]))
            set_arrays(model, parameters)
            stage = str(config.get("stage", "val"))
            data = parts["test" if stage == "test" else "val"]
            logits = Trainer(TrainerConfig(device="cpu", num_threads=threads, progress=False)).predict(model, data)
            labels = data.labels
            log_probabilities = torch.log_softmax(torch.as_tensor(logits, dtype=torch.float64), dim=1).numpy()
            loss = float(-log_probabilities[np.arange(len(labels)), labels].mean())
            if stage == "calibrate":
                totals = [float(-torch.log_softmax(torch.as_tensor(logits / t, dtype=torch.float64), 1).numpy()[np.arange(len(labels)), labels].sum())
                          for t in TEMPERATURES]
                return loss, len(labels), {"site": site.name, "nll_sums": json.dumps(totals)}
            if stage == "test":
                probabilities = softmax(logits, float(config["temperature"]))
                metrics = classification_metrics(probabilities, labels, model_config["label_names"], bootstrap=200)
                report = {"metrics": metrics, "histograms": score_histograms(probabilities, labels),
                          "correct": int((probabilities.argmax(1) == labels).sum()),
                          "brier_sum": _brier_sum(probabilities, labels)}
                return loss, len(labels), {"site": site.name, "report": json.dumps(report, allow_nan=True)}
            histograms = score_histograms(softmax(logits, 1.0), labels)  # for the pooled validation AUROC
            return loss, len(labels), {"site": site.name, "histograms": json.dumps(histograms)}

    return SiteClient()


def make_client_app(client_for_context, *, secure_aggregation: bool = False, dp_clipping: bool = False):
    """A Flower ClientApp whose ``client_fn`` serves the site ``client_for_context(context)`` returns.

    Mods: ``secaggplus_mod`` (SecAgg+ masking) and ``fixedclipping_mod`` (client-side update clipping for
    Flower's DifferentialPrivacyClientSideFixedClipping); the clipping mod runs inside SecAgg+, on the plain update.
    """
    from flwr.client import ClientApp
    from flwr.client.mod import fixedclipping_mod, secaggplus_mod

    mods = [*([secaggplus_mod] if secure_aggregation else []), *([fixedclipping_mod] if dp_clipping else [])]
    return ClientApp(client_fn=lambda context: client_for_context(context).to_client(), mods=mods)
