"""The EHR data model: a cohort of patients, each an ordered tuple of visits.

Codes are kept as strings exactly as the source writes them (ICD-9-CM without dots, as in MIMIC-III; medications as
ATC level-3 classes such as ``A02B``). Identifiers are pseudonyms and dates are shifted when the cohort was loaded
with de-identification on (the default), so a ``Cohort`` can be saved or logged without patient identifiers.

>>> v1 = Visit("a1", None, ("4019", "25000"), ("3893",), ("A10B", "C09A"))
>>> v2 = Visit("a2", None, ("4019",), (), ("C09A",))
>>> cohort = Cohort([Patient("p1", (v1, v2))])
>>> cohort.n_visits, cohort.vocabulary("diagnoses")
(2, ['25000', '4019'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

KINDS = ("diagnoses", "procedures", "medications")


@dataclass(frozen=True)
class Visit:
    """One hospital admission: its (pseudonymised) id, (shifted) admission time and its codes."""

    admission: str
    admitted: datetime | None
    diagnoses: tuple[str, ...]
    procedures: tuple[str, ...]
    medications: tuple[str, ...]


@dataclass(frozen=True)
class Patient:
    """A (pseudonymised) patient id and the patient's visits in time order."""

    patient: str
    visits: tuple[Visit, ...]


@dataclass
class Cohort:
    """Patients plus what ingestion counted (``report``) and code descriptions for explanations.

    ``report`` holds counts only (rows read, unknown codes, unmapped drugs, malformed dates, duplicates, ...), never
    values from records. ``descriptions`` maps a kind (``diagnoses``, ``procedures``, ``medications``) to
    ``{code: description}``.
    """

    patients: list[Patient]
    report: dict = field(default_factory=dict)
    descriptions: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def n_visits(self) -> int:
        return sum(len(p.visits) for p in self.patients)

    def vocabulary(self, kind: str) -> list[str]:
        """Sorted distinct codes of one kind (``diagnoses``, ``procedures`` or ``medications``) in the cohort."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
        return sorted({code for p in self.patients for v in p.visits for code in getattr(v, kind)})
