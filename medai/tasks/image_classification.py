"""Image classification: MedMNIST npz files, folders of PNG/JPEG/DICOM images -> CNN -> bundle.

The defaults are the benchmarked recipe (``bench/image_classification.py``): ``compact_cnn``, a one-cycle AdamW
schedule over 60 epochs for small training sets down to 30 for large ones (``auto_epochs``), random affine +
flip augmentation, best epoch by validation AUROC, temperature scaling fitted on the validation split.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from medai.bundle import ModelBundle, save_bundle
from medai.data.dataset import Dataset, concatenate
from medai.data.splits import stratified_split
from medai.engine.calibration import fit_temperature, softmax
from medai.engine.metrics import check_threshold, classification_metrics, fit_decision_threshold, predicted_classes
from medai.engine.plots import save_evaluation_plots
from medai.engine.trainer import TrainerConfig, batch_invariant_sizes
from medai.errors import DataNotFoundError, InvalidInputError, check_choice
from medai.models import NETWORKS, Classifier
from medai.tasks import image_card
from medai.tasks.common import (
    combine_fits,
    cross_fit_folds,
    fit_cross_fitted,
    fit_intensity_range,
    fit_members,
    members,
    ood_flags,
    out_of_fold_logits,
    save_ood,
)
from medai.tasks.common import probabilities as _probabilities
from medai.transforms.image import RandomAffine, channel_statistics

TASK = "image-classification"
SPLITS = ("train", "val", "test", "all")
OUT_OF_FOLD = "out-of-fold members (train + val)"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".dicom"}


@dataclass
class ImageClassificationSettings:
    """User-facing settings of ``medai train --task image-classification``; the defaults are the benchmarked ones."""

    model: str = "compact_cnn"  # registry name of the network
    epochs: int | None = None  # maximum epochs (best on validation AUROC kept); None: auto_epochs(training size)
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    patience: int | None = None  # early stopping patience in epochs; None trains all epochs
    seed: int = 0
    device: str = "auto"
    class_weight: str = "none"  # "balanced" weights the loss by inverse class frequency
    ensemble: int | None = None  # members of a deep ensemble; None: auto_ensemble(training size)
    augment: bool = True  # random affine + horizontal flip on training batches (and mirror averaging at test time)
    ood: bool = True  # fit an autoencoder on the training images; predict flags inputs unlike them
    image_size: int | None = None  # resize folder/DICOM images to this size (default: native size, or 128)
    # two classes: predict the second one where its probability is >= this number, or "val-accuracy": the
    # threshold that maximises validation accuracy (fit_decision_threshold); None: the most probable class
    decision_threshold: float | str | None = None
    # "split": every ensemble member trains on the training split and keeps its best epoch on the validation split;
    # "cross-fit": training and validation images are pooled and cut into `ensemble` stratified folds, member k keeps
    # its best epoch on fold k and trains on the others (calibration and any fitted threshold then use every pooled
    # image's out-of-fold prediction). A single network always uses the split.
    member_validation: str = "split"
    model_kwargs: dict = field(default_factory=dict)  # extra arguments for the network
    progress: bool = True

    def validate(self) -> ImageClassificationSettings:
        NETWORKS.get(self.model)
        if self.epochs is not None and self.epochs < 1:
            raise InvalidInputError(f"The 'epochs' parameter must be an int >= 1 (or None for auto); got {self.epochs}.")
        check_choice("class_weight", self.class_weight, ["none", "balanced"])
        if self.ensemble is not None and not 1 <= self.ensemble <= 20:
            raise InvalidInputError(f"The 'ensemble' parameter must be an int in [1, 20] (or None for auto); got {self.ensemble}.")
        self.decision_threshold = _check_decision_threshold(self.decision_threshold)
        check_choice("member_validation", self.member_validation, ["split", "cross-fit"])
        if self.image_size is not None and self.image_size < 8:
            raise InvalidInputError(f"The 'image_size' parameter must be >= 8; got {self.image_size}.")
        return self

    def trainer_config(self, n_train: int) -> TrainerConfig:
        return TrainerConfig(
            max_epochs=self.epochs or auto_epochs(n_train),
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            weight_decay=self.weight_decay,
            patience=self.patience,
            monitor="auroc",
            seed=self.seed,
            device=self.device,
            progress=self.progress,
        )


Settings = ImageClassificationSettings


def auto_epochs(n_train: int) -> int:
    """Default epochs: 60 for up to ~1,000 training images, fewer for larger sets (60·sqrt(1000/n), at least 30).

    Chosen on validation AUROC (BreastMNIST, 546 images: best epochs 26-46 of 60; PneumoniaMNIST, 4,708 images:
    best epoch 28 of 30), keeping PneumoniaMNIST training near 5 minutes on 2 CPU cores.
    """
    return int(min(60, max(30, round(60 * (1000 / max(n_train, 1)) ** 0.5))))


def auto_ensemble(n_train: int) -> int:
    """Default ensemble size: 5 members for small training sets (up to ~600 images), 1 from ~4,000 images.

    Small sets gain most from averaging independently trained members and cost little to train several times;
    the rule keeps the total number of training steps, and so the training time, within the same budget.
    """
    return int(min(5, max(1, round(2700 / max(n_train, 1)))))


# -- data -------------------------------------------------------------------------------------------------------


def load_splits(data: str | Path, *, image_size: int | None = None, channels: int | None = None, seed: int = 0) -> tuple[dict[str, Dataset], dict]:
    """Load labelled images as ``{"train", "val", "test"}`` Datasets plus a description of the source.

    ``data`` is a MedMNIST ``.npz`` (official splits), a MedMNIST name such as ``breastmnist`` (found under
    MEDAI_DATA_DIR, in the cache, or downloaded), or a folder of images (class sub-folders or ``labels.csv``),
    split 70/10/20, stratified by label and grouped by patient where known, with ``seed``.
    """
    from medai.data.sources import images, medmnist

    path = Path(data)
    if path.is_dir():
        dataset, report = images.load_image_folder(path, image_size=image_size, channels=channels)
        parts = stratified_split(dataset, seed=seed)
        splits = {name: dataset.subset(index) for name, index in parts.items()}
        source = {"format": "image-folder", "split": "stratified 70/10/20", "split_seed": seed, "load_report": report.to_dict()}
        return splits, source
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise InvalidInputError(f"{path.name} is a single image; training needs a folder of images or a MedMNIST .npz file.")
    resolved = medmnist.resolve_medmnist(str(data))
    splits = medmnist.load_npz(resolved)
    _check_channels(splits, channels)
    if "train" not in splits or "val" not in splits:
        found = ", ".join(sorted(splits))
        raise InvalidInputError(f"{resolved.name} holds the splits [{found}]; training needs train and val splits.")
    return splits, {"format": "medmnist-npz", "file": resolved.name, "split": "official"}


def _check_channels(splits: dict[str, Dataset], channels: int | None) -> None:
    if channels is None:
        return
    for name, part in splits.items():
        if part.schema.input_shape[0] != channels:
            raise InvalidInputError(
                f"Wrong channel count: the model expects {channels}-channel images but the {name} split holds "
                f"{part.schema.input_shape[0]}-channel images."
            )


def _select(splits: dict[str, Dataset], split: str) -> Dataset:
    check_choice("split", split, SPLITS)
    if split == "all":
        return concatenate([splits[name] for name in ("train", "val", "test") if name in splits])
    if split not in splits:
        raise InvalidInputError(f"The data has no {split!r} split; it has {sorted(splits)}. Use --split all for other data.")
    return splits[split]


# -- model ------------------------------------------------------------------------------------------------------


def build_model(config: dict) -> Classifier:
    """Rebuild the (untrained) model a config.json describes."""
    network = NETWORKS.create(config["network"], **config["network_kwargs"])
    prep = config["preprocessing"]
    return Classifier(
        network, "image", prep["mean"], prep["std"], config.get("class_weight"),
        channels_last=config.get("channels_last", False), test_time_flip=config.get("test_time_flip", False),
    )  # fmt: skip


# -- train / evaluate / predict / explain -------------------------------------------------------------------------


def train(data: str | Path, out: str | Path, settings: ImageClassificationSettings | None = None, **overrides) -> ModelBundle:
    """Train an image classifier on ``data`` and save it as a bundle in ``out``.

    Args:
        data: a MedMNIST npz, a MedMNIST name, or a folder of images (see ``load_splits``).
        out: the bundle folder to write.
        settings: an ImageClassificationSettings; keyword ``overrides`` replace its fields.

    Returns:
        The saved ModelBundle; ``bundle.metrics["test"]`` holds test metrics when the data has a test split.
    """
    settings = ImageClassificationSettings(**{**asdict(settings or ImageClassificationSettings()), **overrides}).validate()
    splits, source = load_splits(data, image_size=settings.image_size, seed=settings.seed)
    train_set, val_set = splits["train"], splits["val"]
    config = _model_config(settings, train_set, source, splits)
    torch.manual_seed(settings.seed)
    model = build_model(config)
    out = Path(out)
    checkpoints = out.with_name(f"{out.name}.checkpoint")
    trainer_config = settings.trainer_config(len(train_set))
    fit_options = {"train_transform": RandomAffine() if settings.augment else None, "checkpoints": checkpoints}
    pool = concatenate([train_set, val_set]) if settings.member_validation == "cross-fit" else None
    folds = None if pool is None else cross_fit_folds(pool.labels, len(members(model)), settings.seed)
    if folds is None:
        fits, trainer = fit_members(model, train_set, val_set, trainer_config, **fit_options)
    else:
        fits, trainer = fit_cross_fitted(model, pool, folds, trainer_config, **fit_options)
    ood = _fit_ood(train_set, val_set, settings) if settings.ood else None  # every rank takes part under torchrun
    if not trainer.context.is_main:
        return ModelBundle(model=model.eval(), config=config)
    if folds is None:  # calibration (and any fitted threshold) on the validation split
        held_logits, held_labels, fitted_on = trainer.predict(model, val_set), val_set.labels, "val"
    else:  # ... or on every pooled image, scored by the member that did not train on it
        held_logits, held_labels, fitted_on = out_of_fold_logits(model, pool, folds), pool.labels, OUT_OF_FOLD
    temperature = fit_temperature(held_logits, held_labels)
    config["calibration"] = {"method": "temperature", "temperature": temperature, "fitted_on": fitted_on}
    held_probabilities = softmax(held_logits, temperature)
    if settings.decision_threshold is not None and len(config["label_names"]) == 2:
        config["decision"] = _decision(settings, held_probabilities, held_labels, config)
    threshold = decision_threshold(config)
    metrics = {"fit": combine_fits(fits) | {"member_validation": "split" if folds is None else "cross-fit"},
               "device": str(trainer.device)}  # fmt: skip
    if folds is not None:  # the validation images trained members: only out-of-fold predictions are held out
        metrics["out_of_fold"] = classification_metrics(held_probabilities, held_labels, list(config["label_names"]), threshold=threshold)
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("val", "test") if folds is None else ("test",):
            if name in splits:
                probabilities = _probabilities(model, splits[name], config, trainer)
                metrics[name] = classification_metrics(probabilities, splits[name].labels, list(config["label_names"]), threshold=threshold)
        report_split = "test" if "test" in splits else "val"
        probabilities = _probabilities(model, splits[report_split], config, trainer)
        written = save_evaluation_plots(probabilities, splits[report_split].labels, config["label_names"], Path(tmp), history=fits[0].history, threshold=threshold)
        plots = {f"plots/{path.name}": path for path in written.values()}
        if ood is not None:
            config["ood"], ood_files = save_ood(*ood, Path(tmp) / "ood")
            config["ood"]["intensity"] = fit_intensity_range(train_set.inputs, val_set.inputs)
            plots |= ood_files
        card = image_card.render(config, metrics, {k: len(v) for k, v in splits.items()})
        bundle = save_bundle(
            out, model, config, metrics=metrics, card=card, files=plots,
            json_files={"splits.json": {name: part.ids.tolist() for name, part in splits.items()}},
        )  # fmt: skip
    shutil.rmtree(checkpoints, ignore_errors=True)
    return bundle


def _decision(settings: ImageClassificationSettings, val_probabilities: np.ndarray, val_labels: np.ndarray, config: dict) -> dict:
    """The binary decision rule: the given threshold, or ("val-accuracy") the one that maximises validation accuracy
    (with cross-fitted members: the accuracy of the out-of-fold predictions of the training and validation images).

    Not the default: a threshold fitted to validation accuracy also fits the validation split's class balance. On
    BreastMNIST (test balance as validation) it raised test accuracy from 0.850 to 0.876 (mean of seeds 0-2), on
    PneumoniaMNIST (63% pneumonia in test, 74% in validation) it lowered seed 0's from 0.894 to 0.883.
    """
    positive = config["label_names"][1]
    if settings.decision_threshold != "val-accuracy":
        return {"threshold": float(settings.decision_threshold), "positive_class": positive, "fitted_on": None}
    fitted_on = "val" if config["calibration"]["fitted_on"] == "val" else OUT_OF_FOLD
    return {"threshold": fit_decision_threshold(val_probabilities, val_labels), "positive_class": positive,
            "fitted_on": fitted_on, "objective": "accuracy"}


def _check_decision_threshold(value):
    if value is None or value == "val-accuracy":
        return value
    try:
        return check_threshold(value)
    except InvalidInputError:
        raise InvalidInputError(f"The 'decision_threshold' parameter must be a probability strictly between 0 and 1, "
                                f"'val-accuracy', or None (the most probable class); got {value!r}.") from None


def decision_threshold(config: dict) -> float | None:
    """The bundle's decision threshold on its second class's probability (None: argmax, as older bundles)."""
    return (config.get("decision") or {}).get("threshold")


def _fit_ood(train_set: Dataset, val_set: Dataset, settings):
    """Dense autoencoder on the training images; threshold = 99th percentile of validation reconstruction errors.

    Randomly initialised, not started from PCA: a PCA start reconstructs any smooth image well (BreastMNIST's
    detector then separated PneumoniaMNIST images with AUROC 0.77 instead of 0.96), so novelty shows less.
    """
    from medai.reduce import Autoencoder, OODDetector

    autoencoder = Autoencoder("dense", code_dim=32, epochs=60, batch_size=32, learning_rate=2e-3, seed=settings.seed,
                              device=settings.device, init="random")  # fmt: skip
    autoencoder.fit(train_set.inputs, val_set.inputs)
    return autoencoder, OODDetector().fit(autoencoder, val_set.inputs, quantile=0.99)


def _model_config(settings: ImageClassificationSettings, train_set: Dataset, source: dict, splits: dict[str, Dataset]) -> dict:
    schema = train_set.schema
    channels, height, width = schema.input_shape
    mean, std = channel_statistics(train_set.inputs)
    counts = train_set.class_counts()
    if (counts == 0).any():
        missing = [schema.label_names[i] for i in np.flatnonzero(counts == 0)]
        raise InvalidInputError(f"The training split has no images of class(es) {missing}; every class needs examples.")
    class_weight = (counts.sum() / (len(counts) * counts)).tolist() if settings.class_weight == "balanced" else None
    network_kwargs = {"in_channels": channels, "num_classes": schema.num_classes, "image_size": [height, width], **settings.model_kwargs}
    size = settings.ensemble or auto_ensemble(len(train_set))
    network = settings.model
    if size > 1:
        network, network_kwargs = "ensemble", {"member": settings.model, "size": size, **network_kwargs}
    return {
        "task": TASK,
        "network": network,
        "network_kwargs": network_kwargs,
        "class_weight": class_weight,
        "channels_last": True,  # measured faster for these CNNs on CPU (bench/image_classification.py)
        "test_time_flip": settings.augment,  # mirror-image averaging, as the training augmentation flips too
        "label_names": list(schema.label_names),
        "input_shape": list(schema.input_shape),
        "preprocessing": {"mean": mean, "std": std, "image_size": [height, width], "channels": channels, "scale": "0..1"},
        "settings": asdict(settings),
        "source": source,
        "data_fingerprint": {name: part.fingerprint() for name, part in splits.items()},
    }


def _data_for_bundle(bundle: ModelBundle, data: str | Path) -> dict[str, Dataset]:
    prep = bundle.config["preprocessing"]
    seed = bundle.config["settings"]["seed"]
    splits, _ = load_splits(data, image_size=prep["image_size"][0] if Path(data).is_dir() else None, channels=prep["channels"], seed=seed)
    expected = tuple(bundle.config["input_shape"])
    for name, part in splits.items():
        if part.schema.input_shape != expected:
            raise InvalidInputError(
                f"Wrong image size: the model expects images of shape {expected} (channels, height, width); "
                f"the {name} split holds {part.schema.input_shape}."
            )
    return splits


def evaluate(bundle: ModelBundle, data: str | Path, split: str = "test", *, bootstrap: int = 1000, plots_dir: str | Path | None = None) -> dict:
    """Metrics of a bundle on one split (or ``"all"``) of ``data``; optionally writes plots to ``plots_dir``."""
    part = _select(_data_for_bundle(bundle, data), split)
    if part.labels is None:
        raise InvalidInputError("Evaluation needs labels; the data has none.")
    probabilities = _probabilities(bundle.model, part, bundle.config)
    threshold = decision_threshold(bundle.config)
    metrics = classification_metrics(probabilities, part.labels, bundle.label_names, bootstrap=bootstrap, threshold=threshold)
    if plots_dir is not None:
        save_evaluation_plots(probabilities, part.labels, bundle.label_names, Path(plots_dir), threshold=threshold)
    return metrics


def predict(bundle: ModelBundle, inputs: list[str | Path], split: str = "test", *, chunk: int | None = None,
            pad_sizes: tuple[int, ...] = ()) -> list[dict]:
    """Label and class probabilities for image files, or for every image of one split of an npz/folder.

    Image files are read first and run through the network together, in chunks of ``chunk`` images (default
    64, and 256 for the OOD autoencoder; the last chunk is padded, so an image's result never depends on the
    images predicted with it). ``pad_sizes`` are smaller sizes the network's last chunk may be padded to instead:
    those :func:`inference_pad_sizes` found to give the same results on this machine.
    """
    results = []
    for dataset in _prediction_sets(bundle, [Path(item) for item in inputs], split):
        probabilities = _probabilities(bundle.model, dataset, bundle.config, chunk=chunk, pad_sizes=pad_sizes)
        flags = ood_flags(bundle, dataset.inputs, chunk) or [None] * len(dataset)
        predicted = predicted_classes(probabilities, decision_threshold(bundle.config))
        for record_id, row, flag, best in zip(dataset.ids, probabilities, flags, predicted):
            result = {
                "input": record_id,
                "label": bundle.label_names[best],
                "probabilities": {name: float(p) for name, p in zip(bundle.label_names, row)},
            }
            if flag is not None:
                result["ood"] = flag
            results.append(result)
    return results


def inference_pad_sizes(bundle: ModelBundle, chunk: int, seed: int = 0) -> tuple[int, ...]:
    """The batch sizes 1, 2, 4 ... below ``chunk`` at which the bundle's network gives the same outputs, bit for
    bit, as in a chunk of ``chunk`` (checked on random images of the bundle's input shape and value range, on
    this machine's kernels): what :func:`predict` may pad a short chunk to. See
    :func:`medai.engine.trainer.batch_invariant_sizes`."""
    prep = bundle.config["preprocessing"]
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(chunk, prep["channels"], *prep["image_size"], generator=generator)  # inputs lie in [0, 1]
    sizes = [1 << k for k in range(chunk.bit_length()) if 1 << k < chunk]
    return batch_invariant_sizes(bundle.model, {bundle.model.input_key: images}, sizes)


def _prediction_sets(bundle: ModelBundle, paths: list[Path], split: str) -> list[Dataset]:
    """The inputs as datasets in input order: each run of image files stacked into one, each npz/folder its own."""
    sets, images = [], []
    for path in paths:
        if path.suffix.lower() in IMAGE_SUFFIXES:
            images.append(_inputs_as_dataset(bundle, path, split))
            continue
        if images:
            sets.append(concatenate(images) if len(images) > 1 else images[0])
            images = []
        sets.append(_inputs_as_dataset(bundle, path, split))
    if images:
        sets.append(concatenate(images) if len(images) > 1 else images[0])
    return sets


def _inputs_as_dataset(bundle: ModelBundle, path: Path, split: str) -> Dataset:
    from medai.data.dataset import Schema
    from medai.data.sources.images import read_image

    if path.suffix.lower() not in IMAGE_SUFFIXES:  # an .npz, a folder or a MedMNIST name
        return _select(_data_for_bundle(bundle, path), split)
    if not path.exists():
        raise DataNotFoundError(f"Input {path} does not exist; expected an image file, an .npz, a folder or a dataset name.")
    prep = bundle.config["preprocessing"]
    image = read_image(path, channels=prep["channels"], image_size=tuple(prep["image_size"]))
    schema = Schema("image", "binary" if len(bundle.label_names) == 2 else "multiclass", bundle.label_names, image.shape, "file")
    return Dataset(image[None], None, np.array([path.name]), schema)


def explain(bundle: ModelBundle, image: str | Path, out: str | Path, *, target: str | None = None, split: str = "test", index: int = 0) -> dict:
    """Grad-CAM heat map for one image, overlaid on it and saved as PNG at ``out``.

    ``image`` is an image file, or an npz/folder from which record ``index`` of ``split`` is taken.
    ``target`` names the class to explain (default: the predicted class).
    """
    from medai.explain.gradcam import explain_image

    dataset = _inputs_as_dataset(bundle, Path(image), split)
    if not 0 <= index < len(dataset):
        raise InvalidInputError(f"--index must lie in [0, {len(dataset) - 1}]; got {index}.")
    one = dataset.subset([index])
    probabilities = _probabilities(bundle.model, one, bundle.config)[0]
    names = bundle.label_names
    predicted = int(predicted_classes(probabilities[None], decision_threshold(bundle.config))[0])
    target_index = predicted if target is None else names.index(check_choice("target", target, names))
    explain_image(bundle.model, one.inputs[0], target_index, out, title=_explain_title(names, probabilities, target_index))
    return {
        "input": str(one.ids[0]),
        "label": names[predicted],
        "probabilities": {n: float(p) for n, p in zip(names, probabilities)},
        "explained_class": names[target_index],
        "method": "grad-cam",
        "heatmap": str(out),
    }


def _explain_title(names: list[str], probabilities: np.ndarray, target: int) -> str:
    return f"Grad-CAM for '{names[target]}' (p = {probabilities[target]:.2f})"
