"""Consistent surrogates for PHI found in notes: the same value gives the same surrogate under one key.

Names map to names from the lexicon, dates move by the patient's offset (format kept), numbers keep their shape with
keyed digits, e-mail, URL and IP addresses map into reserved documentation ranges (``example.org``, 192.0.2.0/24,
2001:db8::/32) and ages over 89 become ``90+``.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from medai.privacy.deid.lexicon import Lexicon
from medai.privacy.deid.names import fold
from medai.privacy.deid.patterns import MONTHS
from medai.privacy.pseudonym import Pseudonymizer

_SURROGATE_FIRST = ("Alex", "Jordan", "Casey", "Morgan", "Riley", "Taylor", "Avery", "Quinn", "Rowan", "Emerson")
_SURROGATE_LAST = ("Lindqvist", "Okafor", "Marchetti", "Haldane", "Ferreira", "Novak", "Castellan", "Whitlock")
_SURROGATE_PLACES = ("Millbrook", "Ashford", "Cedar Falls", "Riverton", "Oakdale", "Fairview", "Glenwood", "Kingsley")
_MONTH_NAMES = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
                "November", "December"]  # fmt: skip
_REFERENCE_YEAR = 2001  # year used to shift dates written without one (not a leap year)


class SurrogateMaker:
    """Make consistent surrogates with a :class:`~medai.privacy.pseudonym.Pseudonymizer`.

    Args:
        pseudonymizer: holds the key; the same key gives the same surrogates across documents.
        lexicon: name lists to draw surrogate names from (built-in names when empty).
    """

    def __init__(self, pseudonymizer: Pseudonymizer, lexicon: Lexicon):
        self.pseudonymizer = pseudonymizer
        firsts = sorted(n for n in lexicon.first_names if n.isalpha() and n not in lexicon.ambiguous_names)
        lasts = sorted(n for n in lexicon.last_names if n.isalpha() and n not in lexicon.ambiguous_names)
        self._first = [n.capitalize() for n in firsts] or list(_SURROGATE_FIRST)
        self._last = [n.capitalize() for n in lasts] or list(_SURROGATE_LAST)
        self._first_set = set(firsts)

    def _number(self, namespace: str, value: str) -> int:
        return int(self.pseudonymizer.pseudonym(value, namespace=f"surrogate:{namespace}"), 16)

    def replace(self, category: str, value: str, patient: str) -> str:
        """Surrogate for ``value`` of ``category``; dates are shifted by ``patient``'s offset."""
        method = getattr(self, f"_{category.lower()}", None)
        return method(value, patient) if method else self._shape(category, value)

    def _name(self, value: str, patient: str) -> str:
        def one(match: re.Match) -> str:
            word = match.group(0)
            key = fold(word)
            if len(word) == 1:
                pool, number = "ABCDEFGHJKLMNPRSTW", self._number("initial", key)
            else:
                pool = self._first if key in self._first_set else self._last
                number = self._number("name", key)
            new = pool[number % len(pool)]
            if fold(new) == key:  # never the original name back: the next one in the pool
                new = pool[(number + 1) % len(pool)]
            return new.upper() if word.isupper() and len(word) > 1 else new

        return re.sub(r"[^\W\d_]+(?:['’-][^\W\d_]+)*", one, value)

    def _location(self, value: str, patient: str) -> str:
        if re.match(r"\d{5}(-\d{4})?$", value):
            return self._shape("zip", value)
        number = self._number("place", value.upper())
        if re.match(r"\d", value):  # street address
            return f"{number % 900 + 100} {self._last[number % len(self._last)]} Street"
        place = _SURROGATE_PLACES[number % len(_SURROGATE_PLACES)]
        if place.lower() in value.lower():  # never the original place back
            place = _SURROGATE_PLACES[(number + 1) % len(_SURROGATE_PLACES)]
        words = ("Hospital", "Medical Center", "Clinic")
        for word in words:
            if word.lower() in value.lower():
                return f"{place} {word}"
        return place

    def _age(self, value: str, patient: str) -> str:
        return "90+"

    def _email(self, value: str, patient: str) -> str:
        return f"user{self._number('email', value.lower()) % 100000:05d}@example.org"

    def _url(self, value: str, patient: str) -> str:
        return f"https://example.org/{self._number('url', value) % 100000:05d}"

    def _ip(self, value: str, patient: str) -> str:
        number = self._number("ip", value.lower())
        return f"2001:db8::{number % 65536:x}" if ":" in value else f"192.0.2.{number % 254 + 1}"

    def _date(self, value: str, patient: str) -> str:
        offset = self.pseudonymizer.date_offset_days(patient)
        shifted = shift_date_text(value, offset)
        return shifted if shifted is not None else "[DATE]"

    def _shape(self, category: str, value: str) -> str:
        """Same shape: each digit and letter replaced by a keyed one (separators kept)."""
        digest = self.pseudonymizer.pseudonym(value, namespace=f"surrogate:{category}")
        digest = (digest * (len(value) // len(digest) + 1))[: len(value)]
        out = []
        for ch, h in zip(value, digest):
            if ch.isdigit():
                out.append(str(int(h, 16) % 10))
            elif ch.isalpha():
                letter = "ABCDEFGHJKLMNPRSTUVWXYZ"[int(h, 16) % 23]
                out.append(letter if ch.isupper() else letter.lower())
            else:
                out.append(ch)
        if out == list(value):  # never the original back (a short value can draw itself): change its first symbol
            first = next((i for i, ch in enumerate(value) if ch.isalnum()), None)
            if first is not None:
                ch = value[first]
                out[first] = str((int(ch) + 1) % 10) if ch.isdigit() else ("B" if ch.upper() == "A" else "A")
                out[first] = out[first].lower() if ch.islower() else out[first]
        return "".join(out)


def shift_date_text(value: str, offset_days: int) -> str | None:
    """``value`` (one of the date formats the detector finds) moved by ``offset_days``, in the same format.

    >>> shift_date_text("01/02/2020", -2)
    '12/31/2019'
    >>> shift_date_text("Jan 2, 2020", 1)
    'Jan 3, 2020'
    >>> shift_date_text("2020-01-02", 30)
    '2020-02-01'
    """
    numeric = re.fullmatch(r"(\d{1,2})([/.-])(\d{1,2})(?:\2(\d{2}|\d{4}))?", value)
    if numeric:
        a, sep, b, year = numeric.groups()
        day_first = int(a) > 12
        month, day = (int(b), int(a)) if day_first else (int(a), int(b))
        moved = _move(year, month, day, offset_days)
        if moved is None:
            return None
        first, second = (moved.day, moved.month) if day_first else (moved.month, moved.day)
        text = f"{_pad(first, a)}{sep}{_pad(second, b)}"
        return text + (f"{sep}{_year_text(moved.year, year)}" if year else "")
    iso = re.fullmatch(r"(\d{4})([/.-])(\d{1,2})\2(\d{1,2})", value)
    if iso:
        year, sep, month, day = iso.groups()
        moved = _move(year, int(month), int(day), offset_days)
        return None if moved is None else f"{moved.year}{sep}{_pad(moved.month, month)}{sep}{_pad(moved.day, day)}"
    return _shift_words(value, offset_days)


def _shift_words(value: str, offset_days: int) -> str | None:
    month_match = re.search(r"[^\W\d_]+\.?", value)
    while month_match and month_match.group(0).lower().rstrip(".") not in MONTHS:
        month_match = re.compile(r"[^\W\d_]+\.?").search(value, month_match.end())
    if not month_match:
        return None
    month_word = month_match.group(0)
    day_match = re.search(r"\b(\d{1,2})(st|nd|rd|th)?\b", value)
    year_match = re.search(r"(?:\b(1[89]\d\d|20\d\d)\b|'(\d\d))", value)
    year = year_match.group(1) or ("20" + year_match.group(2)) if year_match else None
    day = int(day_match.group(1)) if day_match else 15
    moved = _move(year, MONTHS[month_word.lower().rstrip(".")], day, offset_days if day_match else 0)
    if moved is None:
        return None
    if not day_match:  # month and year only: keep the month (no day to shift by)
        return value
    name = _MONTH_NAMES[moved.month - 1]
    spanish = month_word.lower().rstrip(".") in _SPANISH
    if spanish:
        name = _SPANISH[moved.month - 1]
    elif len(month_word.rstrip(".")) <= 4 and month_word.lower().rstrip(".") != name.lower():
        name = name[:3] + ("." if month_word.endswith(".") else "")
    if month_word[:1].islower():
        name = name.lower()
    elif month_word.isupper() and len(month_word) > 1:
        name = name.upper()
    out = value[: month_match.start()] + name + value[month_match.end() :]
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(moved.day % 10 if moved.day not in (11, 12, 13) else 0, "th")
    day_text = f"{moved.day}{suffix if day_match.group(2) else ''}"
    out = re.sub(r"\b\d{1,2}(?:st|nd|rd|th)?\b", day_text, out, count=1)
    if year_match:
        out = out.replace(year_match.group(0), str(moved.year) if year_match.group(1) else f"'{moved.year % 100:02d}", 1)
    return out


_SPANISH = ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
            "noviembre", "diciembre"]  # fmt: skip


def _move(year: str | None, month: int, day: int, offset_days: int) -> date | None:
    if year is None:
        full = _REFERENCE_YEAR
    elif len(year) == 2:
        full = 2000 + int(year) if int(year) < 50 else 1900 + int(year)
    else:
        full = int(year)
    try:
        return date(full, month, day) + timedelta(days=offset_days)
    except ValueError:
        return None


def _pad(number: int, like: str) -> str:
    return f"{number:02d}" if len(like) == 2 else str(number)


def _year_text(year: int, like: str) -> str:
    return f"{year % 100:02d}" if len(like) == 2 else str(year)
