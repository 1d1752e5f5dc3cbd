"""Map MIMIC-III prescriptions (NDC, drug name, generic name) to ATC level-3 classes such as ``A02B``.

Two families of routes, as documented in ``drug_codes/PROVENANCE.md``:

- **(i) NDC -> RxNorm -> ATC**: ``i-a`` NDC -> RxCUI (GAMENet's ``ndc2rxnorm_mapping.txt``) -> ATC4 (the RxCUI table
  derived from the FDA NDC directory) truncated to 4 characters; ``i-b`` SafeDrug's one-class-per-NDC table (GAMENet's
  own pipeline on full MIMIC-III); ``i-c`` the NDC looked up directly in the FDA 2020 directory.
- **(ii) generic name -> ATC**: ``ii-a`` WHO ATC level-5 names; ``ii-b`` RxNorm ingredient names of the FDA table
  (rows whose ATC5 names that ingredient). The name is cleaned (case, parentheses, strengths, dose forms) and tried as
  the full name, without salt words, then as its first word; ``drug`` is retried when ``drug_name_generic`` fails.

Only classes of the target vocabulary count (default: GAMENet's 151 ``med_voc`` classes). A row may reach several
classes (magnesium sulfate: A06A, A12C, B05X, V04C); ``resolve="best"`` keeps one: SafeDrug's class when it has one
(as GAMENet did), else the class most routes agree on, ties broken by how many NDCs SafeDrug gives the class, then by
code. ``resolve="all"`` keeps them all.

The mapping files are found under ``medai.settings.data_dir()`` (``drug_codes/`` and ``drugrec_ddi_atc/``), or under
the ``folder`` given. polars is imported lazily (``pip install 'medai[timeseries]'``).
"""

from __future__ import annotations

import ast
import json
import os
import re
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from medai import settings
from medai.errors import DataNotFoundError, InvalidInputError, require

NDC_ROUTES = ("i-a", "i-b", "i-c")
NAME_ROUTES = ("ii-a", "ii-b")
ROUTES = (*NDC_ROUTES, "i", *NAME_ROUTES, "ii", "i+ii")
VOCABULARIES = ("gamenet", "safedrug", "all")
RESOLUTIONS = ("best", "all")
FILES = {
    "ndc2rxnorm": "drugrec_ddi_atc/gamenet/ndc2rxnorm_mapping.txt",
    "rxcui_atc": "drug_codes/rxcui_to_atc_from_fda_ndc_2020.csv.gz",
    "safedrug_ndc": "drug_codes/safedrug_mimic3_ndc_to_atc3.csv",
    "who": "drug_codes/who_atc_ddd_2021-12-03.csv",
    "fda_zip": "drug_codes/fda_ndc_directory_2020-06-17_atc5_atc4_ingredients.zip",
    "gamenet_voc": "drugrec_ddi_atc/gamenet/voc_final.json",
    "safedrug_voc": "drugrec_ddi_atc/safedrug/voc_final.json",
}
SPECIAL_TOKENS = {"seperator", "decoder_point"}
DOSE_WORDS = frozenset(
    "tab tabs tablet tablets cap caps capsule capsules neb nebs nebulizer soln sol solution inj injection injectable "
    "flush vial vials susp suspension liquid elixir syrup cream crm ointment oint gel patch powder pwd oral iv po im "
    "sc sq ivpb premix drops drop gtt ophth ophthalmic otic spray nasal inhaler inh hfa mdi pf chewable chew lotion "
    "topical top viscous lozenge troche dr ec sr er xl cr la ir odt bag syringe pen kit concentrate conc rectal "
    "supp suppository enema vaginal dose unit units desensitization replacement protocol sliding scale "
    "in ns d5w w and with for per sugar free".split())
UNIT = r"(?:%|mg|mcg|g|gm|gram|grams|ml|l|meq|mmol|unit|units|iu|u|mcl|hr|h)"
SALT_WORDS = frozenset(
    "hcl hydrochloride hydrobromide sodium disodium potassium calcium magnesium sulfate sulphate tartrate "
    "bitartrate citrate acetate phosphate maleate mesylate besylate succinate fumarate bromide chloride "
    "monohydrate dihydrate trihydrate anhydrous lactate gluconate carbonate hyclate propionate dipropionate "
    "furoate valerate xinafoate".split())


@dataclass(frozen=True)
class DrugMatch:
    """What one prescription (ndc, drug, generic name) maps to: the kept ``classes`` and the classes per route."""

    classes: tuple[str, ...]
    routes: dict[str, tuple[str, ...]]


def normalize_ndc(value: object) -> str | None:
    """MIMIC's 11-digit NDC, or None for a missing one (empty, ``0``, not digits).

    >>> normalize_ndc("00338001702"), normalize_ndc("338001702"), normalize_ndc("0"), normalize_ndc(None)
    ('00338001702', '00338001702', None, None)
    """
    if value is None:
        return None
    text = str(value).strip()
    if text.endswith(".0"):
        text = text[:-2]
    if not text.isdigit() or len(text) > 11 or int(text) == 0:
        return None
    return text.zfill(11)


def fda_ndc_to_mimic(value: str) -> str | None:
    """FDA hyphenated NDC (4-4-2, 5-3-2 or 5-4-1) -> MIMIC's 11 digits (5-4-2 zero-padded).

    >>> fda_ndc_to_mimic("0002-0800-01")
    '00002080001'
    """
    parts = str(value).strip().split("-")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return parts[0].zfill(5) + parts[1].zfill(4) + parts[2].zfill(2)


def name_keys(name: str | None) -> list[str]:
    """The lookup keys of a drug name: cleaned full name, without salt words, first word (distinct, in order).

    >>> name_keys("Metoprolol Tartrate 25 mg Tab")
    ['metoprolol tartrate', 'metoprolol']
    >>> name_keys("Potassium Chloride (Powder)")
    ['potassium chloride', 'potassium']
    """
    if not name:
        return []
    text = re.sub(r"\([^)]*\)|\[[^\]]*\]", " ", str(name).lower())
    text = re.sub(rf"\d+(?:[.,]\d+)?\s*{UNIT}?\b(?:\s*/\s*\d*(?:\.\d+)?\s*{UNIT}\b)?", " ", text)
    words = [w for w in re.split(r"[^a-z]+", text) if w and w not in DOSE_WORDS and len(w) > 1]
    keys = [" ".join(words), " ".join(w for w in words if w not in SALT_WORDS), words[0] if words else ""]
    return list(dict.fromkeys(k for k in keys if k))


class DrugMapper:
    """Maps prescriptions to ATC level-3 classes of a target vocabulary, and reports coverage by route.

    Parameters
    ----------
    vocabulary:
        ``"gamenet"`` (GAMENet ``med_voc``, 151 classes; the default), ``"safedrug"`` (112), ``"all"`` (every WHO
        ATC level-3 class) or an iterable of ATC3 codes.
    folder:
        Folder holding ``drug_codes/`` and ``drugrec_ddi_atc/``; default ``medai.settings.data_dir()``.
    resolve:
        ``"best"`` keeps one class per prescription, ``"all"`` every class reached (see the module docstring).

    Examples
    --------
    >>> mapper = DrugMapper()  # doctest: +SKIP
    >>> mapper.map_drug("00904404073", "Docusate Sodium", None).classes  # doctest: +SKIP
    ('A06A',)
    """

    def __init__(self, vocabulary: str | object = "gamenet", *, folder: str | os.PathLike | None = None,
                 resolve: str = "best"):
        if resolve not in RESOLUTIONS:
            raise InvalidInputError(f"The 'resolve' parameter must be one of {RESOLUTIONS}; got {resolve!r}.")
        if isinstance(vocabulary, str) and vocabulary not in VOCABULARIES:
            raise InvalidInputError(f"The 'vocabulary' parameter must be one of {VOCABULARIES} or a list of ATC3 "
                                    f"codes; got {vocabulary!r}.")
        self.vocabulary_spec = vocabulary
        self.folder = folder
        self.resolve = resolve
        self._tables: dict | None = None

    # ------------------------------------------------------------------------------------------------ public

    @property
    def vocabulary(self) -> list[str]:
        """The target ATC3 classes, sorted."""
        return sorted(self._load()["vocabulary"])

    @property
    def class_names(self) -> dict[str, str]:
        """``{ATC3: WHO name}`` for every WHO level-3 class (upper case, as WHO writes them)."""
        return dict(self._load()["atc3_names"])

    def map_drug(self, ndc: object, drug: str | None, generic: str | None = None) -> DrugMatch:
        """The ATC3 classes of one prescription (only classes of the vocabulary), per route and kept."""
        tables = self._load()
        routes = {route: () for route in ROUTES}
        code = normalize_ndc(ndc)
        if code is not None:
            rxcui = tables["ndc2rxnorm"].get(code)
            routes["i-a"] = tables["rxcui_atc3"].get(rxcui, ()) if rxcui else ()
            routes["i-b"] = tables["safedrug"].get(code, ())
            routes["i-c"] = tables["fda_ndc"].get(code, ())
        routes["i"] = _union(routes[r] for r in NDC_ROUTES)
        primary = generic if generic and str(generic).strip() else drug
        routes["ii-a"] = self._by_name(primary, "who_names")
        routes["ii-b"] = self._by_name(primary, "rxnorm_names")
        routes["ii"] = _union((routes["ii-a"], routes["ii-b"]))
        if not routes["ii"] and primary != drug:
            routes["ii"] = _union((self._by_name(drug, "who_names"), self._by_name(drug, "rxnorm_names")))
        routes["i+ii"] = _union((routes["i"], routes["ii"]))
        return DrugMatch(self._choose(routes), routes)

    def map_frame(self, frame) -> object:
        """Map the distinct ``(ndc, drug, drug_name_generic)`` of a polars (Lazy)Frame.

        Returns a polars DataFrame with those three columns (``drug_name_generic`` null when absent from ``frame``),
        ``atc3`` (list of kept classes, empty when unmapped) and one boolean column per route.
        """
        pl = require("polars", "timeseries")
        lazy = frame.lazy() if isinstance(frame, pl.DataFrame) else frame
        names = lazy.collect_schema().names()
        if "drug_name_generic" not in names:
            lazy = lazy.with_columns(pl.lit(None, dtype=pl.String).alias("drug_name_generic"))
        triples = lazy.select("ndc", "drug", "drug_name_generic").unique().collect()
        rows = {"atc3": [], **{route: [] for route in ROUTES}}
        for ndc, drug, generic in triples.iter_rows():
            match = self.map_drug(ndc, drug, generic)
            rows["atc3"].append(list(match.classes))
            for route in ROUTES:
                rows[route].append(bool(match.routes[route]))
        schema = {"atc3": pl.List(pl.String), **{route: pl.Boolean for route in ROUTES}}
        return triples.hstack(pl.DataFrame(rows, schema=schema))

    def coverage(self, frame, *, mapped=None, weights: str | None = None) -> dict:
        """Rows and distinct ``drug`` strings mapped to the vocabulary, per route, for prescriptions in ``frame``.

        Parameters
        ----------
        frame:
            polars (Lazy)Frame with columns ``ndc``, ``drug`` and optionally ``drug_name_generic``, one row per
            prescription row (or per distinct prescription, with its number of rows in the ``weights`` column).
        mapped:
            The result of :meth:`map_frame` on ``frame`` when already computed.
        weights:
            Name of a column of ``frame`` counting the rows each line stands for.

        Returns
        -------
        dict
            ``{"rows", "drugs", "routes": {route: {"rows", "drugs", "rows_pct", "drugs_pct"}}, "unmapped":
            {"rows", "drugs"}, "classes_kept"}`` (counts only).
        """
        pl = require("polars", "timeseries")
        lazy = frame.lazy() if isinstance(frame, pl.DataFrame) else frame
        if "drug_name_generic" not in lazy.collect_schema().names():
            lazy = lazy.with_columns(pl.lit(None, dtype=pl.String).alias("drug_name_generic"))
        keys = ["ndc", "drug", "drug_name_generic"]
        count = pl.col(weights).sum() if weights else pl.len()
        counts = lazy.group_by(keys).agg(count.cast(pl.Int64).alias("rows")).collect()
        mapped = self.map_frame(counts.select(keys)) if mapped is None else mapped
        table = counts.join(mapped, on=keys, how="left", nulls_equal=True)
        n_rows, drugs = int(table["rows"].sum()), table["drug"].fill_null("")
        n_drugs = drugs.n_unique()
        result = {"rows": n_rows, "drugs": n_drugs, "routes": {}}
        for route in ROUTES:
            hit = table.filter(pl.col(route).fill_null(False))
            rows, distinct = int(hit["rows"].sum()), hit["drug"].fill_null("").n_unique()
            result["routes"][route] = {"rows": rows, "drugs": distinct, "rows_pct": _pct(rows, n_rows),
                                       "drugs_pct": _pct(distinct, n_drugs)}
        total = result["routes"]["i+ii"]
        result["unmapped"] = {"rows": n_rows - total["rows"], "drugs": n_drugs - total["drugs"]}
        result["classes_kept"] = table.filter(pl.col("rows") > 0)["atc3"].explode().drop_nulls().n_unique()
        return result

    def examples(self) -> dict[str, tuple[str, str]]:
        """One ``(ndc, drug name)`` per vocabulary class that this mapper maps back to exactly that class.

        The NDC is one of SafeDrug's for the class (``"0"`` when it has none) and the name a WHO level-5 name of the
        class; used to write synthetic PRESCRIPTIONS. Classes without such a pair are left out.
        """
        tables = self._load()
        ndcs: dict[str, str] = {}
        for ndc, (code,) in sorted(tables["safedrug"].items()):
            ndcs.setdefault(code, ndc)
        names: dict[str, list[str]] = {}
        for name, classes in sorted(tables["who_names"].items()):
            if len(classes) == 1:
                names.setdefault(classes[0], []).append(name)
        found = {}
        for code in sorted(tables["vocabulary"]):
            for name in names.get(code, [])[:5]:
                for ndc in dict.fromkeys((ndcs.get(code, "0"), "0")):
                    if self.map_drug(ndc, name, name).classes == (code,):
                        found[code] = (ndc, name)
                        break
                if code in found:
                    break
        return found

    # --------------------------------------------------------------------------------------------- internals

    def _by_name(self, name: str | None, table: str) -> tuple[str, ...]:
        lookup = self._load()[table]
        for key in name_keys(name):
            found = lookup.get(key)
            if found:
                return found
        return ()

    def _choose(self, routes: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
        reached = routes["i+ii"]
        if self.resolve == "all" or len(reached) <= 1:
            return reached
        if routes["i-b"]:
            return routes["i-b"][:1]
        votes = Counter(code for route in ("i-a", "i-c", "ii-a", "ii-b") for code in routes[route])
        weight = self._load()["safedrug_weight"]
        return (min(reached, key=lambda code: (-votes[code], -weight.get(code, 0), code)),)

    def _load(self) -> dict:
        if self._tables is None:
            self._tables = _read_tables(self._root(), self.vocabulary_spec)
        return self._tables

    def _root(self) -> Path:
        root = Path(self.folder).expanduser() if self.folder is not None else settings.data_dir()
        if root is None:
            raise DataNotFoundError("No data folder for the drug-code mappings: set MEDAI_DATA_DIR to the folder "
                                    "holding drug_codes/ and drugrec_ddi_atc/ (see their PROVENANCE.md).")
        missing = [relative for name, relative in FILES.items() if not (root / relative).is_file()]
        if missing:
            raise DataNotFoundError(f"Drug-code mapping file(s) {missing} not found under '{root}'; expected "
                                    f"drug_codes/ and drugrec_ddi_atc/ as described in their PROVENANCE.md.")
        return root


def read_vocabulary(name: str, folder: str | os.PathLike | None = None) -> list[str]:
    """The ATC3 ``med_voc`` of GAMENet (``"gamenet"``, 151 classes) or SafeDrug (``"safedrug"``, 112)."""
    if name not in ("gamenet", "safedrug"):
        raise InvalidInputError(f"The vocabulary name must be 'gamenet' or 'safedrug'; got {name!r}.")
    root = DrugMapper(folder=folder)._root()
    voc = json.loads((root / FILES[f"{name}_voc"]).read_text())["med_voc"]
    words = voc["idx2word"] if isinstance(voc, dict) else voc
    return [w for w in words if w not in SPECIAL_TOKENS]


# ------------------------------------------------------------------------------------------------- table readers


def _read_tables(root: Path, vocabulary_spec) -> dict:
    pl = require("polars", "timeseries")
    who = pl.read_csv(root / FILES["who"], infer_schema=False, columns=["atc_code", "atc_name"])
    atc3_names = dict(who.filter(pl.col("atc_code").str.len_chars() == 4).unique("atc_code").iter_rows())
    if isinstance(vocabulary_spec, str):
        vocabulary = set(atc3_names) if vocabulary_spec == "all" else set(read_vocabulary(vocabulary_spec, root))
    else:
        vocabulary = {str(code).strip().upper() for code in vocabulary_spec}
        bad = sorted(code for code in vocabulary if not re.fullmatch(r"[A-Z]\d\d[A-Z]", code))
        if bad:
            raise InvalidInputError(f"The vocabulary holds {len(bad)} code(s) that are not ATC level-3 classes "
                                    f"(e.g. {bad[:3]}); expected 4-character codes such as 'A02B'.")

    with open(root / FILES["ndc2rxnorm"], encoding="utf-8") as handle:
        ndc2rxnorm = {normalize_ndc(k): str(v) for k, v in ast.literal_eval(handle.read()).items()}
    rxcui = pl.read_csv(root / FILES["rxcui_atc"], infer_schema=False)
    rxcui_atc3 = _group(rxcui.select("rxcui", "atc4").drop_nulls(), vocabulary)
    safedrug_rows = pl.read_csv(root / FILES["safedrug_ndc"], infer_schema=False)
    safedrug = {normalize_ndc(n): (c,) for n, c in safedrug_rows.iter_rows() if c in vocabulary}
    weight = Counter(safedrug_rows["atc3"].to_list())
    ingredients = rxcui.filter((pl.col("in_tty") == "IN") & pl.col("atc5").is_not_null() & (pl.col("atc5") != ""))
    rxnorm_names = _group(ingredients.select(pl.col("in_name").str.to_lowercase(), "atc5"), vocabulary)
    level5 = who.filter(pl.col("atc_code").str.len_chars() == 7).select(
        pl.col("atc_name").str.to_lowercase().str.replace_all(r"\([^)]*\)", "").str.strip_chars(), "atc_code")
    return {"vocabulary": vocabulary, "atc3_names": atc3_names, "ndc2rxnorm": ndc2rxnorm, "rxcui_atc3": rxcui_atc3,
            "safedrug": safedrug, "safedrug_weight": weight, "fda_ndc": _fda_ndc(root, vocabulary),
            "who_names": _group(level5, vocabulary), "rxnorm_names": rxnorm_names}


def _group(frame, vocabulary: set[str]) -> dict[str, tuple[str, ...]]:
    """Two-column frame (key, ATC code) -> {key: sorted ATC3 classes of the vocabulary}; other keys left out."""
    pl = require("polars", "timeseries")
    key, code = frame.columns
    grouped = (frame.select(pl.col(key).str.strip_chars().alias("key"), pl.col(code).str.slice(0, 4).alias("atc3"))
               .filter(pl.col("key").is_not_null() & (pl.col("key") != "") & pl.col("atc3").is_in(sorted(vocabulary)))
               .group_by("key").agg(pl.col("atc3").unique().sort()))
    return dict(zip(grouped["key"].to_list(), map(tuple, grouped["atc3"].to_list())))


def _fda_ndc(root: Path, vocabulary: set[str]) -> dict[str, tuple[str, ...]]:
    """MIMIC NDC -> ATC3 from the FDA 2020 directory, derived once and cached under ``settings.cache_dir()``."""
    pl = require("polars", "timeseries")
    source = root / FILES["fda_zip"]
    cache = settings.cache_dir() / "drug_codes" / f"fda_ndc11_atc3_{source.stat().st_size}.csv"
    if not cache.is_file():
        with zipfile.ZipFile(source) as archive:
            member = next(n for n in archive.namelist() if n.lower().endswith(".csv"))
            frame = pl.read_csv(archive.read(member), columns=["ndc", "atc4"], infer_schema=False,
                                null_values=["NA", ""])
        parts = pl.col("ndc").str.strip_chars().str.split("-")
        pairs = (frame.drop_nulls()
                 .filter(pl.col("ndc").str.contains(r"^\d+-\d+-\d+$"))
                 .select((parts.list.get(0).str.zfill(5) + parts.list.get(1).str.zfill(4)
                          + parts.list.get(2).str.zfill(2)).alias("ndc"), pl.col("atc4").str.slice(0, 4).alias("atc3"))
                 .unique().sort("ndc", "atc3"))
        cache.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache.with_suffix(f".{os.getpid()}.tmp")
        pairs.write_csv(temporary)
        temporary.replace(cache)
    return _group(pl.read_csv(cache, infer_schema=False), vocabulary)


def _union(groups) -> tuple[str, ...]:
    return tuple(sorted({code for group in groups for code in group}))


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0
