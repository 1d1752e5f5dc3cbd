"""Privacy audit: how well can an attacker tell a model's training records from records it never saw?

Shadow-free membership-inference attacks on a bundle's released outputs (its calibrated class probabilities):

- **loss threshold** (Yeom et al., 2018): a record whose loss ``-log p(true class)`` is low is guessed a member;
- **confidence threshold**: a record with a high top-class probability is guessed a member (no label needed).

The attack AUROC over all thresholds, on the training split (members) against the test split (non-members), is the
headline: 0.5 means the outputs tell nothing about membership, 1.0 that they give every training record away. The
membership advantage (true-positive minus false-positive rate) at Yeom's threshold, the mean training loss, is
reported too. These are baselines: stronger attacks (LiRA, with shadow models) can find more, so a low AUROC is
evidence, not proof, of little leakage; differential privacy (``medai.privacy.dp``) is the proof.

``audit_bundle`` writes ``privacy_audit.json`` and a section of card.md into the bundle, re-saving it through
``save_bundle`` so every checksum stays valid.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from medai.bundle import CONFIG, ESTIMATOR, WEIGHTS, ModelBundle, load_bundle, save_bundle
from medai.errors import InvalidInputError

AUDIT_FILE = "privacy_audit.json"
AUDITED_TASKS = ("image-classification", "tabular-classification")


def membership_inference(
    member_probabilities: np.ndarray,
    member_labels: np.ndarray,
    other_probabilities: np.ndarray,
    other_labels: np.ndarray,
    *,
    bootstrap: int = 200,
    seed: int = 0,
) -> dict:
    """Loss- and confidence-threshold attacks separating members from non-members.

    Args:
        member_probabilities: class probabilities of the training records, shape (n_members, n_classes).
        member_labels: their class indices, shape (n_members,).
        other_probabilities: class probabilities of held-out records, shape (n_other, n_classes).
        other_labels: their class indices, shape (n_other,).
        bootstrap: resamples for the 95% interval of each AUROC (0: none).
        seed: seeds the bootstrap.

    Returns:
        ``{"loss_attack": {...}, "confidence_attack": {...}, "attack_auroc": max of the two, ...}``.

    Examples:
        >>> p = np.full((4, 2), 0.5)
        >>> membership_inference(p, np.array([0, 1, 0, 1]), p, np.array([1, 0, 1, 0]), bootstrap=0)["attack_auroc"]
        0.5
    """
    members, others = _losses(member_probabilities, member_labels), _losses(other_probabilities, other_labels)
    if len(members) < 2 or len(others) < 2:
        raise InvalidInputError(f"The audit needs >= 2 member and >= 2 held-out records; got {len(members)} and {len(others)}.")
    membership = np.r_[np.ones(len(members)), np.zeros(len(others))]
    loss_scores = -np.r_[members, others]  # lower loss: more likely a member
    confidence_scores = np.r_[member_probabilities.max(axis=1), other_probabilities.max(axis=1)]
    threshold = float(members.mean())  # Yeom et al.: guess "member" when the loss is below the mean training loss
    guesses = np.r_[members, others] < threshold
    loss = {"auroc": _auroc(membership, loss_scores), "threshold": threshold,
            "advantage": float(guesses[membership == 1].mean() - guesses[membership == 0].mean())}  # fmt: skip
    confidence = {"auroc": _auroc(membership, confidence_scores)}
    if bootstrap:
        rng = np.random.default_rng(seed)
        for attack, scores in ((loss, loss_scores), (confidence, confidence_scores)):
            attack["auroc_ci_low"], attack["auroc_ci_high"] = _bootstrap(membership, scores, bootstrap, rng)
    return {
        "attack_auroc": max(loss["auroc"], confidence["auroc"]),
        "loss_attack": loss,
        "confidence_attack": confidence,
        "n_members": len(members),
        "n_non_members": len(others),
        "mean_loss_members": float(members.mean()),
        "mean_loss_non_members": float(others.mean()),
        "accuracy_members": float((member_probabilities.argmax(1) == member_labels).mean()),
        "accuracy_non_members": float((other_probabilities.argmax(1) == other_labels).mean()),
    }


def _losses(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    probabilities, labels = np.asarray(probabilities, dtype=np.float64), np.asarray(labels).astype(int)
    return -np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, 1.0))  # (n_records,)


def _auroc(membership: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(membership, scores))


def _bootstrap(membership: np.ndarray, scores: np.ndarray, rounds: int, rng) -> tuple[float, float]:
    members, others = np.flatnonzero(membership == 1), np.flatnonzero(membership == 0)
    values = []
    for _ in range(rounds):
        index = np.r_[rng.choice(members, len(members)), rng.choice(others, len(others))]
        values.append(_auroc(membership[index], scores[index]))
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


# -- auditing a bundle -----------------------------------------------------------------------------------------------


def split_outputs(bundle: ModelBundle, data, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The bundle's calibrated probabilities, shape (n, n_classes), and the labels of one split of ``data``."""
    if bundle.task == "image-classification":
        from medai.tasks import image_classification as task
        from medai.tasks.common import probabilities

        splits = task._data_for_bundle(bundle, data)
        if split not in splits:
            raise InvalidInputError(f"The data has no {split!r} split; the audit needs the splits the model was trained on.")
        return probabilities(bundle.model, splits[split], bundle.config), splits[split].labels
    if bundle.task == "tabular-classification":
        from medai.tasks import tabular_classification as task

        table = task._table_for_bundle(bundle, data, split)
        return task.predict_proba(bundle.model, bundle.config, table), table.labels
    raise InvalidInputError(f"The privacy audit covers the tasks {', '.join(AUDITED_TASKS)}; this bundle is {bundle.task!r}.")


def audit_bundle(bundle: ModelBundle | str | Path, data, *, write: bool = True, non_member_split: str = "test", bootstrap: int = 200) -> dict:
    """Membership-inference audit of a bundle on its training split against ``non_member_split`` of ``data``.

    Args:
        bundle: a ModelBundle or its folder.
        data: the data the bundle was trained on (same file or dataset name).
        write: also write ``privacy_audit.json`` and a card section into the bundle.
        non_member_split: the held-out split (``test``, or ``val`` when there is no test split).
        bootstrap: resamples for the AUROC intervals.

    Returns:
        The audit document (see ``membership_inference``), with the bundle's DP budget when it has one.
    """
    bundle = bundle if isinstance(bundle, ModelBundle) else load_bundle(bundle)
    member_p, member_y = split_outputs(bundle, data, "train")
    other_p, other_y = split_outputs(bundle, data, non_member_split)
    result = membership_inference(member_p, member_y, other_p, other_y, bootstrap=bootstrap)
    dp = bundle.config.get("privacy", {}).get("dp")
    audit = {
        "method": "shadow-free membership inference: loss threshold (Yeom et al. 2018) and confidence threshold",
        "members": "train",
        "non_members": non_member_split,
        **result,
        "differential_privacy": None if dp is None else {"epsilon": dp["epsilon"], "delta": dp["delta"]},
    }
    if write:
        if bundle.path is None:
            raise InvalidInputError("The bundle has no folder to write the audit into; save it first.")
        update_bundle(bundle, json_files={AUDIT_FILE: audit}, card_sections={"Privacy audit": card_section(audit)})
    return audit


def card_section(audit: dict) -> str:
    """Markdown of the model card's privacy-audit section."""
    loss, confidence = audit["loss_attack"], audit["confidence_attack"]

    def interval(attack: dict) -> str:
        return f" (95% CI {attack['auroc_ci_low']:.3f}-{attack['auroc_ci_high']:.3f})" if "auroc_ci_low" in attack else ""

    dp = audit.get("differential_privacy")
    return "\n".join([
        f"Membership inference on {audit['n_members']} training vs {audit['n_non_members']} {audit['non_members']} records "
        "(shadow-free baselines; 0.5 = no leakage detected):",
        f"- loss-threshold attack AUROC {loss['auroc']:.3f}{interval(loss)}; membership advantage at the mean training "
        f"loss {loss['advantage']:.3f};",
        f"- confidence-threshold attack AUROC {confidence['auroc']:.3f}{interval(confidence)};",
        f"- mean loss {audit['mean_loss_members']:.3f} on training vs {audit['mean_loss_non_members']:.3f} on held-out records.",
        f"Trained with differential privacy (epsilon = {dp['epsilon']:.3f}, delta = {dp['delta']:.2g})." if dp else
        "Trained without differential privacy.",
        "Stronger attacks (with shadow models) may find more; a low AUROC is not a guarantee.",
    ])  # fmt: skip


# -- rewriting a bundle with its checksums --------------------------------------------------------------------------


def update_bundle(
    bundle: ModelBundle,
    *,
    out: str | Path | None = None,
    config: dict | None = None,
    card_sections: dict[str, str] | None = None,
    json_files: dict[str, object] | None = None,
    drop: tuple[str, ...] = (),
) -> ModelBundle:
    """Re-save a bundle through ``save_bundle`` (atomic, checksums recomputed) with changes.

    Args:
        bundle: a saved bundle (its folder supplies every file not changed here).
        out: where to write (default: the bundle's own folder).
        config: a new config.json (default: the current one).
        card_sections: ``{"Title": markdown}``; each replaces the card's ``## Title`` section or is appended.
        json_files: JSON documents to add or replace, ``{"privacy_audit.json": {...}}``.
        drop: files or folder prefixes (``"ood/"``) to leave out.
    """
    source = Path(bundle.path)
    out = Path(out) if out is not None else source
    card = (source / "card.md").read_text() if (source / "card.md").exists() else ""
    for title, text in (card_sections or {}).items():
        card = _replace_section(card, title, text)
    json_files = json_files or {}
    skip = {CONFIG, WEIGHTS, ESTIMATOR, "metrics.json", "card.md", *json_files}
    with tempfile.TemporaryDirectory() as tmp:  # copies first: ``out`` may be the folder they come from
        files = {}
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            name = path.relative_to(source).as_posix()
            if name not in skip and not name.startswith(drop):
                files[name] = Path(tmp) / name
                files[name].parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, files[name])
        saved = save_bundle(out, bundle.model, config or bundle.config, metrics=bundle.metrics, card=card, files=files,
                            json_files=json_files)  # fmt: skip
    return saved


def _replace_section(card: str, title: str, text: str) -> str:
    section = f"## {title}\n\n{text.rstrip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(card):
        return pattern.sub(lambda _: section + "\n", card, count=1)
    return f"{card.rstrip()}\n\n{section}" if card else section
