"""The Python API: the same four verbs as the CLI, each returning plain objects.

Examples:
    >>> import medai
    >>> medai.train("image-classification", "breastmnist", "runs/breast")  # doctest: +SKIP
    >>> medai.evaluate("runs/breast", "breastmnist", split="test")["auroc"]  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from medai.bundle import ModelBundle, load_bundle
from medai.errors import InvalidInputError
from medai.tasks import get_task


def _bundle(bundle: ModelBundle | str | Path) -> ModelBundle:
    return bundle if isinstance(bundle, ModelBundle) else load_bundle(bundle)


def train(task: str, data: str | Path, out: str | Path, **settings) -> ModelBundle:
    """Train a model for ``task`` on ``data`` and save it as a bundle folder ``out``.

    ``settings`` are the fields of the task's Settings dataclass (e.g. ``epochs``, ``seed``, ``model``).
    """
    module = get_task(task)
    known = {f.name for f in fields(module.Settings)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise InvalidInputError(
            f"Option(s) {', '.join(unknown)} do not apply to the task {task!r}; it takes {', '.join(sorted(known))}."
        )
    return module.train(data, out, **settings)


def evaluate(bundle: ModelBundle | str | Path, data: str | Path, split: str = "test", **options) -> dict:
    """Metrics of a bundle on ``split`` (``train``, ``val``, ``test`` or ``all``) of ``data``."""
    bundle = _bundle(bundle)
    return get_task(bundle.task).evaluate(bundle, data, split, **options)


def predict(bundle: ModelBundle | str | Path, inputs: list[str | Path], **options) -> list[dict]:
    """One result per input record: the predicted label and the calibrated class probabilities."""
    bundle = _bundle(bundle)
    return get_task(bundle.task).predict(bundle, list(inputs), **options)


def explain(bundle: ModelBundle | str | Path, item: str | Path, out: str | Path, **options) -> dict:
    """Explain one prediction; writes a picture to ``out`` and returns the explanation as a dict."""
    bundle = _bundle(bundle)
    return get_task(bundle.task).explain(bundle, item, out, **options)
