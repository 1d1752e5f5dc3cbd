"""Dimension reduction with autoencoders, PCA for comparison, and out-of-distribution flags from reconstruction error.

``Autoencoder`` follows the scikit-learn estimator contract (the constructor stores, ``fit`` computes and returns
``self``, learned state ends in ``_``) and trains with medai's Trainer. ``OODDetector`` flags inputs whose
reconstruction error lies beyond a quantile of the validation errors. ``reduce`` and ``plot_codes`` back
``medai reduce``; ``compare_with_pca`` measures the autoencoder against PCA at the same dimension.

Reconstruction errors are mean squared errors over the observed entries of a sample, in the model's units: input
units for the dense kind (pixels in [0, 1]), standardised units for the tabular kind (so every column counts alike).
"""

from __future__ import annotations

import inspect
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn

from medai.data.dataset import Dataset, Schema
from medai.engine import state_io
from medai.engine.metrics import ranking_scores
from medai.engine.trainer import Trainer, TrainerConfig
from medai.errors import BundleIntegrityError, DataNotFoundError, InvalidInputError, check_choice, did_you_mean
from medai.models.autoencoder import AutoencoderModel
from medai.models.registry import NETWORKS

KINDS = {"dense": ("dense_autoencoder", "image"), "tabular": ("tabular_autoencoder", "table")}  # kind -> (network, key)
METHODS = ("autoencoder", "pca")
FORMAT, FORMAT_VERSION = "medai-autoencoder", 1
WEIGHTS, CONFIG = "autoencoder.safetensors", "autoencoder.json"
INFERENCE_CHUNK = 256  # fixed inference chunk: a sample's output never depends on the samples beside it
HOLD_OUT_SHARE = 0.1  # validation share held out of X when fit gets no X_val


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidInputError(f"The '{name}' parameter must be an int >= {minimum}; got {value!r}.")
    return int(value)


def _as_float_array(X, name: str = "X") -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim < 2 or len(X) == 0:
        raise InvalidInputError(
            f"{name} must have shape (n_samples, n_features) or (n_samples, C, H, W); got {X.shape}."
        )
    if np.isinf(X).any():
        raise InvalidInputError(f"{name} holds infinite values; replace them (or mark them missing with NaN).")
    return X


def _dataset(X: np.ndarray, key: str) -> Dataset:
    """Unlabelled Dataset whose batches hold ``X`` under ``key`` (the task type is a placeholder)."""
    return Dataset(X, None, np.arange(len(X)), Schema(key, "binary", ("0", "1"), X.shape[1:]))


def _standardisation(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation ignoring NaN; all-missing or constant columns get (0 or mean, 1)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, std = np.nanmean(X, axis=0), np.nanstd(X, axis=0)
    mean = np.nan_to_num(mean, nan=0.0)
    std = np.where(np.isfinite(std) & (std > 1e-6), std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


class _Output(nn.Module):
    """Exposes one output of an AutoencoderModel as ``logits`` so that ``Trainer.predict`` computes it."""

    def __init__(self, model: AutoencoderModel, key: str):
        super().__init__()
        self.model, self.key = model, key

    def forward(self, batch: dict) -> dict:
        if self.key == "decode":
            return {"logits": self.model.decode(batch["code"])}  # (batch, n_features)
        return {"logits": self.model(batch)[self.key]}


class Autoencoder:
    """Learn a ``code_dim``-dimensional code of the inputs by reconstructing them.

    Args:
        kind: ``"dense"`` (784-64-32-64-784 for 28x28 images; inputs in [0, 1]) or ``"tabular"`` (denoising,
            mask-aware, standardised per feature; NaN marks a missing value).
        code_dim: dimension of the code.
        epochs: training epochs; the epoch with the lowest validation loss is kept.
        batch_size: training batch size.
        learning_rate: peak learning rate of the one-cycle AdamW schedule; None: 3e-4 when refining a PCA
            start (larger steps leave PCA's optimum and overfit), 2e-3 otherwise.
        seed: seeds initialisation, the hold-out split, shuffling and corruption.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        progress: show a progress bar.
        network_kwargs: extra arguments of the network (``hidden``, ``dropout``, ``output``, ``corruption``, ...).
        init: ``"pca"`` starts the dense network from PCA's solution at ``code_dim`` dimensions (linear output,
            clipped to [0, 1] for inputs in [0, 1];
            training then refines it, and the PCA starting point is kept if no epoch beats it on validation data),
            ``"random"`` from random weights; ``"auto"`` is ``"pca"`` for the dense kind, ``"random"`` otherwise.

    Attributes:
        model_: the trained AutoencoderModel. input_shape_: shape of one input. n_features_in_: features per input.
        mean_, scale_: per-feature standardisation, shape (n_features,), or None (dense kind).
        history_: validation loss per epoch. best_epoch_: the epoch kept.

    Examples:
        >>> import numpy as np
        >>> X = np.random.default_rng(0).random((40, 6)).astype("float32")
        >>> model = Autoencoder("tabular", code_dim=2, epochs=2, batch_size=16).fit(X)
        >>> model.transform(X).shape, model.inverse_transform(model.transform(X)).shape, model.score(X).shape
        ((40, 2), (40, 6), (40,))
    """

    def __init__(
        self,
        kind: str = "dense",
        code_dim: int = 32,
        epochs: int = 60,
        batch_size: int = 32,
        learning_rate: float | None = None,
        seed: int = 0,
        device: str = "auto",
        progress: bool = False,
        network_kwargs: dict | None = None,
        init: str = "auto",
    ):
        self.kind, self.code_dim, self.epochs, self.batch_size = kind, code_dim, epochs, batch_size
        self.learning_rate, self.seed, self.device, self.progress = learning_rate, seed, device, progress
        self.network_kwargs, self.init = network_kwargs, init

    def get_params(self) -> dict:
        return {
            name: getattr(self, name) for name in inspect.signature(type(self).__init__).parameters if name != "self"
        }

    # -- fitting ----------------------------------------------------------------------------------------------

    def fit(self, X, X_val=None) -> Autoencoder:
        """Train on ``X``, selecting the epoch by reconstruction loss on ``X_val`` (or a seeded 10% of ``X``).

        Args:
            X: array of shape (n_samples, n_features) or (n_samples, C, H, W).
            X_val: validation array shaped like ``X``, or None.
        """
        self._validate_params()
        X = self._check_X(X, "X", None)
        if X_val is None:
            X, X_val = _hold_out(X, self.seed)
        X_val = self._check_X(X_val, "X_val", X.shape[1:])
        if len(X) < 2:
            raise InvalidInputError(f"Training needs at least 2 samples in X; got {len(X)}.")
        name, key = KINDS[self.kind]
        kwargs = self._network_arguments(name, X)
        mean, std = _standardisation(X.reshape(len(X), -1)) if self.kind == "tabular" else (None, None)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            network = NETWORKS.create(name, **kwargs)
        if self._pca_init():
            network.initialise_from_pca(torch.from_numpy(X))
        model = AutoencoderModel(
            network, key, None if mean is None else mean.tolist(), None if std is None else std.tolist()
        )
        config = TrainerConfig(
            max_epochs=self.epochs,
            batch_size=min(self.batch_size, len(X)),
            learning_rate=self.learning_rate or (3e-4 if self._pca_init() else 2e-3),
            monitor="loss",
            seed=self.seed,
            device=self.device,
            eval_batch_size=INFERENCE_CHUNK,
            progress=self.progress,
        )
        trainer, train_data, val_data = Trainer(config), _dataset(X, key), _dataset(X_val, key)
        start_loss = trainer.evaluate(model, val_data)["loss"]
        start_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        result = trainer.fit(model, train_data, val_data)
        if self._pca_init() and not result.best_score < start_loss:
            model.load_state_dict(start_state)  # no epoch improved on PCA's solution: keep it
            result.best_epoch, result.best_score = -1, start_loss
        self._set_fitted(model.eval(), name, kwargs, X.shape[1:], mean, std)
        self.history_, self.best_epoch_ = result.history, result.best_epoch
        return self

    def _pca_init(self) -> bool:
        return self.init == "pca" or (self.init == "auto" and self.kind == "dense")

    def _validate_params(self) -> None:
        check_choice("kind", self.kind, KINDS)
        check_choice("init", self.init, ("auto", "pca", "random"))
        if self._pca_init() and self.kind != "dense":
            raise InvalidInputError(f"init='pca' is available for the dense kind only; got kind={self.kind!r}.")
        for name, minimum in (("code_dim", 1), ("epochs", 1), ("batch_size", 2), ("seed", 0)):
            _check_int(name, getattr(self, name), minimum)
        if self.learning_rate is not None and not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            raise InvalidInputError(f"The 'learning_rate' parameter must be a float > 0; got {self.learning_rate!r}.")
        if self.network_kwargs is not None and not isinstance(self.network_kwargs, dict):
            raise InvalidInputError(
                f"The 'network_kwargs' parameter must be a dict or None; got {self.network_kwargs!r}."
            )

    def _network_arguments(self, name: str, X: np.ndarray) -> dict:
        n_features = int(math.prod(X.shape[1:]))
        kwargs = {"input_dim": n_features, "code_dim": self.code_dim}
        if self.kind == "tabular":
            kwargs["mask_dim"] = n_features  # the encoder sees which values are missing
        if self._pca_init():  # PCA's reconstruction is linear in the code; clipped to [0, 1] for such inputs
            kwargs["output"] = "clamp" if X.min() >= 0 and X.max() <= 1 else "linear"
        allowed = [
            p
            for p in inspect.signature(NETWORKS.get(name).builder).parameters
            if p not in ("self", "input_dim", "code_dim")
        ]
        for key in self.network_kwargs or {}:
            if key not in allowed:
                raise InvalidInputError(
                    f"Unknown network_kwargs key {key!r} for {name}; allowed: {', '.join(allowed)}."
                    + did_you_mean(key, allowed)
                )
        return {**kwargs, **(self.network_kwargs or {})}

    def _check_X(self, X, name: str, shape) -> np.ndarray:
        X = _as_float_array(X, name)
        if shape is not None and X.shape[1:] != tuple(shape):
            raise InvalidInputError(f"{name} has samples of shape {X.shape[1:]}; expected {tuple(shape)}.")
        if self.kind == "tabular" and X.ndim != 2:
            raise InvalidInputError(
                f"The tabular autoencoder needs {name} of shape (n_samples, n_features); got {X.shape}."
            )
        if self.kind == "dense" and np.isnan(X).any():
            raise InvalidInputError(
                f"{name} holds missing values (NaN); the dense autoencoder needs complete inputs. Use kind='tabular'."
            )
        sigmoid = not self._pca_init() and (self.network_kwargs or {}).get("output", "sigmoid") == "sigmoid"
        if self.kind == "dense" and sigmoid and (X.min() < 0 or X.max() > 1):
            raise InvalidInputError(
                f"{name} has values outside [0, 1], which a sigmoid output cannot reconstruct; scale the inputs to "
                "[0, 1], pass network_kwargs={'output': 'linear'}, or use kind='tabular'."
            )
        return X

    def _set_fitted(self, model, network, kwargs, shape, mean, std) -> None:
        self.model_, self.network_, self.network_kwargs_ = model, network, kwargs
        self.input_shape_, self.n_features_in_ = tuple(int(n) for n in shape), int(math.prod(shape))
        self.mean_, self.scale_ = mean, std

    # -- inference --------------------------------------------------------------------------------------------

    def transform(self, X) -> np.ndarray:
        """Codes of shape (n_samples, code_dim) for X of shape (n_samples, *input_shape_)."""
        return self._predict(self._check_fitted_X(X), "code")

    def inverse_transform(self, Z) -> np.ndarray:
        """Reconstructions in input units, shape (n_samples, *input_shape_), of codes Z, shape (n_samples, code_dim)."""
        self._check_fitted()
        Z = _as_float_array(Z, "Z")
        if Z.shape[1:] != (self.code_dim,):
            raise InvalidInputError(f"Z must have shape (n_samples, {self.code_dim}); got {Z.shape}.")
        flat = self._trainer().predict(_Output(self.model_, "decode"), _dataset(Z, "code"))
        return flat.reshape(len(Z), *self.input_shape_)

    def score(self, X, *, chunk: int | None = None) -> np.ndarray:
        """Per-sample reconstruction MSE over observed entries, shape (n_samples,); NaN for a sample with none.

        ``chunk``: samples per inference batch (default 256; the last batch is padded).
        """
        X = self._check_fitted_X(X)
        errors = self._predict(X, "error", chunk).astype(np.float64)
        errors[np.isnan(X.reshape(len(X), -1)).all(axis=1)] = np.nan
        return errors

    def model_space(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Inputs as the network sees them: flattened, standardised, missing set to 0; and the observed mask.

        Returns:
            ``(values, observed)``, each of shape (n_samples, n_features_in_).
        """
        flat = self._check_fitted_X(X).reshape(len(X), -1)
        observed = ~np.isnan(flat)
        values = flat if self.mean_ is None else (flat - self.mean_) / self.scale_
        return np.where(observed, values, 0.0).astype(np.float32), observed

    def _predict(self, X: np.ndarray, output: str, chunk: int | None = None) -> np.ndarray:
        return self._trainer(chunk).predict(_Output(self.model_, output), _dataset(X, self.model_.input_key))

    def _trainer(self, chunk: int | None = None) -> Trainer:
        return Trainer(TrainerConfig(device=self.device, eval_batch_size=chunk or INFERENCE_CHUNK, progress=False))

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise InvalidInputError("This Autoencoder is not fitted yet; call fit(X) first.")

    def _check_fitted_X(self, X) -> np.ndarray:
        self._check_fitted()
        return self._check_X(X, "X", self.input_shape_)

    # -- persistence ------------------------------------------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        """Write ``autoencoder.safetensors`` and ``autoencoder.json`` (with the weights' sha256) into ``folder``."""
        from medai import __version__

        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state_io.save_tensors_atomic(folder / WEIGHTS, self.model_.state_dict())
        config = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "medai_version": __version__,
            "params": self.get_params(),
            "network": self.network_,
            "network_kwargs": self.network_kwargs_,
            "input_shape": list(self.input_shape_),
            "standardised": self.mean_ is not None,
            "best_epoch": self.best_epoch_,
            "history": self.history_,
            "weights_sha256": state_io.sha256_file(folder / WEIGHTS),
        }
        state_io.write_json_atomic(folder / CONFIG, config)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Autoencoder:
        """Rebuild a saved Autoencoder; raises BundleIntegrityError when its weights do not match their checksum."""
        config = _read_saved_config(Path(folder))
        model = cls(**config["params"])
        network = NETWORKS.create(config["network"], **config["network_kwargs"])
        n_features = int(math.prod(config["input_shape"]))
        mean, std = ([0.0] * n_features, [1.0] * n_features) if config["standardised"] else (None, None)
        module = AutoencoderModel(network, KINDS[model.kind][1], mean, std)
        try:
            module.load_state_dict(state_io.load_tensors(Path(folder) / WEIGHTS), strict=True)
        except RuntimeError as error:
            raise BundleIntegrityError(
                f"The weights in {folder} do not fit the autoencoder in {CONFIG}: {error}"
            ) from None
        stats = (module.mean.numpy(), module.std.numpy()) if config["standardised"] else (None, None)
        model._set_fitted(module.eval(), config["network"], config["network_kwargs"], config["input_shape"], *stats)
        model.history_, model.best_epoch_ = config["history"], config["best_epoch"]
        return model


def _read_saved_config(folder: Path) -> dict:
    if not folder.is_dir():
        raise DataNotFoundError(f"No saved autoencoder at {folder}: the folder does not exist.")
    if not (folder / CONFIG).is_file() or not (folder / WEIGHTS).is_file():
        raise BundleIntegrityError(f"{folder} is not a complete saved autoencoder: expected {CONFIG} and {WEIGHTS}.")
    try:
        config = state_io.read_json(folder / CONFIG)
    except ValueError as error:
        raise BundleIntegrityError(f"{folder / CONFIG} is not valid JSON ({error.__class__.__name__}).") from None
    if config.get("format") != FORMAT or config.get("format_version", 0) > FORMAT_VERSION:
        raise BundleIntegrityError(f"{folder / CONFIG} is not a {FORMAT} file of version <= {FORMAT_VERSION}.")
    actual = state_io.sha256_file(folder / WEIGHTS)
    if actual != config.get("weights_sha256"):
        raise BundleIntegrityError(
            f"{folder / WEIGHTS} does not match the checksum in {CONFIG} (expected sha256 "
            f"{str(config.get('weights_sha256'))[:12]}..., got {actual[:12]}...): the weights were changed or damaged."
        )
    return config


def _hold_out(X: np.ndarray, seed: int, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split off a seeded HOLD_OUT_SHARE of X (stratified by ``labels`` when every class has 2 or more samples)."""
    from sklearn.model_selection import train_test_split

    if len(X) < 3:
        raise InvalidInputError(f"Holding out validation data needs at least 3 samples; got {len(X)}. Pass X_val.")
    n_val = max(1, round(HOLD_OUT_SHARE * len(X)))
    counts = None if labels is None else np.bincount(labels)
    counts = None if counts is None else counts[counts > 0]  # samples per class present
    stratify = labels if counts is not None and counts.min() >= 2 and n_val >= len(counts) else None
    train, val = train_test_split(np.arange(len(X)), test_size=n_val, random_state=seed, stratify=stratify)
    return X[np.sort(train)], X[np.sort(val)]


class OODDetector:
    """Flags inputs whose reconstruction error lies beyond a quantile of the errors on validation data.

    Attributes:
        threshold_: the error above which an input is flagged. quantile_: the validation quantile it was set at.
        validation_summary_: count, mean, std, min, median, 90/95/99th percentiles and max of the validation errors.
        autoencoder_: the fitted Autoencoder that scores inputs.
    """

    def fit(self, autoencoder: Autoencoder, X_val, quantile: float = 0.99) -> OODDetector:
        """Set ``threshold_`` to the ``quantile`` of ``autoencoder.score(X_val)`` (inputs not used in training)."""
        if not (isinstance(quantile, (int, float)) and 0 < quantile < 1):
            raise InvalidInputError(f"The 'quantile' parameter must be a float in (0, 1); got {quantile!r}.")
        errors = autoencoder.score(X_val)
        errors = errors[np.isfinite(errors)]
        if errors.size == 0:
            raise InvalidInputError(
                "X_val has no sample with an observed value; the threshold needs validation errors."
            )
        self.autoencoder_, self.quantile_ = autoencoder, float(quantile)
        self.threshold_ = float(np.quantile(errors, quantile))
        percentiles = dict(zip(("median", "p90", "p95", "p99"), np.percentile(errors, [50, 90, 95, 99]).tolist()))
        self.validation_summary_ = {
            "count": int(errors.size),
            "mean": float(errors.mean()),
            "std": float(errors.std()),
            "min": float(errors.min()),
            **percentiles,
            "max": float(errors.max()),
        }
        return self

    def flag(self, X, *, chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Reconstruction errors, shape (n_samples,), and flags (True: beyond the training distribution).

        A sample without any observed value has error NaN and is flagged. ``chunk`` as in ``Autoencoder.score``.
        """
        if not hasattr(self, "autoencoder_"):
            raise InvalidInputError("This OODDetector has no autoencoder; call fit, or from_dict(data, autoencoder).")
        scores = self.autoencoder_.score(X, chunk=chunk)
        return scores, ~(scores <= self.threshold_)

    def to_dict(self) -> dict:
        """JSON-ready threshold, quantile and validation error summary (the autoencoder is saved on its own)."""
        return {
            "threshold": self.threshold_,
            "quantile": self.quantile_,
            "validation_errors": dict(self.validation_summary_),
        }

    @classmethod
    def from_dict(cls, data: dict, autoencoder: Autoencoder | None = None) -> OODDetector:
        detector = cls()
        detector.threshold_, detector.quantile_ = float(data["threshold"]), float(data["quantile"])
        detector.validation_summary_ = dict(data["validation_errors"])
        if autoencoder is not None:
            detector.autoencoder_ = autoencoder
        return detector


# -- reduce, plot, compare ----------------------------------------------------------------------------------------


def _resolve_kind(kind: str, X: np.ndarray) -> str:
    """``"auto"``: dense for images and complete data in [0, 1]; tabular (standardised, mask-aware) otherwise."""
    if check_choice("kind", kind, [*KINDS, "auto"]) != "auto":
        return kind
    if X.ndim > 2 or (not np.isnan(X).any() and X.min() >= 0 and X.max() <= 1):
        return "dense"
    return "tabular"


def _check_labels(labels, n: int, name: str = "labels") -> np.ndarray | None:
    if labels is None:
        return None
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != n or not np.issubdtype(labels.dtype, np.integer) or (n and labels.min() < 0):
        raise InvalidInputError(
            f"{name} must be {n} non-negative integer class indices; got shape {labels.shape}, dtype {labels.dtype}."
        )
    return labels.astype(np.int64)


def reduce(
    X,
    dim: int,
    labels=None,
    method: str = "autoencoder",
    seed: int = 0,
    *,
    kind: str = "auto",
    epochs: int = 60,
    device: str = "auto",
    progress: bool = False,
) -> tuple[np.ndarray, object]:
    """Codes of dimension ``dim`` for every sample of ``X``, and the fitted model.

    Args:
        X: array of shape (n_samples, n_features) or (n_samples, C, H, W); NaN marks missing values (tabular only).
        dim: code dimension.
        labels: optional class indices of shape (n_samples,); they stratify the autoencoder's validation hold-out
            (the reduction itself never sees them).
        method: ``"autoencoder"`` or ``"pca"`` (on the same units as the autoencoder of that kind).
        seed: seeds the hold-out split and the training.
        kind: ``"dense"``, ``"tabular"`` or ``"auto"`` (dense for images and complete data in [0, 1]).
        epochs, device, progress: passed to the Autoencoder.

    Returns:
        ``(codes, model)``: codes of shape (n_samples, dim); model is the fitted Autoencoder, or for PCA a
        scikit-learn PCA (pipeline with a StandardScaler for the tabular kind) over X reshaped to (n_samples, -1).

    Examples:
        >>> import numpy as np
        >>> codes, model = reduce(np.random.default_rng(0).random((30, 5)), dim=2, method="pca")
        >>> codes.shape
        (30, 2)
    """
    check_choice("method", method, METHODS)
    dim = _check_int("dim", dim, 1)
    X = _as_float_array(X)
    labels = _check_labels(labels, len(X))
    kind = _resolve_kind(kind, X)
    if method == "pca":
        pca = _fit_pca(X.reshape(len(X), -1), dim, seed, standardise=kind == "tabular")
        return pca.transform(X.reshape(len(X), -1)).astype(np.float32), pca
    X_train, X_val = _hold_out(X, seed, labels)
    model = Autoencoder(kind, dim, epochs, seed=seed, device=device, progress=progress).fit(X_train, X_val)
    return model.transform(X), model


def _fit_pca(X: np.ndarray, dim: int, seed: int, standardise: bool = False):
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if np.isnan(X).any():
        raise InvalidInputError("PCA needs complete data and X holds missing values (NaN); use method='autoencoder'.")
    if dim > min(X.shape):
        raise InvalidInputError(
            f"PCA keeps at most min(n_samples, n_features) = {min(X.shape)} dimensions; got dim={dim}."
        )
    pca = PCA(n_components=dim, random_state=seed)
    return (make_pipeline(StandardScaler(), pca) if standardise else pca).fit(X)


def plot_codes(codes, labels=None, label_names=None, path: str | Path = "codes.png", *, name: str = "Codes") -> Path:
    """Scatter plot of codes in 2-D coloured by label, written as a PNG; returns its path.

    Args:
        codes: array of shape (n_samples, dim). dim 2: plotted as is; dim > 2: projected to 2-D by PCA;
            dim 1: plotted against the sample index.
        labels: class indices of shape (n_samples,), or None for one colour.
        label_names: one name per class index (default: the index).
        path: the PNG to write (parent folders are created).
        name: what the codes are, for the title (e.g. ``"Autoencoder codes"``).
    """
    codes = _as_float_array(codes, "codes")
    labels = _check_labels(labels, len(codes))
    points, axes_names, how = _plane(codes)
    figure = Figure(figsize=(6.0, 5.0))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    groups = [(None, np.ones(len(codes), bool))] if labels is None else [(k, labels == k) for k in np.unique(labels)]
    for k, rows in groups:
        text = None if k is None else str(label_names[k] if label_names is not None and k < len(label_names) else k)
        axes.scatter(points[rows, 0], points[rows, 1], s=6, alpha=0.6, label=text, rasterized=True)
    axes.set(xlabel=axes_names[0], ylabel=axes_names[1], title=f"{name} ({how}, n={len(codes)})")
    if labels is not None:
        axes.legend(markerscale=2, fontsize="small")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110, format="png")
    return path


def _plane(codes: np.ndarray) -> tuple[np.ndarray, tuple[str, str], str]:
    """Points of shape (n_samples, 2) to plot, the names of their axes, and how they were obtained."""
    dim = codes.shape[1]
    if dim == 1:
        return np.column_stack([np.arange(len(codes)), codes[:, 0]]), ("sample", "code 1"), "1-D"
    if dim == 2:
        return codes, ("code 1", "code 2"), "2-D"
    return _fit_pca(codes, 2, 0).transform(codes), ("PC 1", "PC 2"), f"PCA of the {dim}-D codes to 2-D"


def _downstream_auroc(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray) -> float | None:
    """Test AUROC (binary, or macro one-vs-rest) of a logistic regression trained on standardised features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(train, y_train)
    probabilities = np.zeros((len(test), int(max(y_train.max(), y_test.max())) + 1))
    probabilities[:, classifier.classes_] = classifier.predict_proba(test)
    auroc, _ = ranking_scores(probabilities, y_test)
    return auroc if math.isfinite(auroc) else None


def compare_with_pca(
    X_train,
    y_train,
    X_test,
    y_test,
    dim: int,
    seed: int = 0,
    epochs: int = 60,
    *,
    kind: str = "auto",
    device: str = "auto",
    batch_size: int = 32,
    learning_rate: float | None = None,
) -> dict:
    """Autoencoder vs PCA at the same dimension on the same split: reconstruction error and downstream AUROC.

    Both reducers learn from the same 90% of ``X_train`` (the other 10% selects the autoencoder's epoch); PCA sees
    the inputs in the autoencoder's units (standardised for the tabular kind, missing set to 0), and both errors
    are per-sample MSE over observed test entries, averaged over samples. The AUROC is that of a
    logistic regression (max_iter=2000, on standardised features) trained on the training split's codes, on the
    PCA components, or on the raw inputs, and evaluated on the test split.

    Returns:
        A JSON-ready dict: ``dim``, ``kind``, ``units``, ``n_train``, ``n_test``, ``epochs``, ``seed``,
        ``reconstruction_mse`` and ``auroc`` (each ``{"autoencoder", "pca"}``, AUROC also ``"raw"``; None if undefined).
    """
    X_train, X_test = _as_float_array(X_train, "X_train"), _as_float_array(X_test, "X_test")
    y_train, y_test = _check_labels(y_train, len(X_train), "y_train"), _check_labels(y_test, len(X_test), "y_test")
    if y_train is None or y_test is None or len(np.unique(y_train)) < 2:
        raise InvalidInputError("compare_with_pca needs y_train with at least two classes and y_test.")
    kind = _resolve_kind(kind, X_train)
    train_part, val_part = _hold_out(X_train, seed, y_train)
    if _check_int("dim", dim, 1) > min(len(train_part), math.prod(X_train.shape[1:])):
        raise InvalidInputError(f"dim={dim} exceeds what PCA can keep: min(n_train_samples, n_features).")
    autoencoder = Autoencoder(kind, dim, epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed, device=device)
    autoencoder.fit(train_part, val_part)
    train_values, _ = autoencoder.model_space(X_train)
    test_values, test_observed = autoencoder.model_space(X_test)
    pca = _fit_pca(autoencoder.model_space(train_part)[0], dim, seed)  # the data the autoencoder learnt from
    squared = np.square(pca.inverse_transform(pca.transform(test_values)) - test_values) * test_observed
    pca_errors = squared.sum(1) / np.maximum(test_observed.sum(1), 1)
    features = {
        "autoencoder": (autoencoder.transform(X_train), autoencoder.transform(X_test)),
        "pca": (pca.transform(train_values), pca.transform(test_values)),
        "raw": (train_values, test_values),
    }
    return {
        "dim": int(dim),
        "kind": kind,
        "units": "standardised" if kind == "tabular" else "input",
        "n_train": len(X_train),
        "n_test": len(X_test),
        "epochs": int(epochs),
        "seed": int(seed),
        "reconstruction_mse": {
            "autoencoder": float(np.nanmean(autoencoder.score(X_test))),
            "pca": float(np.mean(pca_errors[test_observed.any(1)])),
        },
        "auroc": {name: _downstream_auroc(train, y_train, test, y_test) for name, (train, test) in features.items()},
    }
