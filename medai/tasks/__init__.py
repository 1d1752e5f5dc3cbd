"""Tasks tie a kind of data to models, training defaults, evaluation and explanation.

Each task module provides ``train``, ``evaluate``, ``predict``, ``explain`` and ``build_model(config)``.
Modules are imported lazily so that one task's optional dependencies never burden another.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from medai.errors import check_choice

TASKS: dict[str, str] = {
    "drug-recommendation": "medai.tasks.drug_recommendation",
    "drug-target-affinity": "medai.tasks.drug_target_affinity",
    "ecg-classification": "medai.tasks.ecg_classification",
    "forecasting": "medai.tasks.forecasting",
    "image-classification": "medai.tasks.image_classification",
    "molecular-property": "medai.tasks.molecular_property",
    "mortality": "medai.tasks.mortality",
    "tabular-classification": "medai.tasks.tabular_classification",
}


def get_task(name: str) -> ModuleType:
    """Return the module implementing task ``name`` (with a did-you-mean for unknown names)."""
    check_choice("task", name, TASKS)
    return importlib.import_module(TASKS[name])
