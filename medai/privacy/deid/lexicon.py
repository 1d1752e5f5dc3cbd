"""Dictionaries for the note de-identifier: names, places and common words.

Read from the PhysioNet deid 1.1 package's lists (``deid_physionet/lists`` and ``dict`` under
:func:`medai.settings.data_dir`, or the folder in ``MEDAI_DEID_LISTS``). When the lists are absent a small built-in
vocabulary is used, so the rules still run (with lower recall on names that carry no title or context).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from medai import settings

LISTS_ENV = "MEDAI_DEID_LISTS"

# Words that look like names or places in notes but are medical terms, eponyms or note vocabulary.
MEDICAL_STOPWORDS = frozenset("""
ALZHEIMER BABINSKI BELL BIPAP CARDIO CHEST COUMADIN CROHN DOPPLER FOLEY GANZ GLASGOW GRAVES HEPARIN HODGKIN HOLTER
HUNTINGTON KAPOSI LASIX MORPHINE NISSEN PARKINSON PEEP SWAN TYLENOL WHIPPLE WILMS APGAR BARRETT BRUDZINSKI KERNIG
CUSHING ADDISON HASHIMOTO GUILLAIN BARRE RAYNAUD STEVENS JOHNSON MALLORY WEISS MURPHY MCBURNEY ROVSING HOMAN HOMANS
EPSTEIN BARR TRENDELENBURG VALSALVA HEIMLICH HICKMAN PORTACATH PICC SEPSIS NSR ICU CCU MICU SICU NICU ED ER OR PACU
PT OT RN MD DO NP PA BP HR RR SPO2 SAO2 ECG EKG CT MRI CXR ABG CBC BMP INR PTT WBC HGB HCT PLT NA CL BUN CR GLU
ROSS DUKE WELLS CHILD PUGH RANSON GLEASON BRAUNWALD KILLIP NYHA TIMI CHADS CHA2DS2 VASC HAS BLED MELD CURB
AUGMENTIN BACTRIM KEFLEX LIPITOR PLAVIX ZOSYN VANCOMYCIN CEFTRIAXONE LOVENOX ELIQUIS XARELTO PROTONIX ZOFRAN
DILAUDID ATIVAN HALDOL SEROQUEL NORCO PERCOCET MOTRIN ADVIL ALEVE ZOLOFT PROZAC LEXAPRO NORVASC LOPRESSOR TOPROL
HARTMANN LUGOL GRAM WESTERGREN BRUCE MILLER WESTERMARK HAMPTON KUSSMAUL CHEYNE STOKES ADAMS FRANK STARLING
""".split())


@dataclass(frozen=True)
class Lexicon:
    """Upper-cased word sets used by the name and place rules."""

    first_names: frozenset[str]  # given names (unambiguous and ambiguous)
    last_names: frozenset[str]  # surnames
    ambiguous_names: frozenset[str]  # names that are also English words (need context)
    places: frozenset[str]  # cities, towns and local places (single or multi-word, upper case)
    hospitals: frozenset[str]  # hospital names and fragments
    states: frozenset[str]  # US states and abbreviations (not PHI on their own)
    countries: frozenset[str]
    common_words: frozenset[str]  # English words (upper case)
    source: str  # folder the lists came from, or "built-in"


def lists_folder() -> Path | None:
    """The folder holding ``lists/`` and ``dict/`` of the PhysioNet deid package, or None."""
    configured = os.environ.get(LISTS_ENV)
    if configured:
        return Path(configured).expanduser()
    base = settings.data_dir()
    if base is not None and (base / "deid_physionet" / "lists").is_dir():
        return base / "deid_physionet"
    return None


def _read(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    text = path.read_bytes().decode("utf-8", errors="replace")
    return {line.strip().upper() for line in text.splitlines() if line.strip() and "\ufffd" not in line}


@functools.lru_cache(maxsize=4)
def load_lexicon(folder: str | None = None) -> Lexicon:
    """Load the dictionaries from ``folder`` (default: :func:`lists_folder`); cached per folder."""
    root = Path(folder) if folder else lists_folder()
    if root is None or not (root / "lists").is_dir():
        return _builtin()
    lists, words = root / "lists", root / "dict"

    def union(*names: str) -> set[str]:
        out: set[str] = set()
        for name in names:
            out |= _read(lists / f"{name}.txt")
        return out

    ambiguous = union("female_names_ambig", "male_names_ambig", "last_names_ambig")
    common = _read(words / "common_words.txt") | _read(words / "commonest_words.txt") | _read(words / "notes_common.txt")
    return Lexicon(
        first_names=frozenset(union("female_names_unambig", "female_names_ambig", "female_names_popular",
                                    "male_names_unambig", "male_names_ambig", "male_names_popular",
                                    "doctor_first_names")),
        last_names=frozenset(union("last_names_unambig", "last_names_ambig", "last_names_popular",
                                   "doctor_last_names")),
        ambiguous_names=frozenset(ambiguous | MEDICAL_STOPWORDS),
        places=frozenset(union("locations_unambig", "local_places_unambig") - MEDICAL_STOPWORDS),
        hospitals=frozenset(union("stripped_hospitals")),
        states=frozenset(union("us_states", "us_states_abbre", "more_us_state_abbreviations")),
        countries=frozenset(union("countries_unambig")),
        common_words=frozenset(common),
        source=str(root),
    )


def _builtin() -> Lexicon:
    first = "JOHN MARY JAMES PATRICIA ROBERT JENNIFER MICHAEL LINDA WILLIAM ELIZABETH DAVID BARBARA SUSAN JOSEPH"
    last = "SMITH JOHNSON WILLIAMS BROWN JONES GARCIA MILLER DAVIS RODRIGUEZ MARTINEZ HERNANDEZ LOPEZ GONZALEZ"
    states = ("ALABAMA ALASKA ARIZONA ARKANSAS CALIFORNIA COLORADO CONNECTICUT DELAWARE FLORIDA GEORGIA HAWAII IDAHO "
              "ILLINOIS INDIANA IOWA KANSAS KENTUCKY LOUISIANA MAINE MARYLAND MASSACHUSETTS MICHIGAN MINNESOTA "
              "MISSISSIPPI MISSOURI MONTANA NEBRASKA NEVADA OHIO OKLAHOMA OREGON PENNSYLVANIA TENNESSEE TEXAS UTAH "
              "VERMONT VIRGINIA WASHINGTON WISCONSIN WYOMING AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME "
              "MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC")
    return Lexicon(frozenset(first.split()), frozenset(last.split()), MEDICAL_STOPWORDS, frozenset(), frozenset(),
                   frozenset(states.split()), frozenset(), frozenset(), "built-in")
