"""One training loop for every model family.

A model takes a batch dict and returns ``{"logits", "loss"?}``; the Trainer needs nothing else from it.
The loop shuffles in-memory tensors (no per-sample Python overhead), runs a one-cycle AdamW schedule,
selects the best epoch on a validation metric, stops early on request, checkpoints every epoch (safetensors +
JSON, never pickle) and resumes exactly. Every epoch's randomness is derived from (seed, epoch, rank), so an
interrupted run that resumes gives the same result as an uninterrupted one. Under ``torchrun`` it wraps the
model in DistributedDataParallel and shards each epoch's batches across ranks.

Inputs that cannot be stacked into one tensor (molecular graphs of different sizes) come as a
:class:`CollatedDataset`: an object with ``labels``, ``__len__`` and ``collate(indices) -> batch dict``. The loop
then draws the same seeded index order and asks the dataset for each batch instead of slicing tensors; everything
else (schedule, best epoch, checkpoints, fixed-size padded inference chunks) is shared.
"""

from __future__ import annotations

import itertools
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from medai.data.dataset import Dataset
from medai.engine import state_io
from medai.engine.distributed import DistributedContext, barrier, init_distributed
from medai.errors import InvalidInputError, check_choice

BatchTransform = Callable[[dict, torch.Generator], dict]
MetricFunction = Callable[[np.ndarray, np.ndarray], dict]


@runtime_checkable
class CollatedDataset(Protocol):
    """A dataset whose batches are built on demand from sample indices (e.g. variable-size molecular graphs).

    Attributes:
        labels: array of shape (n_samples, ...) handed to ``metric_fn``, or None.
    """

    labels: np.ndarray | None

    def __len__(self) -> int: ...

    def collate(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        """The batch dict of the samples at ``indices`` (int64, shape (batch,)), ``"label"`` included if known."""
        ...


@dataclass
class TrainerConfig:
    """Training settings; every field is saved with the model."""

    max_epochs: int = 40  # upper bound on passes over the training split
    batch_size: int = 64  # global batch size (divided across DistributedDataParallel ranks)
    learning_rate: float = 2e-3  # peak learning rate of the one-cycle schedule
    weight_decay: float = 1e-4  # AdamW weight decay
    warmup_fraction: float = 0.15  # share of steps spent warming up to the peak learning rate
    patience: int | None = None  # stop after this many epochs without improvement; None runs every epoch
    monitor: str = "auroc"  # validation metric selecting the best epoch ("loss" is minimised, others maximised)
    seed: int = 0  # seeds initialisation, shuffling, augmentation and dropout
    device: str = "auto"  # "auto", "cpu", "cuda" or "cuda:N"
    num_threads: int | None = None  # CPU threads; None: all cores (divided across local ranks)
    eval_batch_size: int = 64  # inference chunk; the last chunk is padded, so outputs never depend on batch-mates
    # smaller sizes the last chunk may be padded to instead (the smallest that holds it): only sizes at which
    # batch_invariant_sizes() found the model's outputs the same as in a full chunk (less padded work)
    eval_pad_sizes: tuple[int, ...] = ()
    progress: bool = True  # show a progress bar with ETA
    privacy: dict | None = None  # differential privacy (medai.privacy.dp.PrivacySettings fields); None trains without

    def validate(self) -> TrainerConfig:
        for name in ("max_epochs", "batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"The '{name}' parameter must be an int >= 1; got {value!r}.")
        if not self.learning_rate > 0:
            raise InvalidInputError(f"The 'learning_rate' parameter must be > 0; got {self.learning_rate!r}.")
        if self.patience is not None and self.patience < 1:
            raise InvalidInputError(f"The 'patience' parameter must be >= 1 or None; got {self.patience!r}.")
        if any(not isinstance(size, int) or size < 1 for size in self.eval_pad_sizes):
            raise InvalidInputError(f"The 'eval_pad_sizes' parameter must hold ints >= 1; got {self.eval_pad_sizes!r}.")
        resolve_device(self.device)
        return self


@dataclass
class FitResult:
    """What ``Trainer.fit`` learned about the run."""

    history: list[dict] = field(default_factory=list)  # one dict of metrics per epoch
    best_epoch: int = -1  # 0-based epoch whose weights were kept
    best_score: float = float("nan")  # the monitored validation metric at best_epoch
    train_seconds: float = 0.0  # time spent in training steps (validation excluded)
    train_samples: int = 0  # samples processed in training steps (this process)
    resumed_from_epoch: int | None = None  # epochs already done when a checkpoint was resumed
    stopped_early: bool = False
    max_epochs: int = 0  # the epoch budget the run was given
    privacy: dict | None = None  # the privacy report of a differentially private run (epsilon spent, ...)

    @property
    def samples_per_second(self) -> float:
        return self.train_samples / self.train_seconds if self.train_seconds else 0.0

    def to_dict(self) -> dict:
        document = {**asdict(self), "samples_per_second": self.samples_per_second}
        if self.privacy is None:
            document.pop("privacy")
        return document


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA (the local rank's GPU under torchrun) when present, else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    if name != "cpu" and not name.startswith("cuda"):
        check_choice("device", name, ["auto", "cpu", "cuda"])
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidInputError(f"Device {name!r} was requested but CUDA is not available here; use --device cpu.")
    return torch.device(name)


class Trainer:
    """Fit, evaluate and predict any medai model.

    Args:
        config: the TrainerConfig.
        train_transform: ``f(batch, generator) -> batch`` applied to training batches only (augmentation).
        metric_fn: ``f(logits, labels) -> {name: value}`` computed on the validation split each epoch.
        checkpoint_dir: where to write a checkpoint after every epoch; an existing one is resumed.

    Examples:
        >>> import numpy as np, torch
        >>> from medai.data import Dataset, Schema
        >>> from medai.models import Classifier, NETWORKS
        >>> schema = Schema("image", "binary", ("no", "yes"), (1, 8, 8))
        >>> x = np.random.default_rng(0).random((32, 1, 8, 8), dtype=np.float32)
        >>> data = Dataset(x, np.arange(32) % 2, np.arange(32), schema)
        >>> model = Classifier(NETWORKS.create("compact_cnn", image_size=8, width=4), "image", [0.5], [0.3])
        >>> config = TrainerConfig(max_epochs=2, batch_size=8, monitor="loss", progress=False)
        >>> result = Trainer(config).fit(model, data, data)
        >>> len(result.history)
        2
    """

    def __init__(
        self,
        config: TrainerConfig | None = None,
        *,
        train_transform: BatchTransform | None = None,
        metric_fn: MetricFunction | None = None,
        checkpoint_dir: str | Path | None = None,
    ):
        self.config = (config or TrainerConfig()).validate()
        self.train_transform = train_transform
        self.metric_fn = metric_fn
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.device = resolve_device(self.config.device)
        self._data_sizes: dict[str, int] = {}  # set by fit: part of a checkpoint's fingerprint
        self.context: DistributedContext = init_distributed(self.device)
        self._set_threads()

    # -- public API -------------------------------------------------------------------------------------------

    def fit(self, model: nn.Module, train: Dataset, val: Dataset) -> FitResult:
        """Train ``model`` on ``train``, keep the weights of the best epoch on ``val``; returns a FitResult."""
        cfg, ctx = self.config, self.context
        if len(train) < 2 or len(val) < 1:
            raise InvalidInputError(f"Training needs >= 2 training and >= 1 validation samples; got {len(train)} and {len(val)}.")
        model.to(self.device)
        privacy = self._private_training(model, train)  # None unless differential privacy is on
        data = train if _collated(train) else {k: v.to(self.device) for k, v in train.tensors().items()}
        per_rank_batch = max(1, cfg.batch_size // ctx.world_size)
        per_rank_samples = len(train) // ctx.world_size
        steps_per_epoch = math.ceil(per_rank_samples / per_rank_batch)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.learning_rate, total_steps=cfg.max_epochs * steps_per_epoch, pct_start=cfg.warmup_fraction
        )
        result, best_state, bad_epochs = FitResult(max_epochs=cfg.max_epochs), None, 0
        self._data_sizes = {"train_samples": len(train), "val_samples": len(val)}  # a checkpoint resumes on the same data
        restored = self._restore(model, optimizer, scheduler)
        if restored:
            result, best_state, bad_epochs = restored
        if privacy is None:
            network = self._wrap(model)
        else:
            network, optimizer = privacy.attach(optimizer, epochs_done=len(result.history))
        bar = tqdm(
            total=(cfg.max_epochs - len(result.history)) * steps_per_epoch,
            desc="train",
            unit="step",
            disable=not (cfg.progress and ctx.is_main),
            dynamic_ncols=True,
        )
        first_epoch = cfg.max_epochs if result.stopped_early else len(result.history)
        for epoch in range(first_epoch, cfg.max_epochs):
            seconds, samples, train_loss = self._train_epoch(network, data, epoch, per_rank_batch, optimizer, scheduler, bar, privacy)
            result.train_seconds += seconds
            result.train_samples += samples
            metrics = self.evaluate(model, val)
            record = {"epoch": epoch, "train_loss": train_loss, **{f"val_{k}": v for k, v in metrics.items()}}
            result.history.append(record)
            score = self._score(metrics)
            if result.best_epoch < 0 or self._better(score, result.best_score):
                result.best_epoch, result.best_score, bad_epochs = epoch, score, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad_epochs += 1
            bar.set_postfix({"train_loss": f"{train_loss:.3f}", f"val_{cfg.monitor}": f"{score:.3f}"})
            stop = cfg.patience is not None and bad_epochs >= cfg.patience
            result.stopped_early = stop
            self._checkpoint(model, optimizer, scheduler, result, best_state, bad_epochs)
            if stop:
                break
        bar.close()
        if privacy is not None:
            result.privacy = privacy.close()
        model.load_state_dict(best_state)
        barrier(ctx)
        return result

    @torch.no_grad()
    def predict(self, model: nn.Module, dataset: Dataset) -> np.ndarray:
        """Logits for every sample, shape (n_samples, n_outputs), computed in eval mode.

        Inference runs in fixed-size chunks, the last one padded with copies of its first row: on CPU, kernels may
        sum in another order for another batch size, so a record's output would otherwise depend on how many
        records were predicted with it. With fixed chunks ``predict`` on one file gives exactly what ``evaluate``
        computed for it.
        """
        _ready(model, self.device)
        size = self.config.eval_batch_size
        if _collated(dataset):
            return self._predict_collated(model, dataset, size)
        inputs = {k: v for k, v in dataset.tensors().items() if k != "label"}
        outputs = []
        for begin in range(0, len(dataset), size):
            chunk = {k: v[begin : begin + size].to(self.device) for k, v in inputs.items()}
            count = len(next(iter(chunk.values())))
            target = self._padded_size(count, size)
            padded = {k: torch.cat([v, v[:1].expand(target - count, *v.shape[1:])]) for k, v in chunk.items()}
            outputs.append(model(padded)["logits"][:count].float().cpu())
        return torch.cat(outputs).numpy() if outputs else np.zeros((0, 0), np.float32)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, dataset: Dataset) -> dict[str, float]:
        """The model's own mean loss plus ``metric_fn(logits, labels)`` on a dataset."""
        model.to(self.device).eval()
        collated = _collated(dataset)
        tensors = None if collated else dataset.tensors()
        size = self.config.eval_batch_size
        outputs, loss_sum = [], 0.0
        for begin in range(0, len(dataset), size):
            if collated:
                index = np.arange(begin, min(begin + size, len(dataset)))
                batch = {k: v.to(self.device) for k, v in dataset.collate(index).items()}
            else:
                batch = {k: v[begin : begin + size].to(self.device) for k, v in tensors.items()}
            out = model(batch)
            outputs.append(out["logits"].float().cpu())
            if "loss" in out:
                loss_sum += float(out["loss"]) * (len(index) if collated else len(next(iter(batch.values()))))
        metrics = {"loss": loss_sum / max(len(dataset), 1)}
        if self.metric_fn is not None:
            metrics.update(self.metric_fn(torch.cat(outputs).numpy(), dataset.labels))
        return metrics

    # -- internals --------------------------------------------------------------------------------------------

    def _padded_size(self, count: int, size: int) -> int:
        """The batch size a chunk of ``count`` records is padded to (see ``TrainerConfig.eval_pad_sizes``)."""
        return min([s for s in self.config.eval_pad_sizes if count <= s < size] + [size])

    def _predict_collated(self, model: nn.Module, dataset: CollatedDataset, size: int) -> np.ndarray:
        """``predict`` for a CollatedDataset: fixed-size chunks, the last padded with its first sample."""
        outputs = []
        for begin in range(0, len(dataset), size):
            index = np.arange(begin, min(begin + size, len(dataset)))
            count = len(index)
            padded = np.concatenate([index, np.full(self._padded_size(count, size) - count, index[0])])
            batch = {k: v.to(self.device) for k, v in dataset.collate(padded).items() if k != "label"}
            outputs.append(model(batch)["logits"][:count].float().cpu())
        return torch.cat(outputs).numpy() if outputs else np.zeros((0, 0), np.float32)

    def _train_epoch(self, network, data, epoch, batch_size, optimizer, scheduler, bar, privacy=None) -> tuple[float, int, float]:
        cfg, ctx = self.config, self.context
        torch.manual_seed(_derive_seed(cfg.seed, epoch, ctx.rank, stream=1))  # dropout
        collated = not isinstance(data, dict)
        n = len(data) if collated else len(next(iter(data.values())))
        order = torch.randperm(n, generator=_generator(cfg.seed, epoch, 0, stream=2))
        usable = len(order) - len(order) % ctx.world_size
        order = order[:usable][ctx.rank :: ctx.world_size].to("cpu" if collated else self.device)
        augment_generator = _generator(cfg.seed, epoch, ctx.rank, stream=3)
        network.train()
        total_loss = torch.zeros((), device=self.device)
        samples, start = 0, time.perf_counter()
        batches = (order[begin : begin + batch_size] for begin in range(0, len(order), batch_size))
        if privacy is not None:  # Poisson-sampled batches of varying size, as the privacy accounting assumes
            batches = (index.to(order.device) for index in privacy.batches())
        for index in batches:
            if len(index) < 2 and privacy is None:  # batch norm cannot train on a single sample
                bar.update(1)
                continue
            if collated:
                batch = {k: v.to(self.device) for k, v in data.collate(index.numpy()).items()}
            else:
                batch = {k: v[index] for k, v in data.items()}
            if self.train_transform is not None:
                batch = self.train_transform(batch, augment_generator)
            loss = network(batch)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if len(index):  # an empty Poisson batch still takes a (noise-only) step
                total_loss += loss.detach() * len(index)
            samples += len(index)
            bar.update(1)
        seconds = time.perf_counter() - start
        return seconds, samples, float(total_loss) / max(samples, 1)

    def _private_training(self, model: nn.Module, train):
        """A medai.privacy.dp.PrivateTraining when ``config.privacy`` (or an enclosing ``private_training`` block) asks."""
        dp = sys.modules.get("medai.privacy.dp")  # only imported when differential privacy was asked for somewhere
        settings = self.config.privacy or (dp.active_for(model) if dp is not None else None)
        if settings is None:
            return None
        if self.context.enabled or _collated(train):  # a graph batch's rows are atoms, not records: clipping would not bound a record
            where = "under torchrun" if self.context.enabled else "for batches collated from variable-size records (graphs)"
            raise InvalidInputError(f"Differential privacy is not available {where}; train without --dp-epsilon.")
        from medai.privacy.dp import PrivateTraining

        self.config = replace(self.config, privacy=dict(settings))  # recorded with the checkpoint's settings
        return PrivateTraining(settings, model, len(train), self.config.batch_size, self.config.max_epochs)

    def _score(self, metrics: dict) -> float:
        if self.config.monitor not in metrics:
            raise InvalidInputError(
                f"The monitored metric {self.config.monitor!r} is not computed; available: {sorted(metrics)}."
            )
        return float(metrics[self.config.monitor])

    def _better(self, score: float, best: float) -> bool:
        if math.isnan(score):
            return False
        if math.isnan(best):
            return True
        return score < best if self.config.monitor == "loss" else score > best

    def _wrap(self, model: nn.Module) -> nn.Module:
        if not self.context.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def _set_threads(self) -> None:
        if self.device.type != "cpu":
            return
        if self.config.num_threads is not None:
            torch.set_num_threads(self.config.num_threads)
        elif "OMP_NUM_THREADS" not in os.environ:
            local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))

    # -- checkpoints ------------------------------------------------------------------------------------------

    def _fingerprint(self) -> dict:
        keep = ("max_epochs", "batch_size", "learning_rate", "weight_decay", "warmup_fraction", "monitor", "seed")
        private = {"privacy": self.config.privacy} if self.config.privacy is not None else {}
        return {k: getattr(self.config, k) for k in keep} | {"world_size": self.context.world_size} | self._data_sizes | private

    def _checkpoint(self, model, optimizer, scheduler, result, best_state, bad_epochs) -> None:
        if self.checkpoint_dir is None or not self.context.is_main:
            return
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        optimizer_tensors, optimizer_meta = state_io.flatten_optimizer_state(optimizer.state_dict())
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        tensors |= {f"best.{k}": v for k, v in best_state.items()} | optimizer_tensors
        state_io.save_tensors_atomic(self.checkpoint_dir / "state.safetensors", tensors)
        meta = {
            "settings": self._fingerprint(),
            "result": asdict(result),
            "bad_epochs": bad_epochs,
            "optimizer": optimizer_meta,
            "scheduler": scheduler.state_dict(),
        }
        state_io.write_json_atomic(self.checkpoint_dir / "state.json", meta)

    def _restore(self, model, optimizer, scheduler):
        if self.checkpoint_dir is None or not (self.checkpoint_dir / "state.json").exists():
            return None
        meta = state_io.read_json(self.checkpoint_dir / "state.json")
        if meta["settings"] != self._fingerprint():
            raise InvalidInputError(
                f"The checkpoint in {self.checkpoint_dir} was written with other settings ({meta['settings']}); "
                "rerun with those settings to resume, or delete the checkpoint folder to start afresh."
            )
        tensors = state_io.load_tensors(self.checkpoint_dir / "state.safetensors")
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        optimizer.load_state_dict(state_io.unflatten_optimizer_state(tensors, meta["optimizer"]))
        scheduler.load_state_dict(meta["scheduler"])
        result = FitResult(**meta["result"])
        result.resumed_from_epoch = len(result.history)
        best_state = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
        return result, best_state, meta["bad_epochs"]


@torch.no_grad()
def batch_invariant_sizes(model: nn.Module, batch: dict[str, torch.Tensor], sizes) -> tuple[int, ...]:
    """The sizes n among ``sizes`` at which ``model`` (in eval mode) gives every one of the first n rows of
    ``batch``, run as a batch of n, bitwise the same outputs as within the whole batch.

    CPU kernels may pick another algorithm or summation order for another batch size (on this machine a compact
    CNN's convolutions differ in the last bit between a batch of 1 and a batch of 8, not between 2, 4 and 8),
    which is why inference pads its chunks to one fixed size. Padding a short last chunk only to one of the sizes
    found here (``TrainerConfig(eval_pad_sizes=...)``) gives the same outputs with less work. The answer depends
    on this machine's kernels, so check it where the model runs.
    """
    model.eval()
    full = _logits(model(batch))
    return tuple(n for n in sizes
                 if n <= len(full) and torch.equal(_logits(model({k: v[:n] for k, v in batch.items()})), full[:n]))


def _ready(model: nn.Module, device: torch.device) -> None:
    """``model.to(device).eval()``, skipping each walk over the modules that would change nothing: a service
    predicting small batches otherwise walks every module twice per call."""
    if any(t.device != device for t in itertools.chain(model.parameters(), model.buffers())):
        model.to(device)
    if any(m.training for m in model.modules()):
        model.eval()


def _logits(output) -> torch.Tensor:
    return output["logits"] if isinstance(output, dict) else output


def _collated(dataset) -> bool:
    return not isinstance(dataset, Dataset) and callable(getattr(dataset, "collate", None))


def _derive_seed(seed: int, epoch: int, rank: int, stream: int) -> int:
    return (seed * 1_000_003 + epoch * 10_007 + rank * 101 + stream) % (2**63)


def _generator(seed: int, epoch: int, rank: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(_derive_seed(seed, epoch, rank, stream))

