"""Score a de-identifier: token- and span-level recall and precision per category; gold-standard readers.

Token level (the headline): tokens are runs of word characters (``\\w+``). A gold token of category C counts as
found when any predicted span covers it, whatever category was predicted (what matters for de-identification is
that it was removed); a predicted token counts as correct when it lies in any gold span. ``strict`` figures also
require the categories to agree. Gold spans of category ``IGNORE`` (for example MEDDOCAN's sex or country, or a
year on its own: not Safe Harbor identifiers) are left out of both recall and precision.

Readers: MEDDOCAN (brat ``.txt`` + ``.ann``, labels mapped to HIPAA categories) and the PhysioNet deid gold
standard (``id-phi.phrase``, ``id.deid``; the notes ``id.text`` only where a licensed copy is supplied).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from medai import settings
from medai.errors import DataNotFoundError, InvalidInputError
from medai.privacy.deid.text import Span

IGNORE = "IGNORE"
MEDDOCAN_TO_HIPAA = {
    "NOMBRE_SUJETO_ASISTENCIA": "NAME", "NOMBRE_PERSONAL_SANITARIO": "NAME", "TERRITORIO": "LOCATION",
    "CALLE": "LOCATION", "HOSPITAL": "LOCATION", "INSTITUCION": "LOCATION", "CENTRO_SALUD": "LOCATION",
    "FECHAS": "DATE", "EDAD_SUJETO_ASISTENCIA": "AGE", "NUMERO_TELEFONO": "PHONE", "NUMERO_FAX": "FAX",
    "CORREO_ELECTRONICO": "EMAIL", "ID_SUJETO_ASISTENCIA": "MRN", "ID_ASEGURAMIENTO": "HEALTH_PLAN",
    "ID_TITULACION_PERSONAL_SANITARIO": "LICENSE", "ID_CONTACTO_ASISTENCIAL": "ACCOUNT",
    "ID_EMPLEO_PERSONAL_SANITARIO": "ID", "URL_WEB": "URL", "DIREC_PROT_INTERNET": "IP",
    "IDENTIF_VEHICULOS_NRSERIE_PLACAS": "VEHICLE", "IDENTIF_DISPOSITIVOS_NRSERIE": "DEVICE",
    "IDENTIF_BIOMETRICOS": "ID", "NUMERO_IDENTIF": "ID",
    # not Safe Harbor identifiers: sex, country, profession, other patient facts, relatives named by relation
    "SEXO_SUJETO_ASISTENCIA": IGNORE, "PAIS": IGNORE, "PROFESION": IGNORE, "OTROS_SUJETO_ASISTENCIA": IGNORE,
    "FAMILIARES_SUJETO_ASISTENCIA": IGNORE,
}  # fmt: skip
PHYSIONET_TO_HIPAA = {"HCPName": "NAME", "PTName": "NAME", "PTNameInitial": "NAME", "RelativeProxyName": "NAME",
                      "Date": "DATE", "DateYear": IGNORE, "Location": "LOCATION", "Phone": "PHONE", "Age": "AGE",
                      "Other": "ID"}  # fmt: skip
_TOKEN = re.compile(r"\w+")


@dataclass
class GoldDocument:
    """A note with its gold spans (categories already mapped to HIPAA categories or ``IGNORE``)."""

    id: str
    text: str
    spans: list[Span] = field(default_factory=list)


def score(documents: Iterable[tuple[str, list[Span], list[Span]]]) -> dict:
    """Token- and span-level scores over ``(text, gold_spans, predicted_spans)`` triples.

    Returns:
        ``{"token": {"overall": {...}, "strict_overall": {...}, "per_category": {C: {...}}},
        "span": {"per_category": {...}, "overall": {...}}}`` with recall, precision and counts.
    """
    t = Counter()  # token counts keyed by (kind, category)
    s = Counter()  # span counts
    for text, gold, predicted in documents:
        _count_tokens(text, gold, predicted, t)
        _count_spans(gold, predicted, s)
    categories = sorted({c for kind, c in t if c} | {c for kind, c in s if c})
    token = {
        "overall": _figures(t["found", None], t["gold", None], t["correct", None], t["pred", None]),
        "strict_overall": _figures(t["found_strict", None], t["gold", None], t["correct_strict", None], t["pred", None]),
        "per_category": {c: _figures(t["found", c], t["gold", c], t["correct", c], t["pred", c]) for c in categories},
    }
    span = {
        "overall": _figures(s["found", None], s["gold", None], s["correct", None], s["pred", None]) | {"exact": s["exact", None]},
        "per_category": {c: _figures(s["found", c], s["gold", c], s["correct", c], s["pred", c]) | {"exact": s["exact", c]}
                         for c in categories},
    }
    return {"token": token, "span": span}


def _figures(found: int, gold: int, correct: int, predicted: int) -> dict:
    recall = found / gold if gold else None
    precision = correct / predicted if predicted else None
    f1 = 2 * recall * precision / (recall + precision) if recall and precision else None
    return {"recall": _round(recall), "precision": _round(precision), "f1": _round(f1), "gold": gold,
            "predicted": predicted, "found": found}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _label_chars(length: int, spans: list[Span]) -> list[str | None]:
    labels: list[str | None] = [None] * length
    for span in spans:
        for i in range(max(0, span.start), min(length, span.end)):
            if labels[i] is None or span.category == IGNORE:
                labels[i] = span.category
    return labels


def _count_tokens(text: str, gold: list[Span], predicted: list[Span], t: Counter) -> None:
    gold_chars, pred_chars = _label_chars(len(text), gold), _label_chars(len(text), predicted)
    for match in _TOKEN.finditer(text):
        g = next((gold_chars[i] for i in range(match.start(), match.end()) if gold_chars[i]), None)
        p = next((pred_chars[i] for i in range(match.start(), match.end()) if pred_chars[i]), None)
        if g == IGNORE:
            continue
        if g:
            for key in (g, None):
                t["gold", key] += 1
                t["found", key] += p is not None
                t["found_strict", key] += p == g
        if p:
            for key in (p, None):
                t["pred", key] += 1
                t["correct", key] += g is not None
                t["correct_strict", key] += p == g


def _overlaps(a: Span, b: Span) -> bool:
    return a.start < b.end and b.start < a.end


def _count_spans(gold: list[Span], predicted: list[Span], s: Counter) -> None:
    ignored = [g for g in gold if g.category == IGNORE]
    gold = [g for g in gold if g.category != IGNORE]
    for g in gold:
        for key in (g.category, None):
            s["gold", key] += 1
            s["found", key] += any(_overlaps(g, p) for p in predicted)
            s["exact", key] += any(g.start == p.start and g.end == p.end for p in predicted)
    for p in predicted:
        if any(_overlaps(p, i) for i in ignored) and not any(_overlaps(p, g) for g in gold):
            continue
        for key in (p.category, None):
            s["pred", key] += 1
            s["correct", key] += any(_overlaps(p, g) for g in gold)


# -- MEDDOCAN ----------------------------------------------------------------------------------------------------
def meddocan_folder(split: str = "test", root: str | Path | None = None) -> Path:
    """``corpus/<split>/brat`` of MEDDOCAN under ``root`` (default: ``deid_meddocan_es`` in the data folder)."""
    if split not in ("train", "dev", "test"):
        raise InvalidInputError(f"The 'split' parameter must be one of 'train', 'dev', 'test'; got {split!r}.")
    if root is None:
        base = settings.data_dir()
        root = base / "deid_meddocan_es" if base else None
    folder = Path(root) / "corpus" / split / "brat" if root else None
    if folder is None or not folder.is_dir():
        raise DataNotFoundError(f"MEDDOCAN not found at {folder}; set MEDAI_DATA_DIR to the folder holding deid_meddocan_es.")
    return folder


def read_brat(txt_path: str | Path, mapping: dict[str, str] | None = None) -> GoldDocument:
    """One brat document (``X.txt`` and ``X.ann``); labels mapped with ``mapping`` (unknown labels raise)."""
    txt_path = Path(txt_path)
    text = txt_path.read_text(encoding="utf-8")
    spans = []
    for line in txt_path.with_suffix(".ann").read_text(encoding="utf-8").splitlines():
        if not line.startswith("T"):
            continue
        _, info, surface = line.split("\t", 2)
        label, start, end = info.split(" ")[0], int(info.split(" ")[1]), int(info.split(" ")[-1])
        category = label if mapping is None else mapping.get(label)
        if category is None:
            raise InvalidInputError(f"{txt_path.with_suffix('.ann').name}: unknown label {label!r}; expected one of {sorted(mapping)}.")
        if category == "DATE" and re.fullmatch(r"(?:año\s+|del?\s+)?\d{4}", surface.strip(), re.IGNORECASE):
            category = IGNORE  # a year on its own is not a Safe Harbor identifier
        if category == "AGE" and not _age_over_89(surface):
            category = IGNORE
        spans.append(Span(start, end, category, surface))
    return GoldDocument(txt_path.stem, text, spans)


def _age_over_89(surface: str) -> bool:
    number = re.search(r"\d+", surface)
    return number is not None and int(number.group(0)) > 89 and not re.search(r"mes|d[ií]a|semana", surface, re.IGNORECASE)


def load_meddocan(split: str = "test", root: str | Path | None = None, limit: int | None = None) -> list[GoldDocument]:
    """MEDDOCAN documents of ``split`` with HIPAA categories (see :data:`MEDDOCAN_TO_HIPAA`)."""
    paths = sorted(meddocan_folder(split, root).glob("*.txt"))[:limit]
    return [read_brat(path, MEDDOCAN_TO_HIPAA) for path in paths]


# -- PhysioNet deid -------------------------------------------------------------------------------------------------
def read_physionet_phrases(path: str | Path) -> dict[tuple[int, int], list[Span]]:
    """``id-phi.phrase``: gold spans with HIPAA categories, keyed by (patient, note)."""
    out: dict[tuple[int, int], list[Span]] = {}
    for line in Path(path).read_text(encoding="ascii").splitlines():
        if not line.strip():
            continue
        pid, note, start, end, category, phrase = ([*line.split(" ", 5), ""])[:6]
        mapped = PHYSIONET_TO_HIPAA.get(category)
        if mapped is None:
            raise InvalidInputError(f"{Path(path).name}: unknown category {category!r}; expected one of {sorted(PHYSIONET_TO_HIPAA)}.")
        out.setdefault((int(pid), int(note)), []).append(Span(int(start), int(end), mapped, phrase))
    return out


def read_physionet_locations(path: str | Path) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """``id.deid`` or ``GSoutput/id.phi``: PHI locations ``(start, end)`` keyed by (patient, note)."""
    out: dict[tuple[int, int], list[tuple[int, int]]] = {}
    key = None
    for line in Path(path).read_text(encoding="ascii").splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "Patient":
            key = (int(fields[1]), int(fields[3]))
            out.setdefault(key, [])
        elif key is not None:
            out[key].append((int(fields[1]), int(fields[2])))
    return out


def read_physionet_text(path: str | Path) -> dict[tuple[int, int], str]:
    """The licensed ``id.text``: note bodies keyed by (patient, note). Not distributed with medai."""
    text = Path(path).read_text(encoding="ascii", errors="replace")
    pattern = re.compile(r"START_OF_RECORD=(\d+)\|\|\|\|(\d+)\|\|\|\|\n(.*?)\|\|\|\|END_OF_RECORD", re.DOTALL)
    return {(int(m.group(1)), int(m.group(2))): m.group(3) for m in pattern.finditer(text)}


def load_physionet(root: str | Path | None = None, text_path: str | Path | None = None) -> list[GoldDocument]:
    """PhysioNet deid gold documents; needs a licensed ``id.text`` (``text_path``, or ``id.text`` in ``root``)."""
    if root is None:
        base = settings.data_dir()
        root = base / "deid_physionet" if base else Path("deid_physionet")
    root = Path(root)
    text_path = Path(text_path) if text_path else root / "id.text"
    if not text_path.is_file():
        raise DataNotFoundError(f"{text_path} not found: the PhysioNet deid notes are restricted; supply your licensed id.text.")
    gold = read_physionet_phrases(root / "id-phi.phrase")
    return [GoldDocument(f"{pid}-{note}", body, gold.get((pid, note), []))
            for (pid, note), body in sorted(read_physionet_text(text_path).items())]


def physionet_overlap_counts(gold: dict, detected: dict) -> dict:
    """The deid package's own rule: a gold span is found when a detected span in the same note overlaps or touches
    it (closed intervals); a detected span touching no gold span is a false positive.

    Returns:
        ``{"tp", "fp", "fn", "recall", "ppv"}``; ``ppv`` is the share of detected spans that touch a gold span,
        as the package reports it (1,720 / 546 / 59, recall 0.967, PPV 0.748 for its own ``GSoutput/id.phi``).
    """
    tp = fn = fp = total = 0
    for key in set(gold) | set(detected):
        g, d = gold.get(key, []), detected.get(key, [])
        touches = lambda a, b: a[0] <= b[1] and b[0] <= a[1]  # noqa: E731
        found = sum(any(touches(x, y) for y in d) for x in g)
        tp, fn = tp + found, fn + len(g) - found
        fp += sum(not any(touches(y, x) for x in g) for y in d)
        total += len(d)
    return {"tp": tp, "fp": fp, "fn": fn, "recall": _round(tp / (tp + fn)) if tp + fn else None,
            "ppv": _round((total - fp) / total) if total else None}
