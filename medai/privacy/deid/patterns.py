"""Pattern recognisers for the note de-identifier: dates, ages over 89, contact details, numbers and addresses.

Each recogniser takes the note text and yields :class:`Candidate` spans. Structured identifiers (e-mail, URL, IP,
SSN, numbers after a keyword) have a high priority; the merge in :mod:`medai.privacy.deid.text` keeps the best
non-overlapping candidates.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import NamedTuple


class Candidate(NamedTuple):
    """A proposed PHI span ``text[start:end]`` of ``category``; higher ``priority`` wins an overlap."""

    start: int
    end: int
    category: str
    priority: float


MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4, "may": 5,
    "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9, "sep": 9, "sept": 9,
    "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12,
    # Spanish (MEDDOCAN and other Spanish notes)
    "enero": 1, "febrero": 2, "marzo": 3, "abril": 4, "mayo": 5, "junio": 6, "julio": 7, "agosto": 8,
    "septiembre": 9, "setiembre": 9, "octubre": 10, "noviembre": 11, "diciembre": 12,
}  # fmt: skip
_MONTH = r"(?:" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_YEAR = r"(?:1[89]\d\d|20\d\d|'\d\d)"
_HOLIDAYS = (r"Christmas(?: Day| Eve)?|Thanksgiving(?: Day)?|Easter(?: Sunday)?|New Year'?s(?: Day| Eve)?|Halloween|"
             r"Memorial Day|Labor Day|Independence Day|Veterans Day|Valentine'?s Day|Mother'?s Day|Father'?s Day")

_I = re.IGNORECASE
DATE_PATTERNS = [
    # 01/02/2020, 1-2-20, 02.01.2020 (month/day or day/month)
    (re.compile(r"(?<![\w/.-])(?:[12]\d|3[01]|0?[1-9])[/.-](?:[12]\d|3[01]|0?[1-9])[/.-](?:\d{4}|\d{2})(?![\w/]|\.\d)"), 3.0),
    # 2020-01-02, 2020/1/2
    (re.compile(r"(?<![\w/.-])(?:1[89]|20)\d\d[/.-](?:1[0-2]|0?[1-9])[/.-](?:[12]\d|3[01]|0?[1-9])(?![\w/]|\.\d)"), 3.0),
    # Jan 2, 2020 / January 2nd 2020 / Jan. 2 / January 2020 / January of 2020 / Sept '19
    (re.compile(rf"\b{_MONTH}(?:\s+{_DAY}\b)?(?:,?\s+(?:of\s+)?{_YEAR}\b)?", _I), 2.6),
    # 2 January 2020 / 2nd of January, 2020 / the 2nd of Jan / 12 de octubre de 2016
    (re.compile(rf"\b{_DAY}\s+(?:of\s+|de\s+)?{_MONTH}(?:,?\s+(?:de\s+|del\s+)?{_YEAR}\b)?", _I), 3.0),
    # octubre de 2016, Febrero del 1998
    (re.compile(rf"\b{_MONTH}\s+del?\s+{_YEAR}\b", _I), 3.0),
    (re.compile(rf"\b(?:{_HOLIDAYS})\b"), 2.0),
]
# 3/14, 11/2 (no year): a date unless it reads as a score, a fraction or a dose
_SHORT_DATE = re.compile(r"(?<![\w/.:-])(1[0-2]|0?[1-9])/([12]\d|3[01]|0?[1-9])(?![\w/]|\.\d|:)")
_NOT_SHORT_DATE_AFTER = re.compile(
    r"\s*(?:tabs?|tablets?|caps?|pills?|strength|str|NS|dose|doses|of|scale|power|in\b|motor|mg|ml|cc|units?|"
    r"times|x\b|%|strength|normal saline|amp|vial)", _I)
_NOT_SHORT_DATE_BEFORE = re.compile(r"(?:strength|power|motor|grade|score|BP|ratio|scale|murmur|reflexes|tone|"
                                    r"take|took|give|gave|ASA|NYHA|gravida|para|G\d\s*P\d|dose|x)\s*:?\s*$", _I)

_AGE_NUMBER = r"(?:9\d|1[0-2]\d)"
_AGE_WORDS = r"(?:ninety(?:[\s-](?:one|two|three|four|five|six|seven|eight|nine))?|one hundred(?:(?: and)?[\s-]\w+)?)"
AGE_PATTERNS = [
    re.compile(rf"\b(?P<age>{_AGE_NUMBER}|{_AGE_WORDS})(?:\s*|-)(?:years?|yrs?|y)(?:\s*|-)(?:old|o\.?|/o)\b", _I),
    re.compile(rf"\b(?P<age>{_AGE_NUMBER}|{_AGE_WORDS})(?:\s*|-)(?:years?|yrs?)\s+of\s+age\b", _I),
    re.compile(rf"\b(?P<age>{_AGE_NUMBER})\s*(?:yo|y/o|y\.o\.|yoM|yoF|yom|yof)\b", _I),
    re.compile(rf"\b(?:aged?|age:|age of|edad:?)\s*(?P<age>{_AGE_NUMBER})\b(?!\s*(?:mg|ml|kg|%|mm|/))", _I),
    re.compile(rf"\b(?P<age>{_AGE_NUMBER})\s*(?:años|anos)\b", _I),
    re.compile(rf"\b(?P<age>{_AGE_NUMBER})(?:\s*|-)(?:M|F|male|female|man|woman)\b(?![-/])"),
    re.compile(r"\b(?:in\s+(?:his|her|their)\s+)(?P<age>(?:late\s+|early\s+|mid[\s-]+)?(?:90s|nineties|100s))\b", _I),
]

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b")
URL = re.compile(r"\b(?:(?:https?|ftp)://|www\.)[^\s<>\"')\]]+|"
                 r"\b(?:[a-z0-9-]+\.)+(?:com|org|net|edu|gov|io|info|health|us|uk|es|de|fr)(?:/[^\s<>\"')\]]*)?(?![\w@])", _I)
IPV4 = re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\w|\.\d)")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:%\w+)?(?![\w:])")
SSN = re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\w-])")
PHONE = re.compile(
    r"(?<![\w+])(?:(?:\+?1|001)[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?:\s*(?:x|ext\.?|extension)\s*\d{1,5})?(?!\w)|"
    r"(?<![\w+])\+\d{1,3}(?:[\s.-]?\(?\d{1,4}\)?){2,5}(?!\w)", _I)
SHORT_PHONE = re.compile(r"(?<![\w-])\d{3}-\d{4}(?![\w-])")
_CONTACT_CUE = re.compile(r"(?:phone|tel|telephone|teléfono|telefono|tfno|móvil|movil|mobile|cell|pager|beeper|"
                          r"fax|call|contact|reach(?:ed)? at|number|no\.|#)\W{0,3}$", _I)
BARE_PHONE = re.compile(r"(?<![\w-])(?:\+?1)?[2-9]\d{2}[2-9]\d{6}(?![\w-])")
_PHONE_WORDS = re.compile(r"\b(?:phone|tel|telephone|fax|faxed|call|called|cell|mobile|pager|reach\w*|contact\w*|text)\b", _I)
CONTACT_NUMBER = re.compile(r"\b(?P<cue>phone|tel|telephone|teléfono|telefono|tfno|móvil|movil|mobile|cell|pager|"
                            r"beeper|fax|facsimile)(?:\s+(?:number|no\.?|#))?\s*[:.#]{0,2}\s*"
                            r"(?P<number>\+?[\d(][\d\s().-]{5,18}\d)", _I)

# Identifier numbers announced by a keyword: (category, cue pattern)
ID_CUES = [
    ("VEHICLE", r"VIN|vehicle identification (?:number|no\.?)|(?:licen[cs]e|registration|number) plates?|plate(?: number| no\.?)?|tag number"),
    ("SSN", r"SSN|social security(?: number| no\.?| #)?|SS#|soc\.? sec\.?(?: no\.?)?"),
    ("HEALTH_PLAN", r"(?:health\s+)?plan(?: member)?(?: ID| number| no\.?| #)|member(?:ship)? (?:ID|number|no\.?|#)|"
                    r"policy(?: number| no\.?| #| ID)?|insurance(?: ID| number| no\.?| #| policy)|subscriber(?: ID| number| #)|"
                    r"beneficiary(?: ID| number| #)?|medicare(?: ID| number| #| no\.?)?|medicaid(?: ID| number| #| no\.?)?|"
                    r"group(?: number| no\.?| #)|NASS|n[ºo°]\.? (?:de )?(?:afiliación|afiliacion|tarjeta sanitaria)|tarjeta sanitaria"),
    ("LICENSE", r"(?:driver'?s\s+)?licen[cs]e(?: number| no\.?| #| ID)?|DEA(?: number| no\.?| #)?|NPI(?: number| #)?|"
                r"certificate(?: number| no\.?| #)|cert(?:ification)?\.? (?:no\.?|#)|board certification(?: number| #)?|"
                r"N[ºo°]\.?\s?Col(?:egiado)?\.?|colegiado(?: n[ºo°]\.?)?|permit(?: number| no\.?| #)"),
    ("DEVICE", r"serial(?: number| no\.?| #)?|(?-i:S/N|SN)|device(?: ID| identifier| number| serial| no\.?| #)|UDI|"
               r"implant(?: ID| serial| number| #)|lot(?: number| no\.?| #)|IMEI|MAC address|model/serial"),
    ("ACCOUNT", r"(?:billing |bank |hospital |patient )?account(?: number| no\.?| #| ID)?|acct\.?(?: number| no\.?| #)?|"
                r"FIN|encounter(?: number| no\.?| #| ID)|visit(?: number| no\.?| #| ID)|episode(?: number| no\.?| #)|"
                r"invoice(?: number| no\.?| #)|claim(?: number| no\.?| #)|episodio|n[ºo°]\.? de episodio"),
    ("MRN", r"MRN|MR#|MR ?(?:No\.?|number)|medical record(?: number| no\.?| #)?|record(?: number| no\.?| #)|"
            r"unit(?: number| no\.?| #)|hospital(?: number| no\.?| #)|chart(?: number| no\.?| #)|patient ID|"
            r"(?:patient )?identifier|NHC|historia cl[ií]nica|n[ºo°]\.? (?:de )?historia|CIPA?|DNI|NIF|NIE"),
    ("ID", r"ID(?: number| no\.?| #)?|identification(?: number| no\.?| #)|passport(?: number| no\.?| #)?|"
           r"employee(?: ID| number| #)|badge(?: number| #)?|reference(?: number| no\.?| #)"),
]
_ID_VALUE = (r"(?P<value>#?(?=[A-Za-z0-9./-]*\d)[A-Za-z0-9](?:[A-Za-z0-9]|[-/.](?=[A-Za-z0-9])){1,40}"
             r"(?:[ ](?=\d)\d+(?:[-/.]\d+)*){0,3})")
ID_PATTERNS = [
    (category, re.compile(rf"(?<![\w])(?:{cue})(?:\s+(?:is|was|of|number|no\.?|#))?\s*[:#=]?\s*(?:is\s+)?{_ID_VALUE}", _I))
    for category, cue in ID_CUES
]
VIN = re.compile(r"(?<![\w-])(?=[A-HJ-NPR-Z0-9]{17}(?![\w-]))(?=(?:\D*\d){3})(?=(?:[^A-Z]*[A-Z]){3})[A-HJ-NPR-Z0-9]{17}")
PLATE = re.compile(r"\b(?:licen[cs]e plate|number plate|registration plate|plate(?: number| no\.?)?|tag number)"
                   r"(?:\s+(?:is|was|of|number|no\.?|#))?\s*[:#]?\s*"
                   r"(?P<value>(?-i:[A-Z0-9]{1,4}(?:[ -]?[A-Z0-9]{1,4}){1,2}))(?![\w-])", _I)
MEDICARE_MBI = re.compile(r"(?<![\w-])\d[A-Z][A-Z0-9]\d-?[A-Z][A-Z0-9]\d-?[A-Z]{2}\d\d(?![\w-])")
ZIP = re.compile(r"\b(?:zip(?: code)?|postal code|C\.?P\.?|código postal|codigo postal)\s*[:#]?\s*(?P<zip>\d{5}(?:-\d{4})?)\b", _I)
# "46017 Valencia", "28036 Madrid" (postal code before the town, as written in Spain and much of Europe)
ZIP_BEFORE_PLACE = re.compile(r"(?<![\w/.,-])(?:[A-Z]-)?\d{5}[ \t]+[A-ZÁÉÍÓÚÑ][a-záéíóúñü]+(?:[ \t]+(?:de[ \t]+)?[A-ZÁÉÍÓÚÑ][a-záéíóúñü]+)?"
                              r"(?:[ \t]*(?:-|–|\()[ \t]*[A-ZÁÉÍÓÚÑ][a-záéíóúñü]+\)?)?(?=[ \t]*[,.(\n-])")
NO_NUMBER_ADDRESS = re.compile(r"(?<![\w])[A-ZÁÉÍÓÚÑ][\w'’.-]*(?:[ \t]+(?:de|del|la|las|los|el|[A-ZÁÉÍÓÚÑ][\w'’.-]*)){0,4},?[ \t]+s/n\b")
ZIP_PLUS4 = re.compile(r"(?<![\w-])\d{5}-\d{4}(?![\w-])")

STREET_SUFFIXES = "|".join(sorted("""
Alley Aly Anex Annex Arcade Avenue Ave Av Bayou Beach Bend Bluff Bluffs Bottom Boulevard Blvd Branch Bridge Brook Brooks
Burg Burgs Bypass Byp Camp Canyon Cape Causeway Cswy Center Centers Ctr Circle Circles Cir Cliff Cliffs Close Club Common Commons
Corner Corners Course Court Courts Ct Cove Coves Creek Crescent Cres Crest Crossing Crossroad Crossroads Curve Dale Dam Divide
Drive Drives Dr Estate Estates Expressway Expy Extension Extensions Ext Fall Falls Ferry Field Fields Flat Flats Ford Fords
Forest Forge Forges Fork Forks Fort Freeway Fwy Garden Gardens Gdns Gateway Glen Glens Green Greens Grove Groves Grv Harbor
Harbors Haven Heights Hts Highway Hwy Hill Hills Hollow Inlet Island Islands Isle Junction Junctions Key Keys Knoll Knolls
Lake Lakes Land Landing Lane Ln Light Lights Loaf Lock Locks Lodge Loop Mall Manor Manors Meadow Meadows Mews Mill Mills
Mission Motorway Mount Mountain Mountains Neck Orchard Oval Overpass Park Parks Parkway Parkways Pkwy Pass Passage Path Pike
Pine Pines Place Pl Plain Plains Plaza Plz Point Points Pt Port Ports Prairie Radial Ramp Ranch Rapid Rapids Rest Ridge
Ridges Rdg River Road Roads Rd Route Rte Row Rue Run Shoal Shoals Shore Shores Skyway Spring Springs Spur Spurs Square
Squares Sq Station Stravenue Stream Street Streets St Summit Terrace Ter Throughway Trace Track Trafficway Trail Trl Trailer
Tunnel Turnpike Tpke Underpass Union Unions Valley Valleys Vly Via Viaduct View Views Village Villages Vlg Ville Vista Walk
Walks Wall Way Ways Well Wells Xing
""".split(), key=len, reverse=True))  # USPS street suffixes
_CAP = r"[A-Z0-9][\w'’.-]*"
STREET = re.compile(
    rf"(?<![\w-])\d{{1,6}}[A-Z]?(?:-\d{{1,4}})?[ \t]+(?:[NSEW]\.?[ \t]+)?(?:{_CAP}[ \t]+){{0,3}}(?:{STREET_SUFFIXES})\b\.?"
    r"(?:,?[ \t]+(?:Apt|Apartment|Suite|Ste|Unit|Room|Rm|Floor|Fl|Bldg|Building|#)\.?[ \t]*#?[ \t]*[\w-]+)?"
    r"|(?<![\w-])P\.?[ \t]?O\.?[ \t]+Box[ \t]+\d+"
)
SPANISH_STREET = re.compile(
    r"(?<![\w])(?:Calle|C/|c/|Avda\.?|Avenida|Av\.|Plaza|Pza\.?|Paseo|Pº|Camino|Carretera|Ctra\.?|Ronda|Travesía|"
    r"Travesia|Rúa|Rua|Carrer|Vía|Via|Urbanización|Urb\.)[ \t]+(?:(?:de|del|la|las|los|el|l')[ \t]+)*"
    r"[\w'’.ªº-]+(?:[ \t]+(?:de|del|la|las|los|el|[\w'’.ªº-]+)){0,5}?,?[ \t]*(?:(?:n[ºo°]\.?[ \t]*)?\d{1,4}(?:[-/]\d{1,4})?|s/n)"
    r"(?:,?[ \t]*\d{1,2}(?!\d)[ºª°]?[ \t]*(?:izq\w*|dcha\.?|derecha|izquierda|puerta \w+|[A-Za-z](?![\w/]))?)?"
)
# Name of a hospital or clinic (the words before a facility word, up to four capitalised words)
FACILITY_WORDS = (r"Hospital|Medical Center|Medical Centre|Health Center|Health Centre|Clinic|Infirmary|Sanatorium|"
                  r"Nursing Home|Rehabilitation Center|Rehab Center|Rehabilitation Hospital|Hospice|Health System|"
                  r"Healthcare|Health Care Center|Medical Group|Cancer Center|Cancer Institute|Heart Institute|"
                  r"Eye Institute|Memorial|Regional|Care Center|Surgical Center|Surgery Center|Urgent Care|"
                  r"Family Practice|Medical Associates|Health Partners|Convalescent Home|Assisted Living|"
                  r"Dialysis Center|Psychiatric Center|VA Medical Center|Veterans Affairs Medical Center")
FACILITY = re.compile(
    rf"(?:(?:St\.?|Saint|Mount|Mt\.?)[ \t]+)?(?:[A-Z][\w'’.&-]*[ \t]+(?:(?:of|and|&|the|for)[ \t]+)?){{1,4}}(?:{FACILITY_WORDS})\b"
    rf"(?:[ \t]+(?:of|at)[ \t]+[A-Z][\w'’.-]+(?:[ \t]+[A-Z][\w'’.-]+){{0,2}})?"
    rf"|\b(?:Hospital|Clinic|Infirmary)[ \t]+(?:of|at)[ \t]+(?:the[ \t]+)?[A-Z][\w'’.-]+(?:[ \t]+[A-Z][\w'’.-]+){{0,3}}"
)
# Spanish-style names, facility word first ("Hospital Universitario La Paz"); searched separately so that both
# readings of "Servicio de Urología Hospital Universitario La Paz" are candidates and the longer one wins.
FACILITY_FIRST = re.compile(
    r"\b(?:Hospital|Cl[ií]nica|Centro de Salud|Centro M[ée]dico|Complejo Hospitalario|Fundaci[óo]n|Instituto|"
    r"Servicio de Salud|Consorcio Hospitalario|Policl[ií]nica|Sanatorio)[ \t]+(?:(?:Universitario|General|"
    r"Comarcal|Provincial|Cl[ií]nico|Regional|Materno[- ]Infantil|Infantil|Militar|de|del|la|las|los|el|y|San|"
    r"Santa|Virgen|Nuestra|Señora)[ \t]+)*[A-ZÁÉÍÓÚÑ][\w'’.-]*(?:[ \t]+(?:de|del|la|las|los|el|y|i)?[ \t]*[A-ZÁÉÍÓÚÑ][\w'’.-]*){0,4}"
)


def _category_for_context(text: str, start: int, default: str) -> str:
    before = text[max(0, start - 25) : start].lower()
    return "FAX" if "fax" in before or re.search(r"\bf\s*[:.]\s*$", before) else default


def find_dates(text: str) -> Iterator[Candidate]:
    for pattern, priority in DATE_PATTERNS:
        for match in pattern.finditer(text):
            span = match.group(0).rstrip()
            if span.endswith(".") and re.search(r"[^\W\d]{5,}\.$", span):  # a full stop after a full month name
                span = span[:-1]
            if _is_lone_word(span) and not _lone_month_is_date(text, match.start(), span):
                continue
            yield Candidate(match.start(), match.start() + len(span), "DATE", priority)
    for match in _SHORT_DATE.finditer(text):
        before = text[max(0, match.start() - 25) : match.start()]
        cued = _SHORT_DATE_CUE.search(before) or _TIME_AFTER.match(text, match.end())
        if not cued and (_NOT_SHORT_DATE_AFTER.match(text, match.end()) or _NOT_SHORT_DATE_BEFORE.search(before)
                         or _looks_like_score(int(match.group(1)), int(match.group(2)))):
            continue
        yield Candidate(match.start(), match.end(), "DATE", 2.2)


_SHORT_DATE_CUE = re.compile(r"\b(?:on|since|from|until|till|by|dated?|seen|admitted|discharged|visit|through|"
                             r"as of|DOB|born|birth|admission|discharge|surgery|procedure|before|after|starting|started|last|next|due|"
                             r"scheduled)\W{0,3}$", _I)
_TIME_AFTER = re.compile(r"\s+(?:at\s+)?\d{1,2}:\d\d")


def _looks_like_score(first: int, second: int) -> bool:
    """Motor grades (4/5), murmur grades (2/6), fractions (2/3) and pain scores (7/10): dates only after a cue."""
    return (second in (5, 6) and first <= second) or first < second <= 4 or (second == 10 and first <= 10)


def _is_lone_word(span: str) -> bool:
    return re.fullmatch(r"[^\W\d]+\.?", span) is not None


def _lone_month_is_date(text: str, start: int, word: str) -> bool:
    """A month name on its own ('in January') is a date; 'May', 'March' and abbreviations need a cue before them."""
    lowered = word.lower().rstrip(".")
    if not word[:1].isupper() or lowered not in MONTHS:
        return False
    cue = re.search(r"\b(?:in|since|until|during|early|late|mid|last|next|this|of|by|through|before|after|"
                    r"en|desde|hasta|de)\s+$", text[max(0, start - 12) : start], _I)
    if len(lowered) <= 4 or lowered in {"march", "may", "mayo"}:
        return cue is not None and len(lowered) > 2 and lowered not in {"may", "mar"}
    return True


def find_ages(text: str) -> Iterator[Candidate]:
    for pattern in AGE_PATTERNS:
        for match in pattern.finditer(text):
            yield Candidate(match.start("age"), match.end("age"), "AGE", 2.8)


def find_contacts(text: str) -> Iterator[Candidate]:
    """E-mail, URLs, IP addresses, phone and fax numbers, SSNs."""
    for match in EMAIL.finditer(text):
        yield Candidate(match.start(), match.end(), "EMAIL", 5.0)
    for match in URL.finditer(text):
        end = match.end()
        while end > match.start() and text[end - 1] in ".,;:!?":
            end -= 1
        yield Candidate(match.start(), end, "URL", 4.5)
    for match in IPV4.finditer(text):
        yield Candidate(match.start(), match.end(), "IP", 4.6)
    for match in IPV6.finditer(text):
        if match.group(0).count(":") >= 2 and _is_ipv6(match.group(0)):
            yield Candidate(match.start(), match.end(), "IP", 4.6)
    for match in SSN.finditer(text):
        if match.group(1) == "-" or re.search(r"ss|social", text[max(0, match.start() - 30) : match.start()], _I):
            yield Candidate(match.start(), match.end(), "SSN", 4.2)
    for match in PHONE.finditer(text):
        if sum(ch.isdigit() for ch in match.group(0)) >= 10:
            yield Candidate(match.start(), match.end(), _category_for_context(text, match.start(), "PHONE"), 4.0)
    for match in SHORT_PHONE.finditer(text):
        if _CONTACT_CUE.search(text[max(0, match.start() - 20) : match.start()]):
            yield Candidate(match.start(), match.end(), _category_for_context(text, match.start(), "PHONE"), 3.5)
    for match in BARE_PHONE.finditer(text):
        if _CONTACT_CUE.search(text[max(0, match.start() - 30) : match.start()]) or _PHONE_WORDS.search(
                text[max(0, match.start() - 30) : match.start()]):
            yield Candidate(match.start(), match.end(), _category_for_context(text, match.start(), "PHONE"), 3.5)
    for match in CONTACT_NUMBER.finditer(text):
        number = match.group("number").rstrip(" .-(")
        if sum(ch.isdigit() for ch in number) >= 7:
            category = "FAX" if match.group("cue").lower().startswith(("fax", "facs")) else "PHONE"
            yield Candidate(match.start("number"), match.start("number") + len(number), category, 3.9)


def _is_ipv6(value: str) -> bool:
    try:
        ipaddress.IPv6Address(value.split("%")[0])
    except ValueError:
        return False
    return True


def find_identifiers(text: str) -> Iterator[Candidate]:
    """Record, account, plan, licence, device, vehicle and other numbers announced by a keyword; VINs; MBIs."""
    for category, pattern in ID_PATTERNS:
        for match in pattern.finditer(text):
            value = match.group("value").rstrip(".-/ ")
            digits = sum(ch.isdigit() for ch in value)
            if digits < 2 or (category == "ID" and digits < 4):
                continue
            start = match.start("value") + (1 if value.startswith("#") else 0)
            yield Candidate(start, match.start("value") + len(value), category, 3.9 if category != "ID" else 3.7)
    for match in PLATE.finditer(text):
        if any(ch.isdigit() for ch in match.group("value")):
            yield Candidate(match.start("value"), match.end("value"), "VEHICLE", 3.95)
    for match in VIN.finditer(text):
        yield Candidate(match.start(), match.end(), "VEHICLE", 3.95)
    for match in MEDICARE_MBI.finditer(text):
        yield Candidate(match.start(), match.end(), "HEALTH_PLAN", 3.95)


def find_addresses(text: str) -> Iterator[Candidate]:
    """Street addresses, ZIP codes, hospitals and clinics (all reported as LOCATION)."""
    for match in STREET.finditer(text):
        yield Candidate(match.start(), match.end(), "LOCATION", 3.3)
    for match in SPANISH_STREET.finditer(text):
        yield Candidate(match.start(), match.end(), "LOCATION", 3.3)
    for match in ZIP.finditer(text):
        yield Candidate(match.start("zip"), match.end("zip"), "LOCATION", 3.4)
    for match in ZIP_BEFORE_PLACE.finditer(text):
        yield Candidate(match.start(), match.end(), "LOCATION", 3.2)
    for match in NO_NUMBER_ADDRESS.finditer(text):
        yield Candidate(match.start(), match.end(), "LOCATION", 3.0)
    for match in ZIP_PLUS4.finditer(text):
        yield Candidate(match.start(), match.end(), "LOCATION", 3.4)
    named_after = [(m.start(), m.end()) for m in FACILITY_FIRST.finditer(text)]
    for start, end in named_after:
        yield Candidate(start, end, "LOCATION", 3.1)
    for match in FACILITY.finditer(text):
        start, end = _trim_facility(text, match.start(), match.end())
        # "Servicio de Urología Hospital La Paz": the name follows the facility word, the words before are a department
        if end > start and not any(start <= other < end for other, _ in named_after):
            yield Candidate(start, end, "LOCATION", 3.1)


_FACILITY_LEADING_STOP = re.compile(
    r"(?:(?:The|A|An|At|To|From|In|On|Of|For|With|By|Via|And|Or|Per|Transferred|Admitted|Seen|Discharged|"
    r"Presented|Patient|Pt|He|She|They|Was|Is|Her|His|Their|Our|Outside|Local|Nearby|Followed|Referred|Sent|"
    r"Returned|Went|Called|Prior|Previously|Recently|Initially|Then|Today|Yesterday|Last|Next|Her|Went)\s+)+")


def _trim_facility(text: str, start: int, end: int) -> tuple[int, int]:
    lead = _FACILITY_LEADING_STOP.match(text, start)
    if lead and lead.end() < end:
        start = lead.end()
    return start, end
