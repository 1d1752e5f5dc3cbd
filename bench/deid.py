"""Benchmark: de-identification of notes; token-level recall and precision per category (issue 7 floors).

Synthetic English notes (seeded, Faker values; see medai/privacy/deid/synthetic_notes.py for how independent they
are of the detector) in two template styles, and the MEDDOCAN test split (Spanish, real text with gold PHI;
HIPAA-mapped, no floor).

    python bench/deid.py                          # 500 synthetic notes + MEDDOCAN test (about a minute)
    python bench/deid.py --notes 100 --meddocan-split dev --out bench/results/x.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from medai.privacy.deid.score import load_meddocan, score
from medai.privacy.deid.synthetic_notes import generate_notes
from medai.privacy.deid.text import TextDeidentifier

# The narrative templates were written after the rules and scored once before any change (300 notes, seed 7):
# these are the honest "unseen templates" figures; the rules were then fixed for the gaps they showed.
NARRATIVE_FIRST_RUN = {"notes": 300, "seed": 7, "recall": 0.9576, "precision": 0.9897,
                       "recall_name": 0.8751, "recall_location": 0.8548, "recall_phone": 0.9963}
FLOORS = {"recall_overall": 0.99, "recall_every_category": 0.97, "precision_overall": 0.90}  # issue 7, synthetic


def evaluate(documents, deid: TextDeidentifier) -> dict:
    started = time.perf_counter()
    predicted = [deid.find(text) for text, _ in documents]
    seconds = time.perf_counter() - started
    result = score((text, gold, found) for (text, gold), found in zip(documents, predicted))
    characters = sum(len(text) for text, _ in documents)
    return {"documents": len(documents), "characters": characters, "seconds": round(seconds, 2),
            "notes_per_second": round(len(documents) / seconds, 1), "token": result["token"], "span": result["span"]}


def checks(token: dict) -> dict:
    per_category = {c: v["recall"] for c, v in token["per_category"].items() if v["gold"]}
    return {
        "recall_overall": token["overall"]["recall"] >= FLOORS["recall_overall"],
        "recall_every_category": all(r >= FLOORS["recall_every_category"] for r in per_category.values()),
        "precision_overall": token["overall"]["precision"] >= FLOORS["precision_overall"],
        "lowest_category": min(per_category.items(), key=lambda item: item[1]) if per_category else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notes", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1, help="Structured notes use this seed (0 was used while writing "
                        "the rules), narrative notes seed + 10 (7, 8 and 9 were looked at).")
    parser.add_argument("--meddocan-split", default="test")
    parser.add_argument("--out", type=Path, default=None, help="Also write the JSON here.")
    args = parser.parse_args()
    deid = TextDeidentifier()
    report = {"benchmark": "deid-text", "python": platform.python_version(), "lexicon": "PhysioNet deid 1.1 lists"
              if deid.lexicon.source != "built-in" else "built-in", "floors": FLOORS,
              "scoring": "token level (\\w+ tokens); a gold token counts as found when any predicted span covers it; "
                         "precision = predicted tokens inside any gold span; strict_overall also needs the category"}
    for style, key in (("structured", "synthetic"), ("narrative", "synthetic_narrative")):
        notes = generate_notes(args.notes, seed=args.seed + (10 if style == "narrative" else 0), style=style)
        result = evaluate([(n.text, n.spans) for n in notes], deid)
        result["style"], result["seed"] = style, args.seed + (10 if style == "narrative" else 0)
        result["checks"] = checks(result["token"])
        report[key] = result
        print(json.dumps({"progress": key, "recall": result["token"]["overall"]["recall"]}), file=sys.stderr)
    report["synthetic_narrative"]["first_run_before_any_rule_change"] = NARRATIVE_FIRST_RUN
    try:
        documents = load_meddocan(args.meddocan_split)
    except Exception as error:
        report["meddocan"] = {"skipped": f"{error.__class__.__name__}: {error}"}
    else:
        meddocan = evaluate([(d.text, d.spans) for d in documents], deid)
        meddocan["split"] = args.meddocan_split
        meddocan["note"] = ("Spanish text, English-first rules (plus Spanish date, address and field cues). Labels "
                            "mapped to HIPAA categories; sex, country, profession, relatives named by relation, "
                            "years alone and ages up to 89 are IGNORE (not Safe Harbor identifiers).")
        report["meddocan"] = meddocan
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
