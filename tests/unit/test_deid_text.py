"""De-identification of notes: every PHI category in several formats, non-ASCII text, surrogates, scorer, CLI."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

import pytest

from medai.errors import InvalidInputError
from medai.privacy.deid.score import physionet_overlap_counts, read_physionet_locations, read_physionet_phrases, score
from medai.privacy.deid.surrogates import shift_date_text
from medai.privacy.deid.text import CATEGORIES, Span, TextDeidentifier

KEY = secrets.token_bytes(32)  # made per run: no key lives in the source


@pytest.fixture(scope="module")
def deid() -> TextDeidentifier:
    return TextDeidentifier()


def found(deid: TextDeidentifier, text: str) -> list[tuple[str, str]]:
    return [(span.category, span.text) for span in deid.find(text)]


CASES = {
    "NAME": [
        ("Seen by Dr. Hannah Whitlock today.", "Hannah Whitlock"),
        ("Patient: KOWALCZYK, MARTA", "KOWALCZYK, MARTA"),
        ("Patient: Okonkwo, Chidi", "Okonkwo, Chidi"),
        ("Electronically signed: Renee O'Connor-Baptiste, MD", "Renee O'Connor-Baptiste"),
        ("cc: Dr. R. Patel", "R. Patel"),
        ("Her daughter Maribel Quintanilla visited.", "Maribel Quintanilla"),
        ("Discussed with his wife, Svetlana, at the bedside.", "Svetlana"),
        ("Mrs. Abernathy-Lowe was comfortable.", "Abernathy-Lowe"),
    ],
    "LOCATION": [
        ("Lives in Port Jenniferfurt with her son.", "Port Jenniferfurt"),
        ("Address: 1234 Maple Ave, Apt 5", "1234 Maple Ave, Apt 5"),
        ("Home: 58 Mitchell Parks Suite 907, Lisaside, NV 29755", "Lisaside"),
        ("Home: 58 Mitchell Parks Suite 907, Lisaside, NV 29755", "29755"),
        ("Transferred from Good Samaritan Hospital overnight.", "Good Samaritan Hospital"),
        ("Admitted to St. Mary's Medical Center.", "St. Mary's Medical Center"),
        ("ZIP code: 02115-1234", "02115-1234"),
    ],
    "DATE": [
        ("DOB 01/02/2020.", "01/02/2020"),
        ("on 2020-01-02 at noon", "2020-01-02"),
        ("admitted Jan 2, 2020 for", "Jan 2, 2020"),
        ("since the 2nd of January", "2nd of January"),
        ("follow-up on 3/14 in clinic", "3/14"),
        ("symptoms began in January 2020", "January 2020"),
        ("seen 14 Feb 2019.", "14 Feb 2019"),
        ("ingresó el 12 de octubre de 2016", "12 de octubre de 2016"),
    ],
    "AGE": [("A 92-year-old woman", "92"), ("He is 101 yo.", "101"), ("aged 95, lives alone", "95"),
            ("ninety-two years old", "ninety-two"), ("Paciente de 93 años", "93")],
    "PHONE": [("Call (617) 555-1234 today", "(617) 555-1234"), ("cell 617.555.1234", "617.555.1234"),
              ("phone +1 617 555 1234.", "+1 617 555 1234"), ("pager 617-555-1234 ext. 22", "617-555-1234 ext. 22"),
              ("Tel.: 967 597 100", "967 597 100")],
    "FAX": [("fax 617-555-9876.", "617-555-9876"), ("Fax: (617) 555-9876", "(617) 555-9876")],
    "EMAIL": [("mail j.doe+icu@mail.example.org now", "j.doe+icu@mail.example.org"), ("correo: nnavcu@hotmail.com", "nnavcu@hotmail.com")],
    "SSN": [("SSN 123-45-6789.", "123-45-6789"), ("social security number 123 45 6789", "123 45 6789")],
    "MRN": [("MRN: 00123456", "00123456"), ("Medical record number 12-345-67.", "12-345-67"), ("NHC: 368503.", "368503")],
    "ACCOUNT": [("Account #: A-99812-33", "A-99812-33"), ("Acct no. 987654321.", "987654321")],
    "HEALTH_PLAN": [("Member ID: XGH123456789", "XGH123456789"), ("Medicare ID: 1EG4-TE5-MK73", "1EG4-TE5-MK73"),
                    ("NASS: 26 63514095.", "26 63514095")],
    "LICENSE": [("DEA # AB1234563", "AB1234563"), ("Driver's license D1234567.", "D1234567"), ("NºCol: 28 28 70973.", "28 28 70973")],
    "DEVICE": [("Pacemaker serial number SN-4471-22X.", "SN-4471-22X"), ("Device ID: 00643169007222.", "00643169007222")],
    "VEHICLE": [("VIN 1HGCM82633A004352.", "1HGCM82633A004352"), ("license plate 7XY-Z123.", "7XY-Z123"),
                ("plate number 903 JLY.", "903 JLY")],
    "URL": [("see https://mychart.example.org/x?id=3.", "https://mychart.example.org/x?id=3"), ("www.example.com/page", "www.example.com/page")],
    "IP": [("from 10.0.0.12.", "10.0.0.12"), ("IP fe80::1ff:fe23:4567:890a", "fe80::1ff:fe23:4567:890a"), ("host 2001:db8::1", "2001:db8::1")],
}


@pytest.mark.parametrize("category,text,expected", [(c, t, e) for c, cases in CASES.items() for t, e in cases])
def test_every_category_in_several_formats(deid, category, text, expected):
    assert (category, expected) in found(deid, text)


@pytest.mark.parametrize("text", [
    "BP 120/80, strength 5/5 in all extremities, 4/5 left leg, 2/3 maintenance fluids.",
    "A 45-year-old man with Parkinson disease; Foley catheter; Glasgow Coma Scale 15.",
    "HISTORY OF PRESENT ILLNESS: chest pain since 2019.",
    "Started ceftriaxone 1 g IV q24h; sodium 138, potassium 4.1. A 2/6 SEM at RUSB; pain 7/10.",
])
def test_clinical_text_without_phi_is_left_alone(deid, text):
    assert found(deid, text) == []


def test_all_categories_are_covered_by_the_cases():
    assert set(CASES) == set(CATEGORIES) - {"ID"}


def test_non_ascii_notes_do_not_crash_and_names_with_accents_are_found(deid):
    text = "Nombre: José Mª Ramírez-Moreno. Sr. Øyvind Ñúñez visited 東京 😀 with Zoë Çelik-Ådahl, née Łukasiewicz."
    spans = found(deid, text)
    assert ("NAME", "José Mª Ramírez-Moreno") in spans and ("NAME", "Øyvind Ñúñez") in spans
    for mode in ("tag", "surrogate"):
        out = TextDeidentifier(mode, key=KEY).deidentify(text).text
        assert "Ramírez" not in out and "東京 😀" in out
    assert TextDeidentifier().find("") == []
    with pytest.raises(InvalidInputError):
        TextDeidentifier().find(b"bytes")  # type: ignore[arg-type]


def test_tags_replace_every_span_and_offsets_refer_to_the_original(deid):
    text = "Mr. Whitlock (MRN 00123456) called 617-555-0143 on 03/14/2021."
    result = deid.deidentify(text)
    assert result.text == "Mr. [NAME] (MRN [MRN]) called [PHONE] on [DATE]."
    assert all(text[s.start : s.end] == s.text for s in result.spans)
    assert result.counts() == {"DATE": 1, "MRN": 1, "NAME": 1, "PHONE": 1}


def test_surrogates_are_consistent_per_key_and_dates_keep_intervals():
    note_a = "Dr. Hannah Whitlock saw Ms. Quintanilla on 03/14/2021; Whitlock will call 617-555-0143."
    note_b = "Follow-up with Dr. Whitlock on 03/21/2021."
    deid = TextDeidentifier("surrogate", key=KEY)
    out_a = deid.deidentify(note_a, patient="p1").text
    out_b = deid.deidentify(note_b, patient="p1").text
    again = TextDeidentifier("surrogate", key=KEY).deidentify(note_a, patient="p1").text
    assert out_a == again  # same key, same surrogates
    surname = out_b.split("Dr. ")[1].split(" on")[0]
    assert out_a.count(surname) == 2 and "Whitlock" not in out_a + out_b  # same input, same surrogate
    from datetime import datetime

    date_a = datetime.strptime(out_a.split(" on ")[1][:10], "%m/%d/%Y")
    date_b = datetime.strptime(out_b.split(" on ")[1][:10], "%m/%d/%Y")
    assert (date_b - date_a).days == 7 and date_a != datetime(2021, 3, 14)
    other = TextDeidentifier("surrogate", key=secrets.token_bytes(32)).deidentify(note_a, patient="p1").text
    assert other != out_a
    # patients get their own offsets (two of them share one by chance 1 time in 365: five never all do)
    shifted = {TextDeidentifier("surrogate", key=KEY).deidentify("DOB 03/14/2021", patient=f"p{i}").text for i in range(5)}
    assert len(shifted) > 1


def test_a_surrogate_is_never_the_original_value_whatever_the_key():
    from medai.privacy.deid.lexicon import Lexicon
    from medai.privacy.deid.surrogates import SurrogateMaker
    from medai.privacy.pseudonym import Pseudonymizer

    empty = frozenset()
    lexicon = Lexicon(frozenset({"ANNA", "EMMA"}), frozenset({"JONES", "SMITH"}), empty, empty, empty, empty, empty,
                      empty, "test")  # two names per pool: half of the keys would draw the original back
    for _ in range(40):
        maker = SurrogateMaker(Pseudonymizer(secrets.token_bytes(32)), lexicon)
        assert maker.replace("NAME", "Anna Smith", "p1") == "Emma Jones"
        assert maker.replace("NAME", "J. Smith", "p1").split(".")[0] != "J"
        assert maker.replace("ID", "7", "p1") != "7" and maker.replace("ID", "a", "p1") != "a"


def test_date_shift_keeps_the_format():
    assert shift_date_text("01/02/2020", -2) == "12/31/2019"
    assert shift_date_text("2020-01-02", 30) == "2020-02-01"
    assert shift_date_text("2nd of January", 1) == "3rd of January"
    assert shift_date_text("Jan. 2 2020", 31) == "Feb. 2 2020"
    assert shift_date_text("3/14", 1) == "3/15"
    assert shift_date_text("12 de octubre de 2016", 1) == "13 de octubre de 2016"


def test_bad_mode_names_the_nearest_choice():
    with pytest.raises(InvalidInputError, match="surrogate"):
        TextDeidentifier("surogate")


def test_scorer_token_and_span_level():
    text = "Dr. Ann Lee saw him on 03/14/2021 in Boston"
    gold = [Span(4, 11, "NAME", "Ann Lee"), Span(23, 33, "DATE", "03/14/2021"), Span(37, 43, "LOCATION", "Boston")]
    predicted = [Span(8, 11, "NAME", "Lee"), Span(23, 33, "DATE", "03/14/2021"), Span(0, 2, "NAME", "Dr")]
    result = score([(text, gold, predicted)])
    token = result["token"]
    assert token["overall"]["gold"] == 6 and token["overall"]["found"] == 4  # the date is three tokens
    assert token["per_category"]["NAME"]["recall"] == 0.5 and token["per_category"]["LOCATION"]["recall"] == 0.0
    assert token["per_category"]["NAME"]["precision"] == 0.5  # "Dr" is a false positive
    assert result["span"]["overall"]["found"] == 2 and result["span"]["overall"]["exact"] == 1
    ignored = score([(text, [Span(37, 43, "IGNORE", "Boston")], [Span(37, 43, "LOCATION", "Boston")])])
    assert ignored["token"]["overall"]["predicted"] == 0


def test_physionet_reader_reproduces_the_packages_published_figures(real_data_dir):
    root = real_data_dir / "deid_physionet"
    if not (root / "id.deid").is_file():
        pytest.skip("deid_physionet absent")
    counts = physionet_overlap_counts(read_physionet_locations(root / "id.deid"),
                                      read_physionet_locations(root / "GSoutput" / "id.phi"))
    assert (counts["tp"], counts["fp"], counts["fn"]) == (1720, 546, 59)
    assert counts["recall"] == 0.9668 and counts["ppv"] == 0.7483
    phrases = read_physionet_phrases(root / "id-phi.phrase")
    assert sum(map(len, phrases.values())) == 1779


def test_physionet_notes_are_asked_for_when_absent(tmp_path):
    from medai.errors import DataNotFoundError
    from medai.privacy.deid.score import load_physionet, read_physionet_text

    with pytest.raises(DataNotFoundError, match="licensed"):
        load_physionet(tmp_path)
    record = tmp_path / "id.text"
    record.write_text("START_OF_RECORD=1||||1||||\nSeen by Dr. Lee on 3/4.||||END_OF_RECORD\n", encoding="ascii")
    assert read_physionet_text(record) == {(1, 1): "Seen by Dr. Lee on 3/4."}


def test_synthetic_notes_are_seeded_and_gold_spans_line_up():
    from medai.privacy.deid.synthetic_notes import generate_notes

    for style in ("structured", "narrative"):
        notes = generate_notes(3, seed=5, style=style)
        assert [n.text for n in notes] == [n.text for n in generate_notes(3, seed=5, style=style)]
        assert all(n.text[s.start : s.end] == s.text for n in notes for s in n.spans)
    categories = {s.category for n in generate_notes(5, seed=5) for s in n.spans}
    assert categories == set(CATEGORIES) - {"ID"}
    with pytest.raises(InvalidInputError):
        generate_notes(0)


# -- CLI ------------------------------------------------------------------------------------------------------------
def _cli(args: list[str], env: dict | None = None):
    from typer.testing import CliRunner

    from medai.cli.main import app

    return CliRunner().invoke(app, args, env=env or {})


def test_cli_jsonl_round_trip_and_report_has_counts_only(tmp_path: Path):
    notes = [{"id": "n1", "patient_id": "p1", "text": "Seen by Dr. Hannah Whitlock on 03/14/2021. Call 617-555-0143."},
             {"id": "n2", "text": "Zoë Çelik, 94 yo, lives in Port Jenniferfurt."}]
    source = tmp_path / "notes.jsonl"
    source.write_text("".join(json.dumps(n, ensure_ascii=False) + "\n" for n in notes), encoding="utf-8")
    out, report = tmp_path / "out.jsonl", tmp_path / "report.json"
    result = _cli(["deid", "text", "--input", str(source), "--output", str(out), "--report", str(report)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["id"] for line in lines] == ["n1", "n2"]
    assert lines[0]["text"] == "Seen by Dr. [NAME] on [DATE]. Call [PHONE]."
    summary = json.loads(report.read_text())
    assert summary["documents"] == 2 and summary["found"]["NAME"] >= 2 and summary["found"]["AGE"] == 1
    dumped = report.read_text() + result.output
    for value in ("Whitlock", "Hannah", "617-555", "03/14", "Zoë", "Jenniferfurt", "94"):
        # a value on its own, not a run of digits inside a path the output names (pytest-294/...)
        assert not re.search(rf"(?<![\w-]){re.escape(value)}(?!\w)", dumped), value


def test_cli_txt_round_trip_with_surrogates(tmp_path: Path):
    source = tmp_path / "note.txt"
    source.write_text("Patient: KOWALCZYK, MARTA\nMRN: 00123456\nDOB 01/02/1950\n", encoding="utf-8")
    out = tmp_path / "out.txt"
    env = {"MEDAI_DEID_KEY": "ab" * 32}
    result = _cli(["deid", "text", "--input", str(source), "--output", str(out), "--mode", "surrogate"], env)
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert "KOWALCZYK" not in text and "00123456" not in text and "01/02/1950" not in text
    assert text.startswith("Patient: ") and "MRN: " in text
    assert _cli(["deid", "text", "--input", str(source), "--output", str(out), "--mode", "surrogate"], env).output \
        and out.read_text(encoding="utf-8") == text  # same key, same output


def test_cli_errors_are_one_line_without_note_content(tmp_path: Path):
    source = tmp_path / "bad.jsonl"
    source.write_text('{"id": 1, "text": "Dr. Whitlock"}\nnot json Whitlock\n', encoding="utf-8")
    result = _cli(["deid", "text", "--input", str(source), "--output", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 2 and "line 2" in result.output and "Whitlock" not in result.output
    missing_key = _cli(["deid", "text", "--input", str(source), "--output", str(tmp_path / "o.jsonl"), "--mode", "surrogate"],
                       {"MEDAI_DEID_KEY": ""})
    assert missing_key.exit_code == 2 and "MEDAI_DEID_KEY" in missing_key.output
    assert not (tmp_path / "o.jsonl").exists()
