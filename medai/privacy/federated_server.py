"""The Flower ServerApp of a medai federation, and an in-process Grid to simulate one without Ray.

The ServerApp's ``main`` runs, all through Flower messages:

1. statistics: two ``get_properties`` queries (moments, then histograms) -> the pooled preprocessing state;
2. training: Flower's ``DefaultWorkflow`` with the FedAvg or FedProx strategy (``flwr.server.strategy``), the
   ``SecAggPlusWorkflow`` as fit workflow when secure aggregation is on, and Flower's
   ``DifferentialPrivacyClientSideFixedClipping`` wrapper when client-side DP is on; each round's global weights are
   kept and each round is scored by the sites' pooled validation loss (``evaluate`` on local validation rows);
3. selection and calibration: the best round's weights; a temperature chosen on the sites' summed validation NLL;
4. report: every site's test metrics and probability histograms (pooled AUROC without pooling predictions).

Flower's own simulation engine needs Ray (``flwr[simulation]``); :class:`InProcessGrid` instead delivers each message
to the ClientApp in the same process, after a round trip through Flower's protobuf serialisation, so exactly what
would travel over the network travels, and its size is counted.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field

import numpy as np
import torch

from medai.privacy import federated_sites as sites_lib
from medai.privacy.federated_client import SCORE_BINS, TEMPERATURES, get_arrays


@dataclass
class ServerPlan:
    """What the ServerApp needs besides the sites; filled with the results when the run ends."""

    settings: object  # FederatedSettings
    expected_sites: int
    results: dict = field(default_factory=dict)


def _send(grid, contents_by_node: dict, message_type: str, group: str) -> list:
    from flwr.app import Message

    messages = [Message(content, node, message_type, group_id=group) for node, content in contents_by_node.items()]
    replies = list(grid.send_and_receive(messages, timeout=3600))
    errors = [reply.error.reason for reply in replies if reply.has_error()]
    if errors or len(replies) != len(messages):
        raise RuntimeError(f"{len(messages) - len(replies) + len(errors)} site(s) failed in '{group}': {errors[:1]}")
    return replies


def _query(grid, nodes, config: dict, group: str) -> list[dict]:
    from flwr.common import GetPropertiesIns
    from flwr.common.constant import MessageTypeLegacy
    from flwr.compat.common import recorddict_compat as compat

    content = {n: compat.getpropertiesins_to_recorddict(GetPropertiesIns(dict(config))) for n in nodes}
    replies = _send(grid, content, MessageTypeLegacy.GET_PROPERTIES, group)
    return [compat.recorddict_to_getpropertiesres(r.content).properties for r in replies]


def _evaluate(grid, nodes, arrays: list[np.ndarray], config: dict, group: str) -> list[dict]:
    from flwr.app import MessageType
    from flwr.common import EvaluateIns, ndarrays_to_parameters
    from flwr.compat.common import recorddict_compat as compat

    instruction = EvaluateIns(ndarrays_to_parameters(arrays), dict(config))
    content = {n: compat.evaluateins_to_recorddict(instruction, keep_input=True) for n in nodes}
    replies = _send(grid, content, MessageType.EVALUATE, group)
    results = [compat.recorddict_to_evaluateres(r.content) for r in replies]
    return [{"loss": r.loss, "n": r.num_examples, **r.metrics} for r in results]


def _wait_for_nodes(grid, count: int, timeout: float = 600.0) -> list[int]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= count:
            return nodes[:count]
        time.sleep(0.5)
    raise RuntimeError(f"Only {len(list(grid.get_node_ids()))} of {count} sites connected within {timeout:.0f} s.")


def model_config_from(state: dict, moments: dict, settings) -> dict:
    """The tabular-classification config (as ``tabular_classification.fit`` writes it) of the federated model."""
    n_numeric, cardinalities = len(state["numeric"]), [len(state["categories"][c]) + 1 for c in state["categorical"]]
    label_names = moments["label_names"]
    return {
        "task": "tabular-classification", "network": "tabular_mlp", "class_weight": None,
        "network_kwargs": {"n_numeric": n_numeric, "cardinalities": cardinalities, "num_classes": len(label_names)},
        "input_width": 2 * n_numeric + len(cardinalities), "label_names": label_names, "classes": moments["classes"],
        "target": moments["target"], "preprocessing": state,
        "layout": {"n_numeric": n_numeric, "cardinalities": cardinalities,
                   "features": [*state["numeric"], *(f"{n}_missing" for n in state["numeric"]), *state["categorical"]]},
        "explain_baseline": sites_lib.baseline_row(state),
    }  # fmt: skip


def _weighted_mean(results: list[tuple[int, dict]]) -> dict:
    total = sum(n for n, _ in results)
    names = {k for _, m in results for k, v in m.items() if isinstance(v, (int, float))}
    return {k: sum(n * float(m[k]) for n, m in results if k in m) / total for k in names}


def _pooled_validation(results: list[tuple[int, dict]]) -> dict:
    """The sites' validation results -> pooled AUROC from their probability histograms."""
    reports = [{"histograms": json.loads(str(m["histograms"]))} for _, m in results if "histograms" in m]
    return {"val_auroc": histogram_auroc(reports)} if reports else {}


def _strategy(settings, initial: list[np.ndarray], model_config: str, n_sites: int, keep):
    from flwr.common import ndarrays_to_parameters
    from flwr.server import strategy as strategies

    def fit_config(server_round: int) -> dict:
        return {"model_config": model_config, "local_epochs": settings.local_epochs, "batch_size": settings.batch_size,
                "learning_rate": settings.learning_rate, "weight_decay": settings.weight_decay,
                "seed": settings.seed + 1000 * server_round,
                "batch_norm": getattr(settings, "batch_norm", "batch")}  # fmt: skip

    common = dict(fraction_fit=1.0, fraction_evaluate=1.0, min_fit_clients=n_sites, min_evaluate_clients=n_sites,
                  min_available_clients=n_sites, initial_parameters=ndarrays_to_parameters(initial),
                  on_fit_config_fn=fit_config, on_evaluate_config_fn=lambda _: {"model_config": model_config},
                  evaluate_fn=keep, fit_metrics_aggregation_fn=_weighted_mean,
                  evaluate_metrics_aggregation_fn=_pooled_validation)  # fmt: skip
    if settings.strategy == "fedprox":
        strategy = strategies.FedProx(proximal_mu=settings.proximal_mu, **common)
    elif getattr(settings, "server_momentum", 0.0) > 0:  # FedAvgM: momentum on the averaged update
        strategy = strategies.FedAvgM(server_learning_rate=1.0, server_momentum=settings.server_momentum, **common)
    else:
        strategy = strategies.FedAvg(**common)
    if settings.dp_noise_multiplier > 0:
        strategy = strategies.DifferentialPrivacyClientSideFixedClipping(
            strategy, noise_multiplier=settings.dp_noise_multiplier, clipping_norm=settings.dp_clipping_norm,
            num_sampled_clients=n_sites)  # fmt: skip
    return strategy


def histogram_auroc(reports: list[dict]) -> float | None:
    """AUROC of the last class from the sites' summed probability histograms (ties within a bin count one half)."""
    negatives = np.sum([r["histograms"][0] for r in reports], axis=0).astype(float)  # (SCORE_BINS,)
    positives = np.sum([r["histograms"][-1] for r in reports], axis=0).astype(float)
    below = np.concatenate([[0.0], np.cumsum(negatives)[:-1]])  # negatives in lower bins
    pairs = negatives.sum() * positives.sum()
    return float((positives * (below + 0.5 * negatives)).sum() / pairs) if pairs else None


def pooled_test_metrics(reports: list[dict]) -> dict:
    """Pooled test metrics from the sites' reports: AUROC from summed probability histograms, accuracy and Brier
    score from summed counts."""
    auroc = histogram_auroc(reports)
    n = sum(r["metrics"]["n_samples"] for r in reports)
    return {"auroc": auroc, "n_samples": int(n), "accuracy": sum(r["correct"] for r in reports) / n,
            "brier": sum(r["brier_sum"] for r in reports) / n, "auroc_method": f"{SCORE_BINS}-bin probability histograms"}


def run_federation(grid, plan: ServerPlan) -> None:
    """The ServerApp's main (see the module docstring); results go to ``plan.results``."""
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

    from medai.tasks.tabular_classification import build_model

    settings, started = plan.settings, time.perf_counter()
    nodes = _wait_for_nodes(grid, plan.expected_sites)
    moments_by_site = {p["site"]: json.loads(p["summary"]) for p in _query(grid, nodes, {"stage": "moments"}, "statistics")}
    moments = sites_lib.combine_moments(list(moments_by_site.values()))
    edges = sites_lib.histogram_edges(moments)
    histograms = [json.loads(p["summary"]) for p in _query(grid, nodes, {"stage": "histograms", "edges": json.dumps(edges)}, "histograms")]
    state = sites_lib.preprocessing_state(moments, sites_lib.combine_histograms(histograms), edges)
    config = model_config_from(state, moments, settings)
    torch.manual_seed(settings.seed)
    initial = get_arrays(build_model(config))
    rounds: dict[int, list[np.ndarray]] = {}

    def keep(server_round, arrays, _config):  # Flower's centralised-evaluation hook: keep each round's weights
        rounds[server_round] = [np.array(a, copy=True) for a in arrays]
        return None

    model_config = json.dumps(config)
    strategy = _strategy(settings, initial, model_config, len(nodes), keep)
    from flwr.app import Context, RecordDict

    context = LegacyContext(Context(0, 0, {}, RecordDict(), {}), ServerConfig(num_rounds=settings.rounds), strategy)
    fit_workflow = None
    if settings.secure_aggregation:
        fit_workflow = SecAggPlusWorkflow(num_shares=len(nodes), reconstruction_threshold=max(2, len(nodes) - 1),
                                          clipping_range=settings.secagg_clipping_range)
    DefaultWorkflow(fit_workflow=fit_workflow)(grid, context)
    val_losses = dict(context.history.losses_distributed)
    val_aurocs = dict(context.history.metrics_distributed.get("val_auroc", []))
    if settings.monitor == "auroc" and val_aurocs:  # as medai's Trainer: the first round with the best AUROC
        best = max(sorted(val_aurocs), key=lambda r: (val_aurocs[r] is not None, val_aurocs[r] or 0.0))
    else:
        best = min(val_losses, key=val_losses.get)
    arrays = rounds[best]
    calibration = _evaluate(grid, nodes, arrays, {"model_config": model_config, "stage": "calibrate"}, "calibrate")
    nll = np.sum([json.loads(r["nll_sums"]) for r in calibration], axis=0)
    temperature = float(TEMPERATURES[int(np.argmin(nll))])
    test = _evaluate(grid, nodes, arrays, {"model_config": model_config, "stage": "test", "temperature": temperature}, "test")
    reports = {r["site"]: json.loads(r["report"]) for r in test}
    plan.results = {
        "config": config, "arrays": arrays, "best_round": best, "temperature": temperature,
        "val_loss_per_round": {int(k): float(v) for k, v in val_losses.items()},
        "val_auroc_per_round": {int(k): v for k, v in val_aurocs.items()},
        "train_loss_per_round": {int(r): float(v) for r, v in context.history.metrics_distributed_fit.get("train_loss", [])},
        "sites": {name: {"train_rows": moments_by_site[name]["rows"], "test": reports[name]["metrics"]} for name in reports},
        "pooled_test": pooled_test_metrics(list(reports.values())),
        "seconds": time.perf_counter() - started,
    }  # fmt: skip


def make_server_app(plan: ServerPlan):
    """A Flower ServerApp running :func:`run_federation` with ``plan``."""
    from flwr.server import ServerApp

    app = ServerApp()

    @app.main()
    def main(grid, context) -> None:
        run_federation(grid, plan)

    return app


class InProcessGrid:
    """A ``flwr.serverapp.Grid`` delivering messages to a ClientApp in this process (one Context per node).

    Made as a subclass of Flower's Grid at construction (Flower is an optional import).
    """

    def __new__(cls, client_app, node_configs: list[dict]):
        from flwr.app import Context, RecordDict
        from flwr.common import serde
        from flwr.serverapp import Grid
        from flwr.supercore.run import Run

        class _Grid(Grid):
            def __init__(self):
                from flwr.common.constant import SUPERLINK_NODE_ID
                from flwr.supercore.task_identity import TaskIdentity

                self._run = Run.create_empty(run_id=1)
                TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, SUPERLINK_NODE_ID  # as Flower's simulation sets it
                self.contexts = {i + 1: Context(1, i + 1, dict(c), RecordDict(), {}) for i, c in enumerate(node_configs)}
                self.replies: dict[str, object] = {}
                self.traffic = {"messages": 0, "bytes_to_sites": 0, "bytes_from_sites": 0}
                self._lock = threading.Lock()

            def set_run(self, run):
                self._run = run

            @property
            def run(self):
                return self._run

            def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):
                from flwr.app import Message

                return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

            def get_node_ids(self):
                return list(self.contexts)

            def _wire(self, content, direction: str):
                proto = serde.recorddict_to_proto(content)
                self.traffic[direction] += proto.ByteSize()
                return serde.recorddict_from_proto(proto)

            def push_messages(self, messages):
                from flwr.app import Message

                ids = []
                for message in messages:
                    message.metadata.__dict__["_message_id"] = str(uuid.uuid4())
                    message.metadata.__dict__["_run_id"] = self._run.run_id
                    with self._lock:
                        message.content = self._wire(message.content, "bytes_to_sites")
                        self.traffic["messages"] += 1
                    reply = client_app(message, self.contexts[message.metadata.dst_node_id])
                    if not reply.has_error():
                        with self._lock:
                            reply = Message(self._wire(reply.content, "bytes_from_sites"), reply_to=message)
                    self.replies[message.metadata.message_id] = reply
                    ids.append(message.metadata.message_id)
                return ids

            def pull_messages(self, message_ids):
                return [self.replies.pop(i) for i in list(message_ids) if i in self.replies]

            def send_and_receive(self, messages, *, timeout=None):
                return self.pull_messages(self.push_messages(messages))

        return _Grid()
