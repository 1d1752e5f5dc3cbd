"""De-identification scored on a few real MEDDOCAN documents (Spanish, gold PHI; skipped where absent)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from medai.cli.main import app
from medai.privacy.deid.score import IGNORE, load_meddocan, score
from medai.privacy.deid.text import TextDeidentifier

pytestmark = pytest.mark.realdata


@pytest.fixture
def documents(real_data_dir):
    data = real_data_dir
    if not (data / "deid_meddocan_es").is_dir():
        pytest.skip("deid_meddocan_es absent under MEDAI_DATA_DIR")
    return load_meddocan("test", root=data / "deid_meddocan_es", limit=12)


def test_offsets_of_the_reader_match_the_text(documents):
    assert len(documents) == 12
    for document in documents:
        assert all(document.text[s.start : s.end] == s.text for s in document.spans)
        assert any(s.category == "NAME" for s in document.spans) and any(s.category == IGNORE for s in document.spans)


def test_meddocan_recall_and_precision_on_a_few_documents(documents):
    deid = TextDeidentifier()
    result = score((d.text, d.spans, deid.find(d.text)) for d in documents)
    token = result["token"]
    # Figures measured on the whole test split are in bench/results; these bounds only catch a collapse.
    assert token["overall"]["recall"] > 0.8 and token["overall"]["precision"] > 0.85
    for category in ("EMAIL", "DATE", "NAME", "HEALTH_PLAN"):
        assert token["per_category"][category]["recall"] > 0.9, category


def test_cli_on_real_spanish_notes_writes_utf8_and_counts_only(documents, tmp_path):
    source = tmp_path / "notes.jsonl"
    source.write_text("".join(json.dumps({"id": d.id, "text": d.text}, ensure_ascii=False) + "\n" for d in documents[:3]),
                      encoding="utf-8")
    report = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["deid", "text", "--input", str(source), "--output", str(tmp_path / "out.jsonl"),
                                      "--report", str(report)])  # fmt: skip
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    emails = [s.text for d in documents[:3] for s in d.spans if s.category == "EMAIL"]
    assert emails and not any(e in line["text"] for e in emails for line in out)
    assert "[NAME]" in out[0]["text"] and "ó" in "".join(line["text"] for line in out)
    summary = json.loads(report.read_text())
    assert set(summary) == {"documents", "mode", "found", "total", "seconds"}
    assert all(isinstance(v, int) for v in summary["found"].values())
