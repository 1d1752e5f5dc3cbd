"""Find and replace the HIPAA Safe Harbor identifiers in free-text clinical notes.

The method stands on rules, dictionaries and context (no model is downloaded): regular expressions for dates,
ages over 89, phone and fax numbers, e-mail, URLs, IP addresses, SSNs, numbers announced by a keyword (medical
record, account, health plan, licence, device, vehicle) and addresses; titles, cues and the PhysioNet deid
dictionaries for names and places (:mod:`.names`, :mod:`.lexicon`). Overlapping candidates are resolved by
priority, then length.

Replacement is by category tag (``[NAME]``) or by consistent surrogate (:mod:`.surrogates`): the same value gives
the same surrogate under one key, and dates move by one offset per patient, so intervals are kept.

Examples:
    >>> deid = TextDeidentifier()
    >>> note = "Seen by Dr. Hannah Whitlock on 03/14/2021. Call 617-555-0143."
    >>> deid.deidentify(note).text
    'Seen by Dr. [NAME] on [DATE]. Call [PHONE].'
    >>> [(s.category, s.text) for s in deid.find(note)]
    [('NAME', 'Hannah Whitlock'), ('DATE', '03/14/2021'), ('PHONE', '617-555-0143')]
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from medai.errors import InvalidInputError, check_choice
from medai.privacy.deid import patterns
from medai.privacy.deid.lexicon import Lexicon, load_lexicon
from medai.privacy.deid.names import NameFinder, propagate
from medai.privacy.deid.patterns import Candidate

CATEGORIES = ("NAME", "LOCATION", "DATE", "AGE", "PHONE", "FAX", "EMAIL", "SSN", "MRN", "ACCOUNT", "HEALTH_PLAN",
              "LICENSE", "DEVICE", "VEHICLE", "URL", "IP", "ID")  # fmt: skip
MODES = ("tag", "surrogate")


@dataclass(frozen=True)
class Span:
    """One identifier found in a note: ``text[start:end]`` is of ``category`` (one of :data:`CATEGORIES`)."""

    start: int
    end: int
    category: str
    text: str = field(repr=False)  # the PHI itself: never log it

    def to_dict(self, with_text: bool = False) -> dict:
        out = {"start": self.start, "end": self.end, "category": self.category}
        return out | ({"text": self.text} if with_text else {})


@dataclass
class DeidResult:
    """The de-identified text and the spans that were replaced (offsets refer to the original text)."""

    text: str
    spans: list[Span]

    def counts(self) -> dict[str, int]:
        """Number of spans per category (no PHI)."""
        return dict(sorted(Counter(span.category for span in self.spans).items()))


class TextDeidentifier:
    """Rule-, dictionary- and context-based de-identifier of clinical notes.

    Args:
        mode: ``"tag"`` replaces each identifier with ``[CATEGORY]``; ``"surrogate"`` with a consistent surrogate.
        key: secret key for surrogates (see :func:`medai.privacy.pseudonym.load_key`); without one, the key in
            ``MEDAI_DEID_KEY`` is used, or a random key for this object only.
        lexicon: dictionaries (default: the PhysioNet deid lists under the data folder, see :mod:`.lexicon`).
        categories: restrict detection to these categories (default: all of :data:`CATEGORIES`).
    """

    def __init__(self, mode: str = "tag", *, key: bytes | str | None = None, lexicon: Lexicon | None = None,
                 categories: tuple[str, ...] | None = None):
        self.mode = check_choice("mode", mode, MODES)
        for category in categories or ():
            check_choice("categories", category, CATEGORIES)
        self.categories = tuple(categories or CATEGORIES)
        self.lexicon = lexicon or load_lexicon()
        self._names = NameFinder(self.lexicon)
        self._key = key
        self._surrogates = None

    def find(self, text: str) -> list[Span]:
        """The identifiers in ``text``, sorted by position, not overlapping."""
        if not isinstance(text, str):
            raise InvalidInputError(f"A note must be a string; got {type(text).__name__}.")
        candidates = [*patterns.find_contacts(text), *patterns.find_identifiers(text), *patterns.find_dates(text),
                      *patterns.find_ages(text), *patterns.find_addresses(text), *self._names.find(text)]
        chosen = _resolve(candidates, text)
        chosen = _resolve(chosen + list(propagate(text, chosen, self.lexicon)), text)
        keep = set(self.categories)
        return [Span(c.start, c.end, c.category, text[c.start : c.end]) for c in chosen if c.category in keep]

    def deidentify(self, text: str, *, patient: str | None = None, document: str | None = None) -> DeidResult:
        """Replace the identifiers in ``text``.

        Args:
            text: the note.
            patient: patient key for date shifting in surrogate mode (one offset per patient); defaults to
                ``document``, then to one offset for the whole key.
            document: document id (used for date shifting when no patient is given).
        """
        spans = self.find(text)
        pieces, position = [], 0
        for span in spans:
            pieces.append(text[position : span.start])
            pieces.append(self._replacement(span, patient if patient is not None else (document or "")))
            position = span.end
        pieces.append(text[position:])
        return DeidResult("".join(pieces), spans)

    def _replacement(self, span: Span, patient: str) -> str:
        if self.mode == "tag":
            return f"[{span.category}]"
        if self._surrogates is None:
            from medai.privacy.deid.surrogates import SurrogateMaker
            from medai.privacy.pseudonym import Pseudonymizer

            self._surrogates = SurrogateMaker(Pseudonymizer(self._key, allow_ephemeral=True), self.lexicon)
        return self._surrogates.replace(span.category, span.text, patient)


def deidentify_text(text: str, mode: str = "tag", **kwargs) -> str:
    """Shortcut: the de-identified ``text`` (see :class:`TextDeidentifier`)."""
    return TextDeidentifier(mode, **kwargs).deidentify(text).text


def _resolve(candidates: list[Candidate], text: str) -> list[Candidate]:
    """Keep the best non-overlapping candidates: higher priority first, then longer spans; a name or place that
    overlaps a better span keeps its longest part outside it."""
    chosen: list[Candidate] = []
    taken: list[tuple[int, int]] = []
    for candidate in sorted(candidates, key=lambda c: (-c.priority, -(c.end - c.start), c.start)):
        if candidate.end <= candidate.start:
            continue
        overlapping = [(start, end) for start, end in taken if candidate.start < end and start < candidate.end]
        if overlapping:
            candidate = _remainder(candidate, overlapping, text)
            if candidate is None:
                continue
        chosen.append(candidate)
        taken.append((candidate.start, candidate.end))
    return sorted(chosen, key=lambda c: c.start)


_LEADING_FUNCTION_WORDS = re.compile(r"(?:(?:of|and|at|the|for|in|de|del|la|el|y)\s+)+")


def _remainder(candidate: Candidate, overlapping: list[tuple[int, int]], text: str) -> Candidate | None:
    """The longest part of a name or place candidate left outside spans already taken (None if only punctuation)."""
    if candidate.category not in ("NAME", "LOCATION"):
        return None
    cuts = sorted(overlapping)
    pieces, position = [], candidate.start
    for start, end in cuts:
        pieces.append((position, max(position, start)))
        position = max(position, end)
    pieces.append((position, candidate.end))
    start, end = max(pieces, key=lambda piece: piece[1] - piece[0])
    while start < end and not text[start].isalnum():
        start += 1
    lead = _LEADING_FUNCTION_WORDS.match(text, start, end)
    if lead:
        start = lead.end()
    while end > start and not text[end - 1].isalnum():
        end -= 1
    if end - start < 2:
        return None
    return candidate._replace(start=start, end=end)
