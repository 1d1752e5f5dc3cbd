"""Read notes from JSON lines or plain text, de-identify them and write the result with a count-only summary.

Input: ``.jsonl`` (one object per line with ``id`` and ``text``; ``patient_id`` or ``patient`` when given keys the
date shift) or ``.txt`` (the whole file is one note). Either may be encrypted with ``medai encrypt``. Errors name
the file and line, never the note's content.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from medai.errors import InvalidInputError
from medai.privacy.deid.text import CATEGORIES, TextDeidentifier


def read_notes(path: str | Path) -> Iterator[dict]:
    """Yield ``{"id", "text", "patient"}`` for each note in ``path`` (``.jsonl`` / ``.json`` lines or ``.txt``)."""
    path = Path(path)
    raw = _read_bytes(path)
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInputError(f"{path.name} is not UTF-8 text (byte {error.start}); save the notes as UTF-8.") from None
    if path.suffix.lower() in (".txt", ".text") or (path.suffix.lower() == ".enc" and Path(path.stem).suffix == ".txt"):
        yield {"id": path.stem.removesuffix(".txt"), "text": content, "patient": None}
        return
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise InvalidInputError(f"{path.name}, line {number}: not valid JSON; expected one object with 'id' and 'text' per line.") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise InvalidInputError(f"{path.name}, line {number}: expected an object with a string field 'text'.")
        patient = record.get("patient_id", record.get("patient"))
        yield {"id": record.get("id", number), "text": record["text"], "patient": None if patient is None else str(patient)}


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise InvalidInputError(f"The input {path} is not a file; expected a .jsonl or .txt file of notes.")
    from medai.privacy import crypto

    if crypto.is_encrypted(path):
        return crypto.open_input(path)
    return path.read_bytes()


def deidentify_file(source: str | Path, destination: str | Path, *, mode: str = "tag", key: bytes | str | None = None,
                    ephemeral_key: bool = False, with_spans: bool = False) -> dict:
    """De-identify every note of ``source`` into ``destination``; return the count-only summary.

    Args:
        source: ``.jsonl`` or ``.txt`` notes.
        destination: output file; ``.txt`` writes the de-identified text of a single note, otherwise JSON lines
            ``{"id", "text"[, "spans"]}``.
        mode: ``tag`` or ``surrogate``.
        key: surrogate key (default: settings; see :func:`medai.privacy.pseudonym.load_key`).
        ephemeral_key: surrogates with a random key when none is configured.
        with_spans: add offsets and categories (never values) of the replaced spans to each output line.

    Returns:
        ``{"documents", "mode", "found": {category: count}, "seconds"}``: counts only, no PHI.
    """
    source, destination = Path(source), Path(destination)
    if source.resolve() == destination.resolve():
        raise InvalidInputError(f"--output must differ from --input ({source}); de-identification never overwrites its input.")
    if mode == "surrogate" and key is None:
        from medai.privacy.pseudonym import load_key

        key = load_key(allow_ephemeral=ephemeral_key)
    deid = TextDeidentifier(mode, key=key)
    counts: Counter = Counter()
    started, documents, lines = time.perf_counter(), 0, []
    for note in read_notes(source):
        result = deid.deidentify(note["text"], patient=note["patient"], document=str(note["id"]))
        counts.update(result.counts())
        documents += 1
        line = {"id": note["id"], "text": result.text}
        if with_spans:
            line["spans"] = [span.to_dict() for span in result.spans]
        lines.append(line)
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(destination.name + ".partial")
    if destination.suffix.lower() == ".txt":
        if len(lines) != 1:
            raise InvalidInputError(f"A .txt output holds one note; {source.name} has {len(lines)}. Use a .jsonl output.")
        temporary.write_text(lines[0]["text"], encoding="utf-8")
    else:
        temporary.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    temporary.replace(destination)
    found = {category: counts[category] for category in CATEGORIES if counts[category]}
    return {"documents": documents, "mode": mode, "found": found, "total": sum(found.values()),
            "seconds": round(time.perf_counter() - started, 2)}
