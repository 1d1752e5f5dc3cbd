"""Synthetic English clinical notes with inserted PHI of every category and gold spans, for evaluation (seeded).

Independence from the detector: values come from Faker (names from its en_US lists and, for one note in five, from
its es_ES/de_DE/fr_FR/pl_PL/pt_BR lists with accents; its fake cities such as ``Port Jenniferfurt``; its street
addresses, phone formats, e-mail, URL, IP, SSN, VIN and plate generators), never from the PhysioNet lists the
detector uses. Hospitals are built from Faker surnames and cities. The templates were written by the author of
the rules, who knew them, and the rules were then corrected on the misses seen here (``structured`` style, seed 0;
``narrative`` style, seeds 7 to 9, written after the rules and scored once before any change: token recall 0.958,
names 0.875, places 0.855). Scores on these notes are therefore an optimistic check of coverage, not an estimate
of performance on real notes (use MEDDOCAN, or the licensed PhysioNet notes, for that).
Needs the ``deid`` extra (``pip install 'medai[deid]'``).

Examples:
    >>> notes = generate_notes(2, seed=0)
    >>> all(note.text[s.start:s.end] == s.text for note in notes for s in note.spans)
    True
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from medai.errors import InvalidInputError, require
from medai.privacy.deid.text import Span

_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]  # fmt: skip


@dataclass
class SyntheticNote:
    """A note and its gold PHI spans (``spans[i].text == text[start:end]``)."""

    id: str
    text: str
    spans: list[Span] = field(default_factory=list)
    patient: str = ""


class _Builder:
    def __init__(self):
        self.parts: list[str] = []
        self.spans: list[Span] = []
        self.length = 0

    def add(self, *pieces) -> None:
        """Strings are plain text; ``(category, value)`` pairs are PHI."""
        for piece in pieces:
            if isinstance(piece, tuple):
                category, value = piece
                self.spans.append(Span(self.length, self.length + len(value), category, value))
                piece = value
            self.parts.append(piece)
            self.length += len(piece)


class _Values:
    """PHI values drawn from Faker in several surface forms."""

    def __init__(self, seed: int):
        faker = require("faker", "deid")
        self.rng = random.Random(seed)
        self.en = faker.Faker("en_US")
        self.en.seed_instance(seed)
        self.intl = faker.Faker(["es_ES", "de_DE", "fr_FR", "pl_PL", "pt_BR"])
        self.intl.seed_instance(seed + 1)

    def person(self, international: bool = False) -> tuple[str, str]:
        source = self.intl if international else self.en
        return source.first_name(), source.last_name()

    def date(self, start: date = date(1995, 1, 1), days: int = 11000) -> date:
        return start + timedelta(days=self.rng.randrange(days))

    def date_text(self, when: date) -> str:
        m, d, y = when.month, when.day, when.year
        month = _MONTHS[m - 1]
        forms = [f"{m:02d}/{d:02d}/{y}", f"{m}/{d}/{y}", f"{m}/{d}/{y % 100:02d}", f"{y}-{m:02d}-{d:02d}",
                 f"{month} {d}, {y}", f"{month[:3]} {d}, {y}", f"{month[:3]}. {d} {y}", f"{d} {month} {y}",
                 f"{d}{_ordinal(d)} of {month}", f"{month} {d}{_ordinal(d)}", f"{m}/{d}", f"{month} {y}",
                 f"{m:02d}-{d:02d}-{y}", f"{d} {month[:3]} {y}"]  # fmt: skip
        return self.rng.choice(forms)

    def phone(self) -> str:
        area, mid, last = self.rng.randint(201, 989), self.rng.randint(200, 999), self.rng.randint(0, 9999)
        forms = [self.en.phone_number(), f"({area}) {mid}-{last:04d}", f"{area}-{mid}-{last:04d}",
                 f"{area}.{mid}.{last:04d}", f"+1 {area} {mid} {last:04d}", f"{area}-{mid}-{last:04d} ext. {last % 900 + 100}"]
        return self.rng.choice(forms)

    def age(self) -> tuple[str, str, str]:
        """(text before, age, text after) for an age over 89."""
        age = self.rng.randint(90, 106)
        forms = [("", str(age), "-year-old"), ("", str(age), " year old"), ("", str(age), " yo"),
                 ("aged ", str(age), ""), ("", str(age), " years of age"), ("", str(age), " y/o"),
                 ("Age: ", str(age), ""), ("", "ninety-" + ["one", "two", "three", "four"][age % 4], " years old")]
        return self.rng.choice(forms)

    def hospital(self) -> str:
        r = self.rng
        forms = [f"{self.en.last_name()} Memorial Hospital", f"{self.en.city()} General Hospital",
                 f"St. {self.en.first_name()}'s Medical Center", f"{self.en.city()} Regional Medical Center",
                 f"{self.en.last_name()} Clinic", f"{self.en.city()} Community Hospital",
                 f"{self.en.last_name()}-{self.en.last_name()} Rehabilitation Center"]
        return r.choice(forms)

    def code(self, pattern: str) -> str:
        return self.en.bothify(pattern, letters="ABCDEFGHJKLMNPRSTUVWXYZ")


def _ordinal(day: int) -> str:
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10 if day not in (11, 12, 13) else 0, "th")


STYLES = ("structured", "narrative")


def generate_notes(n: int, seed: int = 0, style: str = "structured") -> list[SyntheticNote]:
    """``n`` synthetic notes with gold PHI spans; the same seed gives the same notes.

    Args:
        n: number of notes (at least 1).
        seed: random seed.
        style: ``structured`` (header fields, the templates the rules were developed against) or ``narrative``
            (prose templates written afterwards and scored once, before any change to the rules).
    """
    if not isinstance(n, int) or n < 1:
        raise InvalidInputError(f"The 'n' parameter must be an int of at least 1; got {n!r}.")
    from medai.errors import check_choice

    check_choice("style", style, STYLES)
    values = _Values(seed)
    make = _note if style == "structured" else _narrative
    return [make(values, i) for i in range(n)]


def _narrative(v: _Values, index: int) -> SyntheticNote:
    """A discharge-summary paragraph in prose, with PHI in less formulaic places."""
    r, b = v.rng, _Builder()
    first, last = v.person(r.random() < 0.25)
    kin_first, _kin_last = v.person(r.random() < 0.25)
    doc_first, doc_last = v.person(False)
    seen = v.date()
    kin = r.choice(["granddaughter", "nephew", "sister-in-law", "neighbor", "son"])
    before, age, after = v.age()
    b.add(r.choice(["This is ", "We saw "]), ("NAME", f"{first} {last}"), ", a ", before, ("AGE", age), after,
          r.choice([" retired machinist", " former teacher", ""]), ", who came in ", r.choice(["on ", "early on "]),
          ("DATE", v.date_text(seen)), " complaining of dizziness. ")
    b.add(r.choice(["Accompanied by her ", "Brought in by his "]), kin, " ", ("NAME", kin_first), ", who can be reached on ",
          ("PHONE", v.phone()), ". ")
    b.add("The family drove down from ", ("LOCATION", v.en.city()), "; home is ", ("LOCATION", v.en.street_address()),
          ". ")
    b.add(r.choice(["PCP is Dr. ", "Her primary care physician, Dr. "]), ("NAME", doc_last),
          r.choice([", practicing at ", " of "]), ("LOCATION", v.hospital()), ". ")
    b.add(("NAME", last), r.choice([" was last admitted ", " had a prior stay "]), ("DATE", v.date_text(seen - timedelta(days=40))),
          " for syncope. Echo then showed EF 55%, mild MR, 1/6 systolic murmur. ")
    b.add("Insurance: member number ", ("HEALTH_PLAN", v.code("???#########")), "; hospital account ",
          ("ACCOUNT", v.code("##########")), "; MRN ", ("MRN", v.code("########")), ". ")
    b.add("Records were faxed to ", ("FAX", v.phone()), " and a copy e-mailed to ", ("EMAIL", v.en.free_email()), ". ")
    b.add("The patient's CPAP machine (serial no. ", ("DEVICE", v.code("??#######")), ") was brought from home. ")
    b.add("Parked vehicle VIN ", ("VEHICLE", v.en.vin()), ". Social security number on file: ", ("SSN", v.en.ssn()), ". ")
    b.add("Results portal: ", ("URL", v.en.url()), " (last login from ", ("IP", v.en.ipv4_public()), "). ")
    b.add("Dictated by ", ("NAME", f"{doc_first} {doc_last}"), ", licence no. ", ("LICENSE", v.code("??######")),
          ", on ", ("DATE", v.date_text(seen + timedelta(days=2))), ".\n")
    return SyntheticNote(f"narrative-{index:05d}", "".join(b.parts), b.spans, patient=f"patient-{index:05d}")


def _note(v: _Values, index: int) -> SyntheticNote:
    r, b = v.rng, _Builder()
    intl = r.random() < 0.2
    first, last = v.person(intl)
    doc_first, doc_last = v.person(r.random() < 0.2)
    rel_first, rel_last = v.person(intl)
    admitted = v.date()
    upper = r.random() < 0.3
    header_name = f"{last.upper()}, {first.upper()}" if upper else r.choice([f"{last}, {first}", f"{first} {last}"])
    b.add("Patient: ", ("NAME", header_name), "\n")
    b.add(r.choice(["MRN: ", "MR#: ", "Medical record number ", "Unit No. "]), ("MRN", v.code(r.choice(["########", "##-###-##", "?#######"]))), "\n")
    b.add(r.choice(["DOB: ", "Date of birth: "]), ("DATE", v.date_text(v.date(date(1920, 1, 1), 20000))), "\n")
    b.add("Admission date: ", ("DATE", v.date_text(admitted)), "\n")
    b.add(r.choice(["Account #: ", "Acct no. ", "Billing account: "]), ("ACCOUNT", v.code(r.choice(["A########", "#########", "####-####-##"]))), "\n\n")
    b.add("HISTORY OF PRESENT ILLNESS:\n")
    before, age, after = v.age() if r.random() < 0.7 else ("", str(r.randint(25, 85)), "-year-old")
    age_span = ("AGE", age) if not age.isdigit() or int(age) >= 90 else age  # ages up to 89 are not PHI
    b.add(f"{'Mr.' if r.random() < 0.5 else 'Ms.'} ", ("NAME", last), " is a ", before, age_span, after,
          r.choice([" with a history of atrial fibrillation on apixaban 5 mg BID", " with COPD and CHF (EF 35%)",
                    " with type 2 diabetes, HbA1c 8.1% in 2019"]), ". ")
    b.add("She was transferred from ", ("LOCATION", v.hospital()), " on ", ("DATE", v.date_text(admitted + timedelta(days=1))),
          " after a fall at home. BP 142/88, HR 96, SpO2 94% on 2L. Strength 5/5 in the upper extremities, 4/5 on the left leg.\n")
    b.add("Lives in ", ("LOCATION", v.en.city()), " with ", r.choice(["her daughter ", "his wife ", "her son ", "her husband "]),
          ("NAME", f"{rel_first} {rel_last}"), r.choice([" (phone ", ", reachable at ", ", cell "]), ("PHONE", v.phone()), ").\n")
    b.add("Home address: ", ("LOCATION", v.en.street_address()), ", ", ("LOCATION", v.en.city()), ", ", v.en.state_abbr(), " ",
          ("LOCATION", r.choice([v.en.zipcode(), v.en.zipcode_plus4()])), ".\n")
    b.add("Fax records to ", ("FAX", v.phone()), r.choice([" or e-mail ", "; e-mail: "]), ("EMAIL", v.en.email()), ".\n")
    b.add(r.choice(["Patient portal: ", "Discharge instructions at "]), ("URL", r.choice([v.en.url(), v.en.uri()])), ". ")
    b.add("Home monitor uploads from IP ", ("IP", r.choice([v.en.ipv4(), v.en.ipv6(), v.en.ipv4_private()])), ".\n")
    b.add(r.choice(["SSN: ", "Social security number ", "SSN "]), ("SSN", v.en.ssn()), ". ")
    b.add(r.choice(["Medicare ID: ", "Member ID ", "Insurance policy number: ", "Health plan ID: "]),
          ("HEALTH_PLAN", v.code(r.choice(["?##?-??#-??##", "???#########", "W#########", "##########?"]))), ".\n")
    b.add(r.choice(["Pacemaker serial number ", "Insulin pump serial no. ", "Device ID: "]),
          ("DEVICE", v.code(r.choice(["???######?", "SN-####-##?", "########"]))), ". ")
    b.add(r.choice(["Drove here; vehicle VIN ", "Car in lot, VIN: "]), ("VEHICLE", v.en.vin()), ", ")
    b.add(r.choice(["license plate ", "plate number "]), ("VEHICLE", v.en.license_plate()), ".\n")
    b.add(r.choice(["Driver's license ", "Driver license no. "]), ("LICENSE", v.code(r.choice(["?#######", "#########", "??######"]))), ".\n\n")
    b.add("HOSPITAL COURSE:\nGlasgow Coma Scale 15. Foley catheter placed. Started ceftriaxone 1 g IV q24h, 2/3 maintenance fluids. ")
    b.add(("NAME", last.upper() if upper else last), " was seen by ", r.choice(["Dr. ", "Doctor "]), ("NAME", f"{doc_first} {doc_last}"), " on ",
          ("DATE", v.date_text(admitted + timedelta(days=2))), ". CT head on day 2 was negative. Parkinson disease was excluded.\n")
    b.add("Discussed with ", ("NAME", rel_first), " at the bedside; follow-up with ", r.choice(["Dr. ", "Dr "]), ("NAME", doc_last),
          " at ", ("LOCATION", v.hospital()), " in 2 weeks. Call ", ("PHONE", v.phone()), " with questions.\n\n")
    b.add("Electronically signed: ", ("NAME", f"{doc_first} {doc_last}"), r.choice([", MD", ", NP", ", DO", " MD"]),
          " ", ("DATE", v.date_text(admitted + timedelta(days=3))), " 14:32\n")
    b.add(r.choice(["DEA # ", "License #: ", "NPI "]), ("LICENSE", v.code(r.choice(["??#######", "##########", "MD######"]))), "\n")
    return SyntheticNote(f"synthetic-{index:05d}", "".join(b.parts), b.spans, patient=f"patient-{index:05d}")
