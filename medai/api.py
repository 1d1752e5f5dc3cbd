"""The Python API: the same four verbs as the CLI, each returning plain objects.

Examples:
    >>> import medai
    >>> medai.train("image-classification", "breastmnist", "runs/breast")  # doctest: +SKIP
    >>> medai.evaluate("runs/breast", "breastmnist", split="test")["auroc"]  # doctest: +SKIP

Data files encrypted with ``medai encrypt`` (``x.csv.enc``, ``x.npz.enc``) are read directly: each is decrypted into a
private temporary folder (mode 0700, on RAM-backed /dev/shm when it has room) that is removed when the call returns
or fails; see :func:`medai.privacy.crypto.decrypted_input`.
"""

from __future__ import annotations

import contextlib
from dataclasses import fields
from pathlib import Path

from medai.bundle import ModelBundle, load_bundle
from medai.errors import InvalidInputError
from medai.privacy.crypto import decrypted_input
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
    with decrypted_input(data) as data:  # an encrypted file is read from a private temporary folder, then removed
        return module.train(data, out, **settings)


def evaluate(bundle: ModelBundle | str | Path, data: str | Path, split: str = "test", **options) -> dict:
    """Metrics of a bundle on ``split`` (``train``, ``val``, ``test`` or ``all``) of ``data``."""
    bundle = _bundle(bundle)
    with decrypted_input(data) as data:
        return get_task(bundle.task).evaluate(bundle, data, split, **options)


def predict(bundle: ModelBundle | str | Path, inputs: list[str | Path], **options) -> list[dict]:
    """One result per input record: the predicted label and the calibrated class probabilities."""
    bundle = _bundle(bundle)
    with contextlib.ExitStack() as stack:
        opened = [(item, stack.enter_context(decrypted_input(item))) for item in inputs]
        results = get_task(bundle.task).predict(bundle, [plain for _, plain in opened], **options)
    originals = {str(plain): str(item) for item, plain in opened if plain is not item}
    for result in results:  # name the encrypted file, not its temporary plaintext
        if isinstance(result, dict) and str(result.get("input")) in originals:
            result["input"] = originals[str(result["input"])]
    return results


def explain(bundle: ModelBundle | str | Path, item: str | Path, out: str | Path, **options) -> dict:
    """Explain one prediction; writes a picture to ``out`` and returns the explanation as a dict."""
    bundle = _bundle(bundle)
    with decrypted_input(item) as plain:
        result = get_task(bundle.task).explain(bundle, plain, out, **options)
    if plain is not item and isinstance(result, dict) and str(result.get("input")) == str(plain):
        result["input"] = str(item)  # name the encrypted file, not its temporary plaintext
    return result
