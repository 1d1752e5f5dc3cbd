"""The in-memory Dataset every model family trains on, and the Schema that describes it."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from medai.errors import InvalidInputError

TASK_TYPES = ("binary", "multiclass", "regression")
CLASSIFICATION = ("binary", "multiclass")


@dataclass(frozen=True)
class Schema:
    """What a Dataset holds.

    Attributes:
        modality: kind of input, e.g. ``"image"``.
        task_type: ``"binary"``, ``"multiclass"`` or ``"regression"``.
        label_names: one name per class, index = class id; for regression, one name per target.
        input_shape: shape of one input, e.g. ``(channels, height, width)`` for images.
        source: where the data came from, e.g. ``"medmnist-npz"``, ``"image-folder"``, ``"dicom"``.
    """

    modality: str
    task_type: str
    label_names: tuple[str, ...]
    input_shape: tuple[int, ...]
    source: str = ""

    def __post_init__(self):
        if self.task_type not in TASK_TYPES:
            raise InvalidInputError(f"Schema task_type must be one of {TASK_TYPES}; got {self.task_type!r}.")
        object.__setattr__(self, "label_names", tuple(str(n) for n in self.label_names))
        object.__setattr__(self, "input_shape", tuple(int(n) for n in self.input_shape))

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    @property
    def is_classification(self) -> bool:
        return self.task_type in CLASSIFICATION

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Schema:
        return cls(**data)


@dataclass
class Dataset:
    """Inputs, labels and record ids held in memory, ready for batching.

    Attributes:
        inputs: array of shape (n_samples, *schema.input_shape); images are float32 in [0, 1].
        labels: int64 class ids of shape (n_samples,), or float32 regression targets of shape (n_samples,) or
            (n_samples, *target_shape) (NaN marks a missing target), or None for unlabelled data.
        ids: str array of shape (n_samples,): record ids (file names, indices), never patient names.
        schema: the Schema describing inputs and labels.
        groups: optional array of shape (n_samples,) naming the patient each record belongs to
            (a pseudonym), used for patient-level splits.
        extras: further per-sample arrays that travel with the inputs under their own batch keys, e.g. an
            observation ``"mask"`` or ``"static"`` features of a time series; each has n_samples rows.
    """

    inputs: np.ndarray
    labels: np.ndarray | None
    ids: np.ndarray
    schema: Schema
    groups: np.ndarray | None = field(default=None)
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        n = len(self.inputs)
        if tuple(self.inputs.shape[1:]) != self.schema.input_shape:
            raise InvalidInputError(
                f"Inputs of shape {tuple(self.inputs.shape[1:])} do not match the schema's input shape "
                f"{self.schema.input_shape}."
            )
        if self.labels is not None and not self.schema.is_classification:
            self.labels = np.asarray(self.labels, dtype=np.float32)
            if len(self.labels) != n:
                raise InvalidInputError(f"{n} inputs but {len(self.labels)} targets; expected one target per input.")
        elif self.labels is not None:
            self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
            if len(self.labels) != n:
                raise InvalidInputError(f"{n} inputs but {len(self.labels)} labels; expected one label per input.")
            if n and (self.labels.min() < 0 or self.labels.max() >= self.schema.num_classes):
                raise InvalidInputError(
                    f"Labels must lie in [0, {self.schema.num_classes - 1}] for {self.schema.num_classes} classes; "
                    f"found values from {self.labels.min()} to {self.labels.max()}."
                )
        self.ids = np.asarray(self.ids).astype(str)
        if len(self.ids) != n:
            raise InvalidInputError(f"{n} inputs but {len(self.ids)} ids; expected one id per input.")
        reserved = {self.input_key, "label"}
        for key, value in self.extras.items():
            if key in reserved:
                raise InvalidInputError(f"Extra array name {key!r} is reserved; use another name.")
            if len(value) != n:
                raise InvalidInputError(f"{n} inputs but {len(value)} rows in extra array {key!r}; expected one per input.")

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def input_key(self) -> str:
        return self.schema.modality

    def tensors(self) -> dict[str, torch.Tensor]:
        """The whole dataset as a batch dict: ``{modality: inputs, **extras, "label": labels}``."""
        batch = {self.input_key: torch.from_numpy(np.ascontiguousarray(self.inputs))}
        batch |= {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in self.extras.items()}
        if self.labels is not None:
            batch["label"] = torch.from_numpy(self.labels)
        return batch

    def subset(self, indices) -> Dataset:
        """A new Dataset with the rows at ``indices`` (same schema)."""
        indices = np.asarray(indices, dtype=np.int64)
        return Dataset(
            inputs=self.inputs[indices],
            labels=None if self.labels is None else self.labels[indices],
            ids=self.ids[indices],
            schema=self.schema,
            groups=None if self.groups is None else self.groups[indices],
            extras={k: v[indices] for k, v in self.extras.items()},
        )

    def class_counts(self) -> np.ndarray:
        """Number of samples per class, shape (num_classes,)."""
        if self.labels is None or not self.schema.is_classification:
            raise InvalidInputError("Class counts need class labels; this dataset has none.")
        return np.bincount(self.labels, minlength=self.schema.num_classes)

    def fingerprint(self) -> str:
        """SHA-256 of inputs and labels: identifies the exact data a model saw."""
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(self.inputs).tobytes())
        for key in sorted(self.extras):
            digest.update(key.encode() + np.ascontiguousarray(self.extras[key]).tobytes())
        if self.labels is not None:
            digest.update(self.labels.tobytes())
        return digest.hexdigest()


def concatenate(datasets: list[Dataset]) -> Dataset:
    """Join datasets that share a schema (e.g. all official splits for ``--split all``)."""
    first = datasets[0]
    labelled = all(d.labels is not None for d in datasets)
    grouped = all(d.groups is not None for d in datasets)
    return Dataset(
        inputs=np.concatenate([d.inputs for d in datasets]),
        labels=np.concatenate([d.labels for d in datasets]) if labelled else None,
        ids=np.concatenate([d.ids for d in datasets]),
        schema=first.schema,
        groups=np.concatenate([d.groups for d in datasets]) if grouped else None,
        extras={k: np.concatenate([d.extras[k] for d in datasets]) for k in first.extras},
    )
