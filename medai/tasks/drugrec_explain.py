"""One patient's recommendation: ranked classes, the codes behind each one (occlusion), interaction warnings.

Evidence is occlusion over the history: each diagnosis or procedure of the current and earlier visits is removed in
turn and the drop in each recommended class's probability is its contribution. It works the same for every model
(a code the model does not read contributes 0).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from medai.ehr.ddi import class_names, load_ddi, make_interaction_free
from medai.ehr.records import Patient
from medai.tasks.drugrec_data import CodeEncoder, EncodedVisit
from medai.tasks.drugrec_fit import probabilities

EVIDENCE_KINDS = {"diagnoses": "diagnosis", "procedures": "procedure"}


def recommend_patient(model, config: dict, patient: Patient, *, interaction_free: bool = False, top: int = 20,
                      evidence: int = 3) -> dict:  # fmt: skip
    """Recommendation for ``patient``'s last visit, given it and the earlier ones.

    Returns:
        ``recommended`` (class, name, probability, evidence), ``ranked`` (the ``top`` classes by probability),
        ``interactions`` (every interacting pair among the recommended classes, with names), ``threshold``,
        ``interaction_free`` and, when set, ``removed_for_interactions``, plus ``unknown_codes`` (counts only) and
        ``warnings`` (ignored codes; a history with no known code, whose recommendation is not personalised).
    """
    encoder = CodeEncoder.from_dict(config["encoder"])
    unknown: dict[str, int] = {}
    history = encoder.encode(patient, unknown)[-config["settings"]["max_visits"] :]
    labels = config["label_names"]
    names = {**{c: n for c, n in (config.get("class_names") or {}).items() if n}, **class_names()}  # saved or current
    row = probabilities(model, config, [history], encoder)[0]
    order = np.argsort(-row, kind="stable")
    threshold = config["threshold"]["threshold"]
    chosen = [labels[i] for i in order if row[i] >= threshold]
    graph = load_ddi(config["ddi"]["source"])
    result = {"visits": len(patient.visits), "threshold": threshold, "interaction_free": interaction_free,
              "unknown_codes": unknown, "warnings": _history_warnings(history, unknown)}  # fmt: skip
    if interaction_free:
        kept = make_interaction_free(chosen, [row[labels.index(c)] for c in chosen], graph)
        result["removed_for_interactions"] = [c for c in chosen if c not in kept]
        chosen = kept
    support = occlusion(model, config, history, encoder, [labels.index(c) for c in chosen], evidence, row)
    result["recommended"] = [
        {"class": c, "name": names.get(c, ""), "probability": float(row[labels.index(c)]), "evidence": support[c_index]}
        for c_index, c in zip([labels.index(c) for c in chosen], chosen)
    ]  # fmt: skip
    result["ranked"] = [{"class": labels[i], "name": names.get(labels[i], ""), "probability": float(row[i])} for i in order[:top]]
    result["interactions"] = [{"classes": [a, b], "names": [names.get(a, ""), names.get(b, "")]}
                              for a, b in graph.interacting_pairs(chosen)]  # fmt: skip
    return result


def _history_warnings(history: list[EncodedVisit], unknown: dict[str, int]) -> list[str]:
    """What a clinician must know about the input: codes the model ignored, and a history it knows nothing of."""
    ignored = {kind: count for kind, count in unknown.items() if count}
    warnings = []
    if ignored:
        warnings.append(f"{sum(ignored.values())} code(s) unknown to the model were ignored ("
                        + ", ".join(f"{kind} {count}" for kind, count in ignored.items()) + ").")
    if not any(len(getattr(visit, kind)) for visit in history for kind in ("diagnoses", "procedures", "medications")):
        warnings.append("No code of this patient is known to the model: these are the classes usual in the training "
                        "data, not a personalised recommendation.")
    return warnings


def occlusion(model, config: dict, history: list[EncodedVisit], encoder: CodeEncoder, targets: list[int], top: int,
              full: np.ndarray) -> dict[int, list[dict]]:  # fmt: skip
    """For each target class, the ``top`` codes whose removal lowers its probability most (positive drops only).

    Each item names the code's kind, code, description, ``visit`` (0: the current visit, -1: the one before, ...)
    and ``contribution`` (the probability lost without it).
    """
    if not targets:
        return {}
    variants, where = [], []
    for t, visit in enumerate(history):
        for kind in EVIDENCE_KINDS:
            codes = getattr(visit, kind)
            for position, index in enumerate(codes):
                changed = replace(visit, **{kind: np.delete(codes, position)})
                variants.append([*history[:t], changed, *history[t + 1 :]])
                where.append((t - len(history) + 1, kind, int(index)))
    if not variants:
        return {c: [] for c in targets}
    drops = full[None, :] - probabilities(model, config, variants, encoder)  # (variants, classes)
    descriptions = config.get("descriptions", {})
    vocabulary = {kind: getattr(encoder, f"{kind}_") for kind in EVIDENCE_KINDS}
    out = {}
    for c in targets:
        ranked = [i for i in np.argsort(-drops[:, c], kind="stable")[:top] if drops[i, c] > 1e-6]
        out[c] = []
        for i in ranked:
            visit, kind, index = where[i]
            code = vocabulary[kind][index - 1]
            out[c].append({"kind": EVIDENCE_KINDS[kind], "code": code,
                           "description": descriptions.get(kind, {}).get(code, ""), "visit": visit,
                           "contribution": float(drops[i, c])})  # fmt: skip
    return out
