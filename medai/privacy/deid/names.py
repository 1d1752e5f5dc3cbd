"""Names and places in notes, found by titles, context cues and dictionaries (see :mod:`.lexicon`).

Rules, strongest first: a title or credential around a name (``Dr. Ann Lee``, ``Ann Lee, RN``); a cue before it
(``Patient:``, ``daughter``, ``signed by``, ``lives in``); ``City, ST 02115``; dictionary runs (``JOHN SMITH``,
``Smith, John``, an unambiguous surname on its own); and finally every other occurrence of a name already found.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator

from medai.privacy.deid.lexicon import Lexicon
from medai.privacy.deid.patterns import MONTHS, Candidate

_I = re.IGNORECASE
_UPPER = r"[^\W\d_a-zß-ÿ]"  # an upper-case letter (any script with case)
_WORD = rf"{_UPPER}[\w'’]*(?:-{_UPPER}?[\w'’]+)*"
_INITIAL = rf"{_UPPER}\.?(?![\w'’])"
_PARTICLE = r"(?:de|da|di|du|del|della|der|den|van|von|la|le|bin|ibn|al|el|y|dos|das|st\.?)"
_NAME_TOKEN = rf"(?:{_INITIAL}|{_WORD})"
NAME_RUN = re.compile(rf"(?<![\w'’-]){_NAME_TOKEN}(?:[ \t]+(?:{_PARTICLE}[ \t]+)*{_NAME_TOKEN}){{0,3}}")
TITLE = re.compile(r"\b(?:(?:Dr|Dra|Drs|Mr|Mrs|Ms|Miss|Mx|Prof|Sr|Sra|Srta|Rev|Hon)\.?|Doctor|Doctora|Professor|"
                   r"Nurse|Father|Sister|Brother|Pastor|Rabbi|Chaplain|Judge|Officer)[ \t]+(?=[^\W\d_])")
CREDENTIAL = re.compile(r",?[ \t]+(?:M\.?D\.?|RN|R\.N\.|NP|PA-C|PA|D\.?O\.|DO|PhD|Ph\.D\.|MBBS|DDS|DNP|CNM|CRNA|LPN|"
                        r"FNP(?:-BC)?|APRN|ANP|FACP|FACS|FRCP|MSW|LCSW|LICSW|PharmD|RPh|RRT|PT|DPT|OTR)\b")
NAME_CUE = re.compile(
    r"(?:\b(?:patient(?:'s)? name|patient|pt|name|nombre|apellidos|nombre y apellidos|paciente|attending|resident|"
    r"intern|fellow|pcp|primary care(?: physician| provider| doctor)?|referring(?: physician| provider)?|surgeon|"
    r"physician|provider|doctor|nurse|rn|np|cardiologist|oncologist|consultant|m[ée]dico|m[ée]dica|enfermer[oa]|"
    r"signed|electronically signed|dictated|transcribed|reviewed|cosigned|authenticated|cc|seen|evaluated|examined|"
    r"spoke(?: with| to)?|discussed with|called|contacted|accompanied|informed|notified|met with|care of|c/o|"
    r"emergency contact|contact|next of kin|nok|hcp|health care proxy|healthcare proxy|proxy|guardian|poa|"
    r"wife|husband|spouse|partner|daughter|son|mother|father|mom|dad|sister|brother|niece|nephew|aunt|uncle|"
    r"cousin|grandson|granddaughter|grandmother|grandfather|friend|neighbou?r|caregiver|fianc[ée]e?|"
    r"stepson|stepdaughter|(?:son|daughter|sister|brother|mother|father)-in-law|sibling|child|esposa|esposo|marido|"
    r"hija|hijo|madre|padre|we saw|this is|meet|met|visited by|"
    r"hermana|hermano)(?:\s+(?:by|with|to|is|was|named|of|record))?)\s*[:,(-]?\s*(?:(?:Dr|Dra|Mr|Mrs|Ms)\.?\s+)?"
    rf"(?-i:(?={_UPPER}))", _I)
PLACE_CUE = re.compile(
    r"\b(?:lives|living|lived|resides|residing|resident|moved|moving|relocated|born|native|grew up|raised|visiting|"
    r"travel+ed|trip|vacation(?:ed|ing)?|home|returned|returning|commutes|works|worked|employed|vive|reside|"
    r"drove|driven|came|come|flew|flown|arrived|relocating|visited|"
    r"residente|natural|procedente|originari[oa]|nacid[oa]|domiciliad[oa]|trasladad[oa]|derivad[oa])\s+"
    r"(?:(?:back|here|up|down|over|home|locally|alone|with \w+)\s+)?(?:in|of|to|from|at|near|en|de|del|desde|a)\s+"
    rf"(?:the\s+)?(?-i:(?={_UPPER}))", _I)
PLACE_HEADER = re.compile(r"\b(?:city|town|localidad|provincia|municipio|poblaci[óo]n|ciudad|domicilio|address|"
                          r"residence|birthplace|place of birth|lugar de nacimiento)\s*(?:/\s*\w+)?\s*:\s*", _I)
_LEADING_PARTICLE = re.compile(rf"{_PARTICLE}[ \t]+(?={_UPPER})")
_FIRST_AFTER_COMMA = re.compile(rf",[ \t]+({_WORD})(?:[ \t]+(?:{_INITIAL}|{_WORD}))?(?=[ \t]*(?:\n|$|[.;(]))")
LAST_FIRST = re.compile(rf"({_WORD}),[ \t]+({_WORD})(?:[ \t]+{_INITIAL})?")
CITY_STATE = re.compile(rf"(?<![\w'’-])((?:{_WORD}[ \t]+){{0,2}}{_WORD})(?=,[ \t]+({_UPPER}[A-Za-z. ]{{1,20}}?)(?:[ \t]+\d{{5}}|[\s.,;)]|$))")
CITY_COUNTRY = re.compile(rf"(?<![\w'’-])((?:{_WORD}[ \t]+(?:(?:de|del|la)[ \t]+)?){{0,2}}{_WORD})[ \t]*[.,]?[ \t]*[(-]?[ \t]*({_WORD})\b")
_COUNTRIES_ES = frozenset("ESPANA FRANCIA ITALIA PORTUGAL ALEMANIA MEXICO ARGENTINA CHILE COLOMBIA PERU CUBA VENEZUELA "
                          "URUGUAY PARAGUAY BOLIVIA ECUADOR MARRUECOS BRASIL".split())
_PREPOSITION = re.compile(r"\b(?:in|from|to|at|near|of|en|de|desde|around|outside)\s+$", _I)
_CREDENTIAL_STATES = {"MD", "DO", "PA", "NP", "RN", "PT"}


@functools.lru_cache(maxsize=65536)
def fold(word: str) -> str:
    """Upper case without accents: ``Cuéllar`` -> ``CUELLAR``."""
    decomposed = unicodedata.normalize("NFKD", word.upper())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).replace("’", "'")


class NameFinder:
    """Find NAME and LOCATION candidates in a note with the rules in the module docstring."""

    def __init__(self, lexicon: Lexicon):
        self.lexicon = lexicon

    def find(self, text: str) -> Iterator[Candidate]:
        yield from self._titled(text)
        yield from self._cued(text)
        yield from self._places(text)
        yield from self._dictionary(text)

    # -- helpers ---------------------------------------------------------------------------------------------------
    def _is_name(self, word: str) -> bool:
        folded = fold(word.rstrip("."))
        return folded in self.lexicon.first_names or folded in self.lexicon.last_names

    def _is_strong_name(self, word: str) -> bool:
        folded = fold(word.rstrip("."))
        return (self._is_name(word) and folded not in self.lexicon.ambiguous_names and folded not in self.lexicon.common_words
                and not self._is_nonpersonal(folded))

    def _is_nonpersonal(self, folded: str) -> bool:
        lexicon = self.lexicon
        return (folded.lower() in MONTHS or folded in lexicon.states or folded in lexicon.countries
                or folded in lexicon.places)

    def _is_plain_word(self, word: str) -> bool:
        folded = fold(word.rstrip("."))
        return folded in self.lexicon.common_words and not self._is_name(word)

    def _run_at(self, text: str, position: int, *, trust: bool) -> tuple[int, int] | None:
        """The name run starting at ``position``; with ``trust`` (after a title or cue) any capitalised words."""
        particle = _LEADING_PARTICLE.match(text, position) if trust else None
        span = self._run_core(text, particle.end() if particle else position, trust=trust)
        if span is None or not trust:
            return span
        start, end = span
        if particle:
            start = position
        more = None if CREDENTIAL.match(text, end) else _FIRST_AFTER_COMMA.match(text, end)  # "Last, First"
        if more and fold(more.group(1)) not in _NOT_NAMES and not self._is_plain_word(more.group(1)):
            end = more.end()
        return start, end

    def _run_core(self, text: str, position: int, *, trust: bool) -> tuple[int, int] | None:
        match = NAME_RUN.match(text, position)
        if not match:
            return None
        words = list(re.finditer(rf"{_NAME_TOKEN}", match.group(0)))
        kept = []
        for word in words:
            token = word.group(0)
            if kept and not trust and not (self._is_name(token) or len(token.rstrip(".")) == 1):
                break
            if trust and fold(token.rstrip(".")) in _NOT_NAMES | _CREDENTIALS:
                break
            if kept and text.startswith(":", position + word.end()):  # the label of the next field ("NºCol:")
                break
            if token.rstrip(".").lower() in MONTHS and re.match(r"\.?[ \t]+\d", match.group(0)[word.end() :] or text[
                    position + word.end() : position + word.end() + 4]):
                break  # a date follows ("signed: Ann Lee MD Dec 14")
            if not trust and self._is_plain_word(token) and len(token.rstrip(".")) > 1:
                break
            kept.append(word)
        if not kept:
            return None
        start, end = position + kept[0].start(), position + kept[-1].end()
        if text[end - 1] == "." and len(kept[-1].group(0)) > 2:  # sentence full stop, not an initial
            end -= 1
        return start, end

    # -- rules -----------------------------------------------------------------------------------------------------
    def _titled(self, text: str) -> Iterator[Candidate]:
        for match in TITLE.finditer(text):
            span = self._run_at(text, match.end(), trust=True)
            if span:
                yield Candidate(*span, "NAME", 3.2)
        for match in CREDENTIAL.finditer(text):
            before = text[max(0, match.start() - 60) : match.start()]
            run = re.search(rf"(?:{_NAME_TOKEN}[ \t]+(?:{_PARTICLE}[ \t]+)*){{0,3}}{_NAME_TOKEN}$", before)
            if not run:
                continue
            words = list(re.finditer(_NAME_TOKEN, run.group(0)))
            while words and self._is_plain_word(words[0].group(0)) and len(words[0].group(0)) > 1:
                words.pop(0)
            if words:
                offset = match.start() - len(run.group(0))
                yield Candidate(offset + words[0].start(), offset + words[-1].end(), "NAME", 3.2)

    def _cued(self, text: str) -> Iterator[Candidate]:
        for match in NAME_CUE.finditer(text):
            span = self._run_at(text, match.end(), trust=True)
            if span and not _is_month_or_state(fold(text[span[0] : span[1]]), self.lexicon):
                yield Candidate(*span, "NAME", 3.0)
        for match in PLACE_CUE.finditer(text):
            span = self._place_run(text, match.end())
            if span:
                yield Candidate(*span, "LOCATION", 2.9)
        for match in PLACE_HEADER.finditer(text):
            span = self._place_run(text, match.end())
            if span:
                yield Candidate(*span, "LOCATION", 2.9)

    def _place_run(self, text: str, position: int) -> tuple[int, int] | None:
        match = re.compile(rf"{_WORD}(?:[ \t]+(?:(?:de|del|la|las|los|el|upon|on|of)[ \t]+)?{_WORD}){{0,3}}").match(text, position)
        if not match:
            return None
        words = [w for w in re.finditer(_WORD, match.group(0))]
        kept = []
        for word in words:
            folded = fold(word.group(0))
            if folded in self.lexicon.states or folded in self.lexicon.countries or (
                    self._is_plain_word(word.group(0)) and folded not in self.lexicon.places and kept):
                break
            kept.append(word)
        if not kept or (len(kept) == 1 and fold(kept[0].group(0)) in _NOT_NAMES):
            return None
        return position + kept[0].start(), position + kept[-1].end()

    def _places(self, text: str) -> Iterator[Candidate]:
        for match in CITY_COUNTRY.finditer(text):
            if fold(match.group(2)) in self.lexicon.countries or fold(match.group(2)) in _COUNTRIES_ES:
                words = list(re.finditer(_WORD, match.group(1)))
                while words and (self._is_plain_word(words[0].group(0)) or fold(words[0].group(0)) in _NOT_NAMES):
                    words.pop(0)
                if words and fold(match.group(1)[words[0].start() :]) not in self.lexicon.countries:
                    yield Candidate(match.start(1) + words[0].start(), match.end(1), "LOCATION", 2.7)
        states = self.lexicon.states
        for match in CITY_STATE.finditer(text):
            state = match.group(2).strip().rstrip(".")
            if fold(state) not in states:
                continue
            zip_follows = re.compile(r"[ \t]+\d{5}").match(text, match.end(2)) is not None
            city = match.group(1)
            words = list(re.finditer(_WORD, city))
            while words and self._is_plain_word(words[0].group(0)) and fold(words[0].group(0)) not in self.lexicon.places:
                words.pop(0)
            if not words:
                continue
            if state.upper() in _CREDENTIAL_STATES and not zip_follows and fold(city) not in self.lexicon.places:
                continue
            offset = match.start(1)
            yield Candidate(offset + words[0].start(), offset + words[-1].end(), "LOCATION", 3.0)
            if zip_follows:
                zip_match = re.compile(r"[ \t]+(\d{5}(?:-\d{4})?)").match(text, match.end(2))
                yield Candidate(zip_match.start(1), zip_match.end(1), "LOCATION", 3.4)

    def _dictionary(self, text: str) -> Iterator[Candidate]:
        lexicon = self.lexicon
        for match in LAST_FIRST.finditer(text):
            last, first = match.group(1), match.group(2)
            if (fold(last) in lexicon.last_names and fold(first) in lexicon.first_names
                    and not (fold(last) in _NOT_NAMES or fold(first) in _NOT_NAMES)
                    and not any(w.lower() in MONTHS or w in lexicon.states for w in (fold(last), fold(first)))):
                yield Candidate(match.start(), match.end(), "NAME", 2.5)
        for match in NAME_RUN.finditer(text):
            words = [w for w in re.finditer(_NAME_TOKEN, match.group(0))]
            yield from self._dictionary_run(text, match.start(), words)

    def _dictionary_run(self, text: str, offset: int, words: list[re.Match]) -> Iterator[Candidate]:
        lexicon = self.lexicon
        tokens = [w.group(0) for w in words]
        # places first: the longest dictionary place inside the run
        i = 0
        while i < len(tokens):
            for n in (3, 2, 1):
                phrase = fold(" ".join(t.rstrip(".") for t in tokens[i : i + n]))
                if len(tokens[i : i + n]) == n and phrase in lexicon.places and phrase not in lexicon.common_words:
                    start, end = offset + words[i].start(), offset + words[i + n - 1].end()
                    before = _PREPOSITION.search(text[max(0, start - 12) : start]) is not None
                    personal = n == 1 and self._is_name(tokens[i])
                    if before or not personal:
                        yield Candidate(start, end, "LOCATION", 2.0 if before else 1.5)
                    i += n - 1
                    break
            i += 1
        strong = [self._is_strong_name(t) for t in tokens]
        named = [(self._is_name(t) or len(t.rstrip(".")) == 1) and fold(t.rstrip(".")) not in _NOT_NAMES for t in tokens]
        j = 0
        while j < len(tokens):  # maximal stretches of name-like words holding a strong name or a first+last pair
            if not named[j]:
                j += 1
                continue
            k = j
            while k + 1 < len(tokens) and named[k + 1]:
                k += 1
            stretch = range(j, k + 1)
            letters = [tokens[m] for m in stretch if len(tokens[m].rstrip(".")) > 1]
            pair = any(fold(tokens[m]) in lexicon.first_names and fold(tokens[m + 1].rstrip(".")) in lexicon.last_names
                       and len(tokens[m + 1].rstrip(".")) > 1 and not _is_month_or_state(fold(tokens[m + 1]), lexicon)
                       and not _is_month_or_state(fold(tokens[m]), lexicon)
                       for m in range(j, k))
            if text.startswith(":", offset + words[k].end()):  # a field label ("NASS:"), not a name
                j = k + 1
                continue
            if letters and (any(strong[m] for m in stretch) or pair) and not all(t.isupper() and len(t) <= 3 for t in letters):
                if pair or (len(letters) > 0 and not (len(letters) == 1 and tokens[j] in _NOT_NAMES_CASED)):
                    start, end = offset + words[j].start(), offset + words[k].end()
                    if text[end - 1] == "." and len(tokens[k]) > 2:
                        end -= 1
                    yield Candidate(start, end, "NAME", 1.8 if pair else 1.4)
            j = k + 1


_PLACE_WORDS = re.compile(rf"{_WORD}(?:[ \t]+(?:de[ \t]+|del[ \t]+)?{_WORD}){{0,2}}")


def _is_month_or_state(folded: str, lexicon: Lexicon) -> bool:
    return folded.lower() in MONTHS or folded in lexicon.states or folded in lexicon.countries


def propagate(text: str, spans: list[Candidate], lexicon: Lexicon) -> Iterator[Candidate]:
    """Every other occurrence of a word already found in a NAME span (``Smith`` after ``Dr. John Smith``) and of a
    place already found (``Madrid`` twice in ``Madrid, Madrid``)."""
    places = {text[s.start : s.end] for s in spans if s.category == "LOCATION" and _PLACE_WORDS.fullmatch(text[s.start : s.end])}
    places = {p for p in places if fold(p) not in lexicon.common_words and fold(p) not in _NOT_NAMES}
    if places:
        pattern = re.compile(r"(?<![\w'’-])(?:" + "|".join(map(re.escape, sorted(places, key=len, reverse=True))) + r")(?![\w'’-])")
        for match in pattern.finditer(text):
            yield Candidate(match.start(), match.end(), "LOCATION", 1.0)
    words = set()
    for span in spans:
        if span.category != "NAME":
            continue
        for word in re.findall(_WORD, text[span.start : span.end]):
            folded = fold(word)
            named = folded in lexicon.first_names or folded in lexicon.last_names
            plain = folded in lexicon.common_words and not named
            if len(word) > 1 and not word.islower() and not plain and folded not in _NOT_NAMES and folded.lower() not in MONTHS:
                words.add(word if not word.isupper() else word.capitalize())
    if not words:
        return
    forms = sorted({form for word in words for form in (word, word.upper())}, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w'’-])(?:" + "|".join(map(re.escape, forms)) + r")(?![\w'’-])")
    for match in pattern.finditer(text):
        yield Candidate(match.start(), match.end(), "NAME", 1.0)


# Capitalised words that follow cues such as "patient" or "contact" but are not names.
_NOT_NAMES = frozenset(fold(w) for w in """
The A An He She They His Her Their It This That These Those Is Was Has Had Will Would Should Can Could Did Does Not
No Yes And Or But If On In At To For Of With By From As Per Via Today Tonight Yesterday Tomorrow Morning Evening
Afternoon Night Patient Pt Name Denies Reports States Stated Presents Presented Admitted Discharged Seen Status Family
History Social Medical Surgical Past Present Plan Assessment Impression Exam Physical Review Systems Allergies
Medications Labs Vitals Unknown None Other Self Home Hospital Clinic Service Team Department Unit Floor Room ICU
Information Number Phone Fax Email Address Emergency Contact Next Kin Proxy Nurse Doctor Physician Attending
Resident Fellow Intern PCP Primary Care Signed Electronically Dictated Transcribed Reviewed Date Time Age Sex Male
Female Mr Mrs Ms Dr Note Notes Report Follow Followup Follow-up Return Call Called Please Also Will Continue
Datos Paciente Fecha Edad Sexo Informe Varón Mujer Hombre Servicio Hospital Médico Doctor Doctora Nombre
España Spain Calle Paseo Avenida Plaza Servicio Unidad La Las Los El Durante Tras Desde Hasta Resto Está Dado Correo Figura Tabla Tel Teléfono
""".split())
_NOT_NAMES_CASED = frozenset({"I", "A"})
_CREDENTIALS = frozenset({"MD", "RN", "NP", "DO", "PA", "PHD", "MBBS", "DDS", "DNP", "CNM", "CRNA", "LPN", "FNP",
                          "APRN", "ANP", "FACP", "FACS", "MSW", "LCSW", "PHARMD", "RPH", "RRT", "DPT"})
