"""Differentially private training with Opacus for any model the Trainer fits.

``TrainerConfig(privacy={"epsilon": 8.0})`` (or ``medai train ... --dp-epsilon 8``) trains with DP-SGD (here DP-AdamW):
every step draws a Poisson sample of the training split (each record with probability q = 1 / steps-per-epoch),
clips each record's gradient to ``max_grad_norm``, adds Gaussian noise whose multiplier Opacus derives from the
target (epsilon, delta), the sampling rate and the epochs (``PrivacyEngine.make_private_with_epsilon``), and counts
the budget actually spent with Opacus' RDP accountant (``make_private_with_epsilon``'s steps; its noise search
runs once, over the accountant's integer orders, see ``noise_multiplier``). Layers that mix records within a batch (BatchNorm) are
replaced by GroupNorm through Opacus' own fixers (``ModuleValidator.FIXERS``), in place, and listed in the report
so that ``load_bundle`` rebuilds the same architecture without Opacus. Recurrent layers (nn.LSTM / nn.GRU / nn.RNN,
medai's GRU-D) are swapped for Opacus-compatible versions with the same state-dict names for training only and put
back, with the trained weights, when the run ends.

What the guarantee covers, at task level (``train_private``): the network's weights with respect to the records of
the training split. It does not cover the validation split, which selects the best epoch and fits the calibration
temperature without noise, nor the preprocessing statistics fitted on the training split (image channel mean and
standard deviation; per-column median, mean, standard deviation and category list of a table), which are computed
without noise. Hyperparameters chosen by looking at validation results are not accounted for either.
"""

from __future__ import annotations

import functools
import itertools
import math
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from medai.errors import InvalidInputError, require

SUPPORTED_TASKS = ("image-classification", "tabular-classification", "mortality", "ecg-classification")
ACCOUNTANT = "rdp"
_ACTIVE: ContextVar[dict | None] = ContextVar("medai_private_training", default=None)


@dataclass
class PrivacySettings:
    """The privacy budget of one training run (the fields of ``TrainerConfig.privacy``)."""

    epsilon: float  # target epsilon of the whole run
    delta: float | None = None  # target delta; None: min(1e-5, 1 / (10 * n_train))
    max_grad_norm: float = 1.0  # bound C on each record's gradient norm (clipping)

    def validate(self, n_train: int) -> PrivacySettings:
        if not (isinstance(self.epsilon, (int, float)) and math.isfinite(self.epsilon) and self.epsilon > 0):
            raise InvalidInputError(f"The 'dp_epsilon' parameter must be a finite number > 0; got {self.epsilon!r}.")
        if self.delta is not None and not 0 < self.delta < 1 / n_train:
            raise InvalidInputError(
                f"The 'dp_delta' parameter must lie in (0, 1/n_train) = (0, {1 / n_train:.2g}) for {n_train} training "
                f"records (a larger delta allows leaking a whole record); got {self.delta!r}. Try {default_delta(n_train):.2g}."
            )
        if not self.max_grad_norm > 0:
            raise InvalidInputError(f"The 'dp_max_grad_norm' parameter must be > 0; got {self.max_grad_norm!r}.")
        return self

    @classmethod
    def from_value(cls, value: dict | PrivacySettings) -> PrivacySettings:
        return value if isinstance(value, PrivacySettings) else cls(**value)


def default_delta(n_train: int) -> float:
    """The default delta: 1e-5, or 1 / (10 * n_train) when that is smaller."""
    return min(1e-5, 1.0 / (10 * n_train))


# -- layers Opacus cannot train ------------------------------------------------------------------------------------


def make_private_compatible(model: nn.Module) -> list[dict]:
    """Replace, in place, every layer Opacus cannot compute per-record gradients for; return what was replaced.

    BatchNorm2d/3d become GroupNorm with Opacus' fixer (min(32, channels) groups). BatchNorm1d becomes GroupNorm with
    one group (layer normalisation) instead: on (batch, features) rows Opacus' min(32, features) groups hold one value
    each, which normalisation sets to zero, and an MLP so fixed cannot learn. In-place activations become
    out-of-place (Opacus' backward hooks cannot see through in-place views). nn.LSTM / nn.GRU / nn.RNN become Opacus'
    DPLSTM / DPGRU / DPRNN and medai's GRU-D a version of it built from layers Opacus handles (``_DPGRUD``), all with
    the same state-dict names, for training only: ``PrivateTraining.close`` puts the original layers back with the
    trained weights (``"restored": True``). Other layers Opacus cannot handle (attention, recurrent cells) are refused.

    Returns:
        One dict per replaced layer: ``{"layer", "from", "to", "num_groups", "num_channels", "eps", "affine"}`` for a
        normalisation layer, ``{"layer", "from", "to", "restored": True}`` for a recurrent one.
    """
    from opacus.validators import ModuleValidator

    replaced = _replace_recurrent(model)
    for name, module in list(model.named_modules()):
        if getattr(module, "inplace", False) is True:
            module.inplace = False
        fixer = ModuleValidator.FIXERS.get(type(module))
        if fixer is None or not name:
            continue
        new = nn.GroupNorm(1, module.num_features, module.eps, module.affine) if type(module) is nn.BatchNorm1d else fixer(module)
        if not isinstance(new, nn.GroupNorm):
            raise InvalidInputError(
                f"Layer {name} ({type(module).__name__}) cannot be trained with differential privacy in medai yet; "
                "use a network of convolutions, linear, normalisation and LSTM/GRU layers."
            )
        reference = next(itertools.chain(module.parameters(), module.buffers()), None)  # none: no affine, no running stats
        if reference is not None:
            new.to(reference.device)
        _set_submodule(model, name, new)
        replaced.append({"layer": name, "from": type(module).__name__, "to": "GroupNorm", "num_groups": new.num_groups,
                         "num_channels": new.num_channels, "eps": new.eps, "affine": new.affine})  # fmt: skip
    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        raise InvalidInputError(f"The model cannot be trained with differential privacy: {errors[0]}")
    return replaced


def apply_replacements(model: nn.Module, replaced: list[dict]) -> nn.Module:
    """Rebuild the layers ``make_private_compatible`` replaced (no Opacus needed); used when loading a bundle."""
    for entry in replaced:
        if entry.get("restored"):  # a recurrent layer swapped for Opacus' version during training only
            continue
        layer = nn.GroupNorm(entry["num_groups"], entry["num_channels"], eps=entry["eps"], affine=entry["affine"])
        _set_submodule(model, entry["layer"], layer)
    return model


def _replace_recurrent(model: nn.Module) -> list[dict]:
    """Swap recurrent layers for versions Opacus computes per-record gradients of (same state-dict names)."""
    from opacus.layers import DPGRU, DPLSTM, DPRNN

    from medai.models.recurrent import GRUD

    classes = {nn.LSTM: DPLSTM, nn.GRU: DPGRU, nn.RNN: DPRNN}
    replaced = []
    for name, module in list(model.named_modules()):
        if not name:
            continue
        if type(module) in classes:
            if getattr(module, "proj_size", 0):
                raise InvalidInputError(f"Layer {name} (LSTM with proj_size) cannot be trained with differential privacy.")
            extra = {"nonlinearity": module.nonlinearity} if type(module) is nn.RNN else {}
            new = classes[type(module)](module.input_size, module.hidden_size, module.num_layers, bias=module.bias,
                                        batch_first=module.batch_first, dropout=module.dropout,
                                        bidirectional=module.bidirectional, **extra)  # fmt: skip
            # Opacus' hook drops the submodules' own names from a copy that only a top-level call returns: drop them
            # in place, at any depth
            new._state_dict_hooks.clear()
            new.register_state_dict_post_hook(_drop_opacus_names)
            new.register_load_state_dict_pre_hook(_add_opacus_names)
        elif type(module) is GRUD:
            new = _DPGRUD(module)
        else:
            continue
        new.load_state_dict(module.state_dict())
        new.to(next(module.parameters()).device).train(module.training)
        new._medai_original = (module,)  # a tuple keeps the original out of the module tree
        _set_submodule(model, name, new)
        replaced.append({"layer": name, "from": type(module).__name__, "to": type(new).__name__.lstrip("_"), "restored": True})
    return replaced


def restore_recurrent(model: nn.Module) -> None:
    """Put back the layers ``_replace_recurrent`` swapped, with the weights they were trained to."""
    for name, module in list(model.named_modules()):
        original = getattr(module, "_medai_original", None)
        if original is None or not name:
            continue
        (original,) = original
        original.load_state_dict(module.state_dict())
        original.train(module.training)
        _set_submodule(model, name, original)


class _FeatureDecay(nn.Module):
    """``delta * weight + bias`` per feature (GRU-D's input decay rate), with a per-record gradient Opacus can use."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.weight, self.bias = nn.Parameter(weight.detach().clone()), nn.Parameter(bias.detach().clone())

    def forward(self, delta: torch.Tensor) -> torch.Tensor:  # (batch, time, features)
        return delta * self.weight + self.bias


def _feature_decay_grad_sample(layer: _FeatureDecay, activations: list[torch.Tensor], backprops: torch.Tensor) -> dict:
    """Per-record gradients of ``_FeatureDecay``: sums over time of delta * backprop and of backprop, (batch, features)."""
    delta = activations[0]
    return {layer.weight: (delta * backprops).sum(1), layer.bias: backprops.sum(1)}


# _DPGRUD's parameter names -> GRU-D's (its state dict uses GRU-D's, so checkpoints and best states load in both)
_GRUD_NAMES = {"input_decay.weight": "input_decay_weight", "input_decay.bias": "input_decay_bias",
               "ih.weight": "cell.weight_ih", "ih.bias": "cell.bias_ih", "hh.weight": "cell.weight_hh",
               "hh.bias": "cell.bias_hh"}  # fmt: skip


class _DPGRUD(nn.Module):
    """GRU-D (``medai.models.recurrent.GRUD``) with every parameter in a layer Opacus computes per-record gradients of.

    The same equations; the GRU cell's input and recurrent projections are ``nn.Linear`` layers (the recurrent one
    called once per time step: Opacus accumulates its per-record gradients over the calls), the input decay rate
    a ``_FeatureDecay`` layer with its own per-record gradient. Its state dict carries GRU-D's names.
    """

    def __init__(self, grud: nn.Module):
        super().__init__()
        from opacus.grad_sample import GradSampleModule

        GradSampleModule.GRAD_SAMPLERS[_FeatureDecay] = _feature_decay_grad_sample
        self.name, self.n_features, self.n_outputs, self.n_static = grud.name, grud.n_features, grud.n_outputs, grud.n_static
        cell = grud.cell
        self.hidden_size = cell.hidden_size
        self.input_decay = _FeatureDecay(grud.input_decay_weight, grud.input_decay_bias)
        self.hidden_decay = grud.hidden_decay
        self.ih = nn.Linear(cell.input_size, 3 * cell.hidden_size)
        self.hh = nn.Linear(cell.hidden_size, 3 * cell.hidden_size)
        self.head = grud.head
        self.register_state_dict_post_hook(_grud_state_dict)
        self.register_load_state_dict_pre_hook(_grud_load_state_dict)

    def forward(self, series, mask=None, delta=None, static=None) -> torch.Tensor:
        import torch.nn.functional as F

        from medai.models.series import series_inputs

        inputs = series_inputs(self.name, self.n_features, series, mask, delta, use_mask=True, use_delta=True)
        series, mask, delta = inputs.split(self.n_features, dim=-1)  # (batch, time, features) each
        decay = torch.exp(-F.relu(self.input_decay(delta)))
        imputed = torch.cat([series * (mask + (1 - mask) * decay), mask], dim=-1)  # (batch, time, 2 * features)
        hidden_decay = torch.exp(-F.relu(self.hidden_decay(delta)))  # (batch, time, hidden)
        projected = self.ih(imputed)  # (batch, time, 3 * hidden)
        state = series.new_zeros(len(series), self.hidden_size)
        for step_input, step_decay in zip(projected.unbind(1), hidden_decay.unbind(1)):
            state = state * step_decay
            input_reset, input_update, input_new = step_input.chunk(3, dim=1)
            state_reset, state_update, state_new = self.hh(state).chunk(3, dim=1)
            reset = torch.sigmoid(input_reset + state_reset)
            update = torch.sigmoid(input_update + state_update)
            new = torch.tanh(input_new + reset * state_new)
            state = new + update * (state - new)
        return self.head(state, static)  # (batch, n_outputs)


def _drop_opacus_names(module, state_dict, prefix, local_metadata) -> None:
    for old in module.old_to_new:
        state_dict.pop(prefix + old, None)


def _add_opacus_names(module, state_dict, prefix, *args) -> None:
    for old, new in module.old_to_new.items():
        if prefix + new in state_dict:
            state_dict[prefix + old] = state_dict[prefix + new]


def _grud_state_dict(module, state_dict, prefix, local_metadata) -> None:
    for new, old in _GRUD_NAMES.items():
        if prefix + new in state_dict:
            state_dict[prefix + old] = state_dict.pop(prefix + new)


def _grud_load_state_dict(module, state_dict, prefix, *args) -> None:
    for new, old in _GRUD_NAMES.items():
        if prefix + old in state_dict:
            state_dict[prefix + new] = state_dict.pop(prefix + old)


def _set_submodule(root: nn.Module, name: str, new: nn.Module) -> None:
    *parents, last = name.split(".")
    parent = root
    for part in parents:
        parent = parent._modules[part]
    parent._modules[last] = new


# -- one private training run (used by the Trainer) ------------------------------------------------------------------


class PrivateTraining:
    """DP-SGD for one ``Trainer.fit``: makes the model compatible, derives the noise, samples batches, accounts.

    Args:
        settings: a PrivacySettings or its dict.
        model: the model to train; incompatible layers are replaced in place (before its optimizer is built).
        n_train: records in the training split.
        batch_size: the expected batch size (Poisson sampling: batches vary around it).
        epochs: planned epochs; the noise is derived so that all of them together spend ``epsilon``.
    """

    def __init__(self, settings: dict | PrivacySettings, model: nn.Module, n_train: int, batch_size: int, epochs: int):
        require("opacus", "privacy")
        self.settings = PrivacySettings.from_value(settings).validate(n_train)
        self.delta = self.settings.delta if self.settings.delta is not None else default_delta(n_train)
        self.n_train, self.epochs = n_train, epochs
        self.batch_size = min(batch_size, n_train)
        self.steps_per_epoch = math.ceil(n_train / self.batch_size)
        self.sample_rate = 1.0 / self.steps_per_epoch  # what make_private_with_epsilon derives from the data loader
        self.noise_multiplier = noise_multiplier(self.settings.epsilon, self.delta, self.sample_rate, epochs)
        if getattr(model, "class_weight", None) is not None:
            raise InvalidInputError(
                "Class weights cannot be used with differential privacy (a weighted mean makes each record's gradient "
                "depend on the others in its batch); train with class_weight 'none'."
            )
        self.replaced = make_private_compatible(model)
        self.channels_last_disabled = bool(getattr(model, "channels_last", False))
        if self.channels_last_disabled:  # Opacus' per-record convolution gradients come out wrong for channels-last tensors
            model.channels_last = False
            model.to(memory_format=torch.contiguous_format)
        self.model = model
        self.engine = self.module = self.optimizer = self.loader = None

    def attach(self, optimizer: torch.optim.Optimizer, epochs_done: int = 0) -> tuple[nn.Module, torch.optim.Optimizer]:
        """Wrap the model and optimizer with Opacus; returns (module to train, optimizer to step)."""
        import warnings

        from opacus import PrivacyEngine
        from torch.utils.data import DataLoader, TensorDataset

        loader = DataLoader(TensorDataset(torch.arange(self.n_train)), batch_size=self.batch_size)
        self.engine = PrivacyEngine(accountant=ACCOUNTANT)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Ss]ecure RNG.*")
            self.module, self.optimizer, self.loader = self.engine.make_private(  # make_private_with_epsilon, sigma found once
                module=self.model, optimizer=optimizer, data_loader=loader, noise_multiplier=self.noise_multiplier,
                max_grad_norm=self.settings.max_grad_norm, poisson_sampling=True,
            )  # fmt: skip
        if epochs_done:  # resumed from a checkpoint: the steps already taken were spent too
            self.engine.accountant.history.append((self.optimizer.noise_multiplier, self.sample_rate, epochs_done * len(self.loader)))
        return self.module, self.optimizer

    def batches(self) -> Iterator[torch.Tensor]:
        """One epoch of Poisson-sampled index batches (int64, shape (batch,), possibly empty), from torch's RNG."""
        for (index,) in self.loader:
            yield index.long()

    def spent(self) -> float:
        """The epsilon spent so far (Opacus' RDP accountant at this run's delta)."""
        return float(self.engine.get_epsilon(self.delta)) if self.engine and len(self.engine.accountant) else 0.0

    def close(self) -> dict:
        """Remove Opacus' hooks from the model and return the privacy report of the run."""
        steps = sum(step for _, _, step in self.engine.accountant.history) if self.engine else 0
        report = {
            "mechanism": "DP-SGD (Opacus, Poisson sampling, per-record clipping, Gaussian noise)",
            "accountant": ACCOUNTANT,
            "epsilon": self.spent(),
            "delta": self.delta,
            "target_epsilon": float(self.settings.epsilon),
            "noise_multiplier": float(self.noise_multiplier),
            "max_grad_norm": float(self.settings.max_grad_norm),
            "sample_rate": self.sample_rate,
            "expected_batch_size": self.n_train * self.sample_rate,
            "steps": int(steps),
            "epochs_planned": self.epochs,
            "n_train": self.n_train,
            "replaced_layers": self.replaced,
            "channels_last_disabled_for_training": self.channels_last_disabled,
            "opacus_version": _opacus_version(),
        }
        if self.module is not None:
            self.module._close()
        restore_recurrent(self.model)
        return report


@functools.lru_cache(maxsize=256)
def noise_multiplier(epsilon: float, delta: float, sample_rate: float, epochs: int) -> float:
    """The noise multiplier for (epsilon, delta) after ``epochs`` at ``sample_rate``; a clear error if unreachable.

    Opacus' own search (``get_noise_multiplier``, which ``make_private_with_epsilon`` calls) over the integer orders
    of its RDP accountant only: its fractional orders take seconds per evaluation at small noise, making the search
    20 s or more. Fewer orders can only overstate epsilon, so the noise found spends at most ``epsilon`` by the full
    accountant (7.88 for a target of 8 at sampling rate 1/9 over 30 epochs; the report gives what was spent).
    """
    from opacus.accountants.utils import get_noise_multiplier

    try:
        return float(get_noise_multiplier(target_epsilon=epsilon, target_delta=delta, sample_rate=sample_rate,
                                          epochs=epochs, accountant=ACCOUNTANT, alphas=SEARCH_ORDERS))  # fmt: skip
    except ValueError:
        raise _unreachable(epsilon, delta, sample_rate, epochs, epsilon_spent(MAX_NOISE, sample_rate, round(epochs / sample_rate), delta)) from None


SEARCH_ORDERS = [float(order) for order in range(2, 64) if order != 11]  # the integer orders among Opacus' defaults
MAX_NOISE = 1e6  # Opacus' bound on the noise multiplier


def _unreachable(epsilon: float, delta: float, sample_rate: float, epochs: int, floor: float) -> InvalidInputError:
    return InvalidInputError(
            f"The privacy budget epsilon = {epsilon:g} (delta = {delta:.2g}) cannot be reached: even the largest noise "
            f"Opacus allows spends epsilon = {floor:.3g} over {epochs} epochs at sampling rate {sample_rate:.3g}. "
            f"Raise --dp-epsilon above {floor:.3g} (values of 1 to 10 are usual), or raise --dp-delta."
    )


def epsilon_spent(noise: float, sample_rate: float, steps: int, delta: float) -> float:
    """Epsilon of ``steps`` Poisson-sampled Gaussian steps by Opacus' RDP accountant, computed independently."""
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(noise, sample_rate, steps)]
    return float(accountant.get_epsilon(delta))


def _opacus_version() -> str:
    import opacus

    return getattr(opacus, "__version__", "unknown")


# -- the task level: `medai train --dp-epsilon` ---------------------------------------------------------------------


@contextmanager
def private_training(settings: dict | PrivacySettings) -> Iterator[None]:
    """Within this block every Trainer that fits a Classifier trains with differential privacy.

    Lets a task's own ``train`` run unchanged; autoencoders and other non-classifier models fitted on the way are
    left alone (``train_private`` removes them from the bundle, as they are not private).
    """
    token = _ACTIVE.set(asdict(settings) if isinstance(settings, PrivacySettings) else dict(settings))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def active_for(model: nn.Module) -> dict | None:
    """The privacy settings of the enclosing ``private_training`` block if ``model`` is a classifier, else None."""
    from medai.models.classifier import Classifier
    from medai.models.series import SeriesModel

    settings = _ACTIVE.get()
    series = isinstance(model, SeriesModel) and model.task_type != "regression"
    return settings if settings is not None and (isinstance(model, Classifier) or series) else None


def train_private(task: str, data, out, privacy: dict | PrivacySettings, **settings):
    """Train a task's model with differential privacy and save it as a bundle whose config and card state the budget.

    One network is trained (``ensemble`` is 1: k members trained on the same records would spend k times epsilon),
    image out-of-distribution detection is off, and a table's autoencoder and a series task's out-of-distribution
    statistics are left out of the bundle (all fitted on the training records without noise). Mortality trains one
    GRU-D by default (or the one member asked for); ecg-classification one network on an 80/20 split (no cross-fitting).

    Args:
        task: ``image-classification``, ``tabular-classification`` (MLP), ``mortality`` or ``ecg-classification``.
        data, out, settings: as for ``medai.api.train``.
        privacy: a PrivacySettings or its dict (``epsilon``, ``delta``, ``max_grad_norm``).

    Returns:
        The saved ModelBundle; ``bundle.config["privacy"]["dp"]`` holds the epsilon spent.
    """
    from medai import api
    from medai.privacy.audit import update_bundle

    privacy = asdict(PrivacySettings.from_value(privacy))
    settings = _private_settings(task, settings)
    out = Path(out)
    staging = out.with_name(f".{out.name}.dp-staging")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with private_training(privacy):
            bundle = api.train(task, data, staging, **settings)
        if not bundle.metrics:  # a non-zero rank under torchrun
            return bundle
        report = bundle.metrics["fit"]["members"][0]["privacy"]
        if bundle.config.get("network") == "series_ensemble":  # the member was trained as the network of its own model
            report = {**report, "replaced_layers": [{**r, "layer": _member_path(r["layer"])} for r in report["replaced_layers"]]}
        dp = {**report, "covers": COVERAGE, "ensemble": "one network trained under DP (ensemble = 1)"}
        config = {**bundle.config, "privacy": {**bundle.config.get("privacy", {}), "dp": dp}}
        dropped = ()
        if "ood" in config:
            config.pop("ood")
            dropped = ("ood/",)
        return update_bundle(bundle, out=out, config=config, card_sections={"Differential privacy": card_section(dp)}, drop=dropped)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _member_path(layer: str) -> str:
    """A layer's name in a series ensemble's bundle model from its name in the one-member model trained under DP."""
    head, _, rest = layer.partition(".")
    return "network.members.0" + (f".{rest}" if rest else "") if head == "network" else layer


COVERAGE = {
    "training_records": "the network weights are (epsilon, delta)-DP with respect to each training record",
    "validation_records": "not covered: they select the best epoch and fit the calibration temperature without noise",
    "preprocessing": "not covered: statistics of the training split (image mean/std; table medians, means, standard "
    "deviations, category lists; a series' per-variable means and standard deviations) are fitted without noise",
    "hyperparameters": "not covered: choices made by looking at validation results are not accounted for",
}


def _private_settings(task: str, settings: dict) -> dict:
    from medai.tasks import get_task

    if task not in SUPPORTED_TASKS:
        why = (" (forecasting's loss averages over the observed targets of the whole batch, so one record's gradient "
               "depends on the others)") if task == "forecasting" else ""
        raise InvalidInputError(
            f"Differential privacy is available for the tasks {', '.join(SUPPORTED_TASKS)}; got {task!r}{why}."
        )
    get_task(task)
    if task == "mortality":
        return _mortality_settings(settings)
    if settings.get("ensemble", 1) != 1:
        raise InvalidInputError(
            f"--ensemble {settings['ensemble']} with differential privacy would spend {settings['ensemble']} times epsilon "
            "on the same records; medai trains one network under DP (leave --ensemble out)."
        )
    if settings.get("model") in ("logistic_regression", "gradient_boosting"):
        raise InvalidInputError(f"The baseline {settings['model']!r} is not trained by gradient steps; use tabular_mlp with DP.")
    if settings.get("ood"):
        raise InvalidInputError("Out-of-distribution detection fits an autoencoder on the training images without noise; it is off under DP.")
    extra = {"ood": False} if task == "image-classification" else {}
    return {**settings, "ensemble": 1, **extra}


def _mortality_settings(settings: dict) -> dict:
    """One network under DP: one GRU-D by default, or the one summary MLP or --model network asked for."""
    if settings.get("ensemble") not in (None, 1):
        raise InvalidInputError(
            f"--ensemble {settings['ensemble']} with differential privacy would spend {settings['ensemble']} times epsilon "
            "on the same records; medai trains one network under DP (leave --ensemble out)."
        )
    if settings.get("model", "ensemble") != "ensemble":
        return {**settings, "ensemble": 1}
    grud, summary = settings.get("grud_members"), settings.get("summary_members")
    if grud is None and summary is None:
        grud, summary = 1, 0
    grud = 1 - summary if grud is None else grud
    summary = 1 - grud if summary is None else summary
    if grud + summary != 1:
        raise InvalidInputError(
            f"{grud} GRU-D and {summary} summary members with differential privacy would spend {grud + summary} times "
            "epsilon on the same records; medai trains one network under DP (grud_members + summary_members = 1)."
        )
    return {**settings, "ensemble": None, "grud_members": grud, "summary_members": summary}


def card_section(dp: dict) -> str:
    """Markdown of the model card's differential-privacy section."""
    replaced = ", ".join(f"{r['layer']} ({r['from']} -> {r['to']}" + (f", for training only: the bundle holds the {r['from']} "
                         "with the trained weights)" if r.get("restored") else ")") for r in dp["replaced_layers"]) or "none"
    return "\n".join([
        f"Trained with DP-SGD (Opacus {dp['opacus_version']}): **epsilon = {dp['epsilon']:.3f}** spent "
        f"(target {dp['target_epsilon']:g}), delta = {dp['delta']:.2g}, by the {dp['accountant'].upper()} accountant.",
        f"Noise multiplier {dp['noise_multiplier']:.3f}, per-record gradient norm clipped to {dp['max_grad_norm']:g}, "
        f"Poisson sampling at rate {dp['sample_rate']:.4f} (expected batch {dp['expected_batch_size']:.1f}), "
        f"{dp['steps']} steps over {dp['n_train']} training records; {dp['ensemble']}.",
        f"Layers replaced for DP: {replaced}.",
        "",
        *(f"- {k.replace('_', ' ')}: {v}." for k, v in dp["covers"].items()),
    ])  # fmt: skip
