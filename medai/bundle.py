"""Saved model bundles: one folder per trained model, never pickled.

Layout::

    model.safetensors   weights (and buffers such as the fitted mean/std) of a torch model, or
    model.skops         a scikit-learn baseline in skops' secure format (loads only allow-listed types)
    config.json         task, network name + kwargs, preprocessing state, label names, calibration,
                        medai version, data fingerprint, sha256 of the weights
    metrics.json        validation and test metrics, training history, timings
    splits.json         record ids of each split the model was trained and selected on
    card.md             model card: data, intended use, metrics with confidence intervals, limitations
    plots/*.png         ROC, PR, calibration, confusion matrix, training curves

Writes are atomic: the folder is assembled under a temporary name and renamed into place, so an
interrupted save leaves either the previous bundle or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn

from medai.engine.state_io import sha256_file
from medai.errors import BundleIntegrityError, DataNotFoundError, InvalidInputError, require

FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
ESTIMATOR = "model.skops"
CONFIG = "config.json"
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.")
TRUSTED_NAMES = ("functools.partial",)  # wraps functions that skops checks on their own


@dataclass
class ModelBundle:
    """A trained model with everything needed to use it again.

    Attributes:
        model: the rebuilt torch module, in eval mode.
        config: the content of config.json.
        metrics: the content of metrics.json (empty when absent).
        path: the folder it was loaded from or saved to.
        parts: further pieces loaded from the folder on first use and kept (e.g. the OOD detector), by name.
    """

    model: nn.Module
    config: dict
    metrics: dict = field(default_factory=dict)
    path: Path | None = None
    parts: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def task(self) -> str:
        return self.config["task"]

    @property
    def label_names(self) -> list[str]:
        return list(self.config.get("label_names", []))


def save_bundle(
    out: str | Path,
    model: nn.Module,
    config: dict,
    *,
    metrics: dict | None = None,
    card: str = "",
    files: dict[str, Path] | None = None,
    json_files: dict[str, object] | None = None,
) -> ModelBundle:
    """Write a bundle folder atomically and return it.

    Args:
        out: the bundle folder; an existing bundle there is replaced, any other non-empty folder is refused.
        model: the trained torch module (its ``state_dict`` goes to model.safetensors) or a fitted
            scikit-learn estimator (saved with skops to model.skops).
        config: JSON-ready configuration; ``format_version``, ``medai_version`` and ``weights_sha256`` are added.
        metrics: JSON-ready metrics.
        card: the model card in Markdown.
        files: extra files to copy in, ``{"plots/roc.png": Path(...)}``.
        json_files: extra JSON documents, ``{"splits.json": {...}}``.
    """
    from medai import __version__

    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / CONFIG).exists():
        raise InvalidInputError(f"{out} exists and is not a medai bundle; choose an empty or new folder for --out.")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        weights = _write_weights(model, staging)
        full_config = {
            **config,
            "format_version": FORMAT_VERSION,
            "medai_version": __version__,
            "weights_file": weights,
            "weights_sha256": sha256_file(staging / weights),
        }
        documents = {CONFIG: full_config, "metrics.json": metrics or {}, **(json_files or {})}
        for name, document in documents.items():
            (staging / name).write_text(json.dumps(document, indent=2, sort_keys=True, allow_nan=True))
        if card:
            (staging / "card.md").write_text(card)
        for name, source in (files or {}).items():
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        _replace_folder(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if isinstance(model, nn.Module):
        model.eval()
    return ModelBundle(model=model, config=full_config, metrics=metrics or {}, path=out)


def _write_weights(model, folder: Path) -> str:
    if isinstance(model, nn.Module):
        tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(tensors, str(folder / WEIGHTS), metadata={"format": "pt"})
        return WEIGHTS
    skops_io = require("skops.io", "tabular")
    skops_io.dump(model, folder / ESTIMATOR)
    return ESTIMATOR


def load_estimator(path: Path):
    """Load a skops file, trusting only scikit-learn, numpy and scipy types (never arbitrary code)."""
    skops_io = require("skops.io", "tabular")
    untrusted = skops_io.get_untrusted_types(file=path)
    refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES) and t not in TRUSTED_NAMES]
    if refused:
        raise BundleIntegrityError(f"{path} contains types medai does not load: {refused[:5]}.")
    return skops_io.load(path, trusted=untrusted)


def _replace_folder(staging: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old{os.getpid()}")
        os.replace(out, old)
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_config(path: str | Path) -> dict:
    """Read and check a bundle's config.json without loading weights."""
    path = Path(path)
    if not path.exists():
        raise DataNotFoundError(f"No model bundle at {path}: the folder does not exist.")
    if not (path / CONFIG).is_file() or not ((path / WEIGHTS).is_file() or (path / ESTIMATOR).is_file()):
        raise BundleIntegrityError(f"{path} is not a complete medai bundle: expected {CONFIG} and {WEIGHTS} inside.")
    try:
        config = json.loads((path / CONFIG).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleIntegrityError(f"{path / CONFIG} is not valid JSON ({error.__class__.__name__}).") from None
    for key in ("task", "format_version", "weights_sha256"):
        if key not in config:
            raise BundleIntegrityError(f"{path / CONFIG} lacks the required key {key!r}.")
    if config["format_version"] > FORMAT_VERSION:
        raise BundleIntegrityError(
            f"{path} uses bundle format {config['format_version']}; this medai reads up to {FORMAT_VERSION}. Upgrade medai."
        )
    return config


def load_bundle(path: str | Path) -> ModelBundle:
    """Load a bundle: verify the weights' sha256, rebuild the model from config.json, load the weights.

    Examples:
        >>> load_bundle("/no/such/bundle")
        Traceback (most recent call last):
        ...
        medai.errors.DataNotFoundError: No model bundle at /no/such/bundle: the folder does not exist.
    """
    from medai.tasks import get_task

    path = Path(path)
    config = read_config(path)
    weights = path / config.get("weights_file", WEIGHTS)
    if weights.name not in (WEIGHTS, ESTIMATOR) or not weights.is_file():
        raise BundleIntegrityError(f"{path} lacks its weights file {weights.name!r}.")
    actual = sha256_file(weights)
    if actual != config["weights_sha256"]:
        raise BundleIntegrityError(
            f"{weights} does not match the checksum in {CONFIG} (expected sha256 {config['weights_sha256'][:12]}..., "
            f"got {actual[:12]}...): the weights were changed or damaged."
        )
    if weights.name == ESTIMATOR:
        model = load_estimator(weights)
    else:
        model = get_task(config["task"]).build_model(config)
        if config.get("privacy", {}).get("dp", {}).get("replaced_layers"):  # layers swapped for DP training
            from medai.privacy.dp import apply_replacements

            apply_replacements(model, config["privacy"]["dp"]["replaced_layers"])
        try:
            model.load_state_dict(load_file(str(weights)), strict=True)
        except RuntimeError as error:
            raise BundleIntegrityError(f"The weights in {path} do not fit the model described in its config: {error}") from None
        model.eval()
    metrics_path = path / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    return ModelBundle(model=model, config=config, metrics=metrics, path=path)
