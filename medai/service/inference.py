"""Predictions and explanations for any registered task, with no per-model code.

A request's input becomes a file in a private scratch folder, which is handed to ``medai.api.predict`` /
``medai.api.explain`` like a file named on the command line:

- an upload (image, DICOM, table, any allowed record file) is written as ``input<suffix>``; the client's file name
  is never used as a path, logged or echoed (it may name a patient); an image to predict (no explanation) gets a
  single private file instead of a folder (:class:`ScratchFile`: cheaper under load);
- JSON records (lab values, SMILES, ...) are written as a CSV with the bundle's columns; visit histories as the
  patient JSON the drug-recommendation task reads.

Concurrent image predictions for one model are micro-batched (:class:`Inference`).

What a bundle accepts is read from its config (:func:`input_spec`): a bundle may declare ``"input_spec"`` itself;
otherwise image preprocessing means an image upload, a fitted table preprocessor means a form of its columns,
``smiles_column`` or ``columns`` mean text fields, and anything else accepts a file or free JSON records.
DICOM files pass through medai's DICOM reader, which keeps only the pixels. The scratch folder (or file) is
deleted after each request.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import anyio
import numpy as np

from medai.errors import BundleIntegrityError, MedaiError, MissingDependencyError, did_you_mean
from medai.service.errors import ModelUnavailable, Unprocessable, UnsupportedMediaType
from medai.service.registry import BundleCache, LoadedBundle, VersionRef

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".arff")
RECORD_SUFFIXES = (*TABLE_SUFFIXES, ".json", ".txt", ".smi", ".npz", ".npy", ".hea", ".dat", ".edf", ".xml", ".zip")
MAX_FIELD_CHARACTERS = 2000
_MAGIC = {".png": (0, b"\x89PNG\r\n\x1a\n"), ".jpg": (0, b"\xff\xd8\xff"), ".jpeg": (0, b"\xff\xd8\xff")}


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- what a bundle accepts ---------------------------------------------------------------------------------------


def input_spec(config: dict) -> dict:
    """What a bundle takes: ``{"kind": "image" | "record" | "history" | "file", "suffixes": [...], "fields": [...]}``.

    Fields are ``{"name", "type": "number" | "category" | "text" | "smiles" | "codes", ...}``; numbers carry the
    training median and percentiles, categories their training categories, so a form can show what is typical.
    A bundle may declare its spec in ``config["input_spec"]``; its ``codes`` fields may name where in the config
    their known codes and descriptions are (``"codes_from": "encoder.diagnoses"``, ``"descriptions_from": ...``),
    which are then given as ``codes`` and ``descriptions``. Kind ``history``: each JSON record is one visit
    (earliest first, the last is the current one) and the records are written as ``{"visits": [...]}`` JSON.
    """
    declared = config.get("input_spec")
    if not isinstance(declared, dict) and config.get("task") in SPEC_DECLARING_TASKS:
        from medai.tasks import get_task

        declared = getattr(get_task(config["task"]), "INPUT_SPEC", None)
    if isinstance(declared, dict):
        spec = {"kind": "file", "suffixes": list(RECORD_SUFFIXES), "fields": [], **declared}
        spec["fields"] = [_resolved_field(field, config) for field in spec["fields"] if isinstance(field, dict)]
        return spec
    prep = config.get("preprocessing") or {}
    if "image_size" in prep:
        return {"kind": "image", "suffixes": list(IMAGE_SUFFIXES), "fields": [],
                "image_size": prep["image_size"], "channels": prep.get("channels")}
    if prep.get("cls") == "TabularPreprocessor":
        fields = [{"name": name, "type": "number", "median": prep["medians"][i],
                   "percentiles": (prep.get("percentiles") or {}).get(name)} for i, name in enumerate(prep["numeric"])]
        fields += [{"name": name, "type": "category", "categories": list(prep["categories"].get(name, []))}
                   for name in prep["categorical"]]
        return {"kind": "record", "suffixes": list(TABLE_SUFFIXES), "fields": fields}
    if "smiles_column" in config:
        outputs = [{"name": n, "type": t} for n, t in zip(config.get("task_names") or [], config.get("task_types") or [])]
        return {"kind": "record", "suffixes": list(TABLE_SUFFIXES), "outputs": outputs,
                "fields": [{"name": config.get("smiles_column") or "smiles", "type": "smiles"}]}
    if isinstance(config.get("columns"), dict):
        names = [name for name in config["columns"].values() if isinstance(name, str)]
        return {"kind": "record", "suffixes": list(TABLE_SUFFIXES), "fields": [{"name": n, "type": "text"} for n in names]}
    return {"kind": "file", "suffixes": list(RECORD_SUFFIXES), "fields": []}


# Tasks whose module declares ``INPUT_SPEC``: used for their bundles saved before bundles carried ``input_spec``.
SPEC_DECLARING_TASKS = ("drug-recommendation",)
MAX_CODE_CHARACTERS = 20
_CODE_SEPARATORS = re.compile(r"[\s,;]+")


def _config_value(config: dict, dotted: str):
    value = config
    for part in str(dotted).split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _resolved_field(field: dict, config: dict) -> dict:
    """A declared field with ``codes_from`` / ``descriptions_from`` replaced by the codes and descriptions."""
    field = dict(field)
    source = field.pop("codes_from", None)
    if source is not None:
        codes = _config_value(config, source)
        if isinstance(codes, list):
            field["codes"] = [str(code) for code in codes]
    source = field.pop("descriptions_from", None)
    if source is not None:
        names = _config_value(config, source)
        if isinstance(names, dict):
            field["descriptions"] = {str(code): str(text) for code, text in names.items() if text}
    return field


# -- turning requests into files ---------------------------------------------------------------------------------


def upload_suffix(filename: str | None, spec: dict) -> str:
    """The upload's suffix (lower case) after checking that the name is a plain file name of an accepted type."""
    name = filename or ""
    if not name or len(name) > 255 or any(c in name for c in "/\\\x00") or name in (".", "..") or name.startswith("..") \
            or any(ord(c) < 32 for c in name):
        raise Unprocessable("The upload's file name must be a plain file name (no folders, '..' or control "
                            "characters), e.g. 'scan.png'.")
    suffix = Path(name).suffix.lower()
    if suffix not in spec["suffixes"]:
        raise UnsupportedMediaType(f"This model accepts {', '.join(spec['suffixes'])} files; the upload's name ends in "
                                   f"{suffix or 'no suffix'}.")
    return suffix


def check_content(data: bytes, suffix: str) -> None:
    """Refuse an empty upload, or an image whose first bytes do not match its suffix."""
    if not data:
        raise Unprocessable("The uploaded file is empty.")
    if suffix in _MAGIC:
        offset, magic = _MAGIC[suffix]
        if data[offset : offset + len(magic)] != magic:
            raise UnsupportedMediaType(f"The upload is named {suffix} but its content is not a "
                                       f"{suffix.lstrip('.').upper()} image.")


def write_records(records: list[dict], spec: dict, config: dict, path: Path) -> Path:
    """Write JSON records as a CSV with the bundle's columns (returned path); unknown fields are refused with the
    nearest name. SMILES fields must hold a molecule the bundle's standardisation accepts. For a ``history`` spec
    the records are visits, written as ``{"visits": [...]}`` JSON next to ``path`` (see :func:`write_history`)."""
    known = [field["name"] for field in spec.get("fields", [])]
    given = list(dict.fromkeys(key for record in records for key in record))
    if known:
        unknown = [key for key in given if key not in known]
        if unknown:
            hint = "".join(did_you_mean(key, known) for key in unknown[:3])
            raise Unprocessable(f"Unknown field(s) {', '.join(repr(k[:40]) for k in unknown[:5])}; this model reads "
                                f"{', '.join(known)}.{hint}")
        if spec.get("kind") == "history":
            return write_history(records, spec, path.with_suffix(".json"))
        if not any(record for record in records):
            raise Unprocessable(f"The record is empty; give at least one of {', '.join(known)}.")
        for field in spec.get("fields", []):
            if field.get("type") == "smiles":
                check_smiles(records, field["name"], config)
    columns = known or given
    if not columns:
        raise Unprocessable("The records are empty; give at least one field.")
    id_column = (config.get("settings") or {}).get("id_column")
    header = [*columns, *([id_column] if id_column and id_column not in columns else [])]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for number, record in enumerate(records, start=1):
            row = [_cell(name, record.get(name)) for name in columns]
            writer.writerow(row + ([f"record-{number}"] if len(header) > len(columns) else []))
    return path


def check_smiles(records: list[dict], name: str, config: dict) -> None:
    """Refuse a record whose SMILES is missing or that the bundle's standardisation cannot read (the message gives
    the record's number and RDKit's reason, never the SMILES)."""
    try:
        from medai.chem.standardise import StandardiseOptions, Standardiser

        options = (config.get("source") or {}).get("load_report", {}).get("standardise_options") or {}
        standardiser = Standardiser(StandardiseOptions(**options))
    except (MedaiError, ImportError, TypeError):  # no RDKit here, or options of another version: the task decides
        return
    many = len(records) > 1
    for number, record in enumerate(records, start=1):
        where = f"Record {number}" if many else "The molecule"
        value = record.get(name)
        if not isinstance(value, str) or not value.strip():
            raise Unprocessable(f"{where} has no SMILES; give the molecule as a SMILES string, e.g. CCO for ethanol.")
        if any(ord(c) < 32 for c in value):
            raise Unprocessable(f"{where}: the SMILES holds a control character (such as a line break); remove it.")
        result = standardiser(value)
        if result.status == "invalid":
            raise Unprocessable(f"{where}: the SMILES is not a valid molecule: {_reason(result.reason)}. Check "
                                "brackets, ring-closure digits, element symbols and valences.")
        if result.status != "ok":
            raise Unprocessable(f"{where} cannot be predicted: {_reason(result.reason) or result.status}.")


def _reason(text: str) -> str:
    """RDKit's reason without any SMILES it quotes (the input is not echoed)."""
    return re.sub(r"'[^']*'", "it", str(text or "")).strip()[:200]


def write_history(records: list[dict], spec: dict, path: Path) -> Path:
    """Write visit records (earliest first; the last is the current visit) as ``{"visits": [...]}`` JSON.

    Each ``codes`` field holds codes separated by commas, semicolons or spaces; codes are upper-cased with dots
    removed (``250.00`` -> ``25000``). A field with ``codes`` refuses others; ``required`` fields need a code in
    every visit; ``earlier_visits_only`` fields (medications given) must be empty in the current visit. Messages
    name the visit, the field and the code's position, never a code.
    """
    fields = [field for field in spec.get("fields", []) if field.get("type") == "codes"]
    if not any(_codes(record.get(field["name"]), "", field, check=False) for record in records for field in fields):
        required = [f.get("label", f["name"]).lower() for f in fields if f.get("required")]
        raise Unprocessable("The visit history is empty; give at least one visit with its "
                            f"{' and '.join(required) or 'codes'}.")
    visits = []
    for number, record in enumerate(records, start=1):
        current = number == len(records)
        where = "the current visit" if current else f"visit {number}"
        visit = {}
        for field in fields:
            codes = _codes(record.get(field["name"]), where, field)
            label = field.get("label", field["name"]).lower()
            if field.get("required") and not codes:
                raise Unprocessable(f"{where[0].upper()}{where[1:]} has no {label}; each visit needs at least one "
                                    f"{field.get('system', '')} code.".replace("  ", " "))
            if field.get("earlier_visits_only") and current:
                if codes:
                    raise Unprocessable(f"Leave {label} empty for the current visit: its medications are what the "
                                        "model recommends. Enter them for earlier visits only.")
                continue
            visit[field["name"]] = codes
        visits.append(visit)
    path.write_text(json.dumps({"visits": visits}), encoding="utf-8")
    return path


def _codes(value, where: str, field: dict, check: bool = True) -> list[str]:
    """The codes of one field of one visit, normalised and checked against the field's known codes."""
    if value is None:
        return []
    if isinstance(value, bool) or isinstance(value, float):
        if not check:
            return [str(value)]
        raise Unprocessable(f"The {field['name']} of {where} must be codes written as text, e.g. \"4019, 25000\".")
    codes = [code.replace(".", "").upper() for code in _CODE_SEPARATORS.split(str(value)) if code.strip()]
    codes = [code for code in dict.fromkeys(codes) if code]
    if not check:
        return codes
    label, known = field.get("label", field["name"]).lower(), field.get("codes")
    known = set(known) if isinstance(known, list) else None
    for position, code in enumerate(codes, start=1):
        if len(code) > MAX_CODE_CHARACTERS or not code.isalnum() or not code.isascii():
            raise Unprocessable(f"The {label} of {where}: code {position} is not a code (letters and digits only, "
                                f"at most {MAX_CODE_CHARACTERS}).")
        if known is not None and code not in known:
            system = f"{field['system']} " if field.get("system") else ""
            raise Unprocessable(f"The {label} of {where}: code {position} is not one this model knows (it reads "
                                f"{len(known)} {system}codes, written without dots). Check it, or leave it out.")
    return codes


def _cell(name: str, value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        raise Unprocessable(f"Field {name!r} holds a non-finite number; give a finite value or leave it out.")
    text = repr(value) if isinstance(value, float) else str(value)
    if any(ord(c) < 32 for c in text):
        raise Unprocessable(f"Field {name!r} holds a control character (such as a line break); remove it.")
    return text


# -- running the task --------------------------------------------------------------------------------------------


class Scratch:
    """A private folder for one request's files, removed on exit."""

    def __init__(self, root: Path):
        self.root = root

    def __enter__(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix="request-", dir=self.root))
        return self.path

    def __exit__(self, *_exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class ScratchFile:
    """One private file (mode 0600) holding ``content``, removed on exit: the cheaper scratch of an image
    prediction, which needs no folder of its own (no explanation picture is written beside it).

    Made as ``tempfile.mkstemp`` makes its files (a random name, created exclusively, links not followed), with
    half its CPU: a 64-bit random name and one ``os.open``; the content is written through that descriptor.
    """

    FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)

    def __init__(self, root: Path, suffix: str, content: bytes = b""):
        self.root, self.suffix, self.content = root, suffix, content

    def __enter__(self) -> Path:
        while True:
            path = self.root / f"upload-{secrets.token_hex(8)}{self.suffix}"
            try:
                descriptor = os.open(path, self.FLAGS, 0o600)
                break
            except FileExistsError:  # a 1 in 2**64 chance: draw another name
                continue
            except FileNotFoundError:  # the first upload (or the folder was removed): make it, once
                self.root.mkdir(parents=True, exist_ok=True)
        self.path = path
        try:
            with open(descriptor, "wb") as file:
                file.write(self.content)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    def __exit__(self, *_exc) -> None:
        self.path.unlink(missing_ok=True)


class Inference:
    """Runs predictions and explanations in worker threads, at most ``threads`` at once, one at a time per bundle.

    Image predictions are micro-batched: while a model is busy, the image requests that arrive for it wait in a
    queue, and the next call answers up to ``max_batch`` of them at once (images run in padded chunks of
    ``chunk``, so an image's result never depends on the others in its batch). With one client a request is
    answered at once; with many, the model runs on full batches instead of one image at a time. Should a batch
    fail (say one upload is not a readable image), each of its requests is run on its own, so one bad upload
    fails only its own request.

    With ``processes`` >= 1 the image batches run in separate inference processes (started on first use; each
    loads a bundle itself and checks its registered checksum), so the network's work never waits on, or holds
    up, the web server's interpreter lock; while a batch runs, the next one already waits in the pipe, so the
    process does not idle between batches. Everything else (explanations, records, an image the batch could not
    answer) runs in this process's worker threads.
    """

    def __init__(self, cache: BundleCache, threads: int = 2, max_batch: int = 64, chunk: int = 8, processes: int = 0):
        self.cache = cache
        self.limiter = anyio.CapacityLimiter(threads)
        self.max_batch = max_batch
        self.chunk = chunk
        self.processes = processes
        self._pool = None
        self._lanes: dict[int, _Lane] = {}  # per model version: its queued image requests

    def close(self) -> None:
        """Stop the inference processes, if they were started."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)  # the running batch (under a second) finishes
            self._pool = None

    async def config(self, version) -> tuple[dict, dict]:
        """The config.json of ``version`` (loading the bundle on first use) and its :func:`input_spec`."""
        loaded = self.cache.peek(version.id)
        if loaded is None:
            loaded = await anyio.to_thread.run_sync(self._loaded, version)
        return loaded.bundle.config, self._spec(loaded)

    @staticmethod
    def _spec(loaded: LoadedBundle) -> dict:
        spec = loaded.bundle.parts.get("input_spec")
        if spec is None:  # worked out once per loaded bundle
            spec = loaded.bundle.parts["input_spec"] = input_spec(loaded.bundle.config)
        return spec

    async def predict(self, version, source: Path, display_name: str, *, batchable: bool = False) -> list[dict]:
        """The task's results for one input; ``batchable`` (an image file: one result) joins the micro-batch."""
        if not batchable or self.max_batch < 2:
            call = partial(self._predict, version, [source], display_name)
            return await anyio.to_thread.run_sync(call, limiter=self.limiter)
        waiting = _Waiting(source, display_name, asyncio.get_running_loop().create_future())
        lane = self._lanes.get(version.id)
        if lane is None:
            lane = self._lanes[version.id] = _Lane([], asyncio.Event())
        lane.queue.append(waiting)
        lane.arrived.set()
        if lane.drain is None:
            lane.drain = asyncio.create_task(self._drain(version, lane))
        return await waiting.future

    async def explain(self, version, source: Path, display_name: str, target: str | None) -> dict:
        call = partial(self._explain, version, source, display_name, target)
        return await anyio.to_thread.run_sync(call, limiter=self.limiter)

    async def _drain(self, version, lane: _Lane) -> None:
        """Answer the queued image requests of ``version`` in batches (see :meth:`_batch_size`) until none is
        left: woken when a batch is answered and, while batches are in flight, when a request arrives."""
        running: set[asyncio.Task] = set()
        try:
            while lane.queue or running:
                while size := self._batch_size(len(running), len(lane.queue)):
                    batch = [w for w in lane.queue[:size] if not w.future.done()]  # done: the client went away
                    del lane.queue[:size]
                    if batch:
                        running.add(asyncio.create_task(self._answer(version, batch)))
                if not running:
                    continue
                lane.arrived.clear()
                arrival = asyncio.ensure_future(lane.arrived.wait())
                try:
                    done, _ = await asyncio.wait({*running, arrival}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    arrival.cancel()  # also when this drain is cancelled: no waiter left behind
                running -= done
        finally:
            for task in running:  # only when this drain itself is cancelled (server shutting down)
                task.cancel()
            lane.drain = None
            if not lane.queue:
                self._lanes.pop(version.id, None)

    def _batch_size(self, running: int, queued: int) -> int:
        """How many queued requests to send now, with ``running`` batches in flight (0: wait).

        With nothing in flight, all that wait (up to ``max_batch``). In worker threads, one batch at a time.
        With inference processes, more batches are sent while one runs (the next waits in the pipe: no idle gap
        between batches; with several processes, each takes one), up to two per process, but only whole chunks:
        a padded chunk costs as much as a full one, so a short remainder waits for the running batch.
        """
        if not queued or (running and not self.processes) or running >= 2 * max(1, self.processes):
            return 0
        if not running:
            return min(queued, self.max_batch)
        return min(queued, self.max_batch) // self.chunk * self.chunk

    async def _answer(self, version, batch: list[_Waiting]) -> None:
        if len(batch) > 1 or self.processes:
            try:
                results = await self._run_batch(version, [w.source for w in batch])
            except Exception:
                results = None
            if results is not None and len(results) == len(batch):
                for waiting, result in zip(batch, results):
                    _settle(waiting.future, [clean(result, waiting.source, waiting.display_name)])
                return
        for waiting in batch:
            call = partial(self._predict, version, [waiting.source], waiting.display_name)
            try:
                outcome = await anyio.to_thread.run_sync(call, limiter=self.limiter)
            except Exception as error:
                _settle(waiting.future, error=error)
            else:
                _settle(waiting.future, outcome)

    async def _run_batch(self, version, sources: list[Path]) -> list[dict]:
        if not self.processes:
            return await anyio.to_thread.run_sync(partial(self._predict_raw, version, sources), limiter=self.limiter)
        from concurrent.futures.process import BrokenProcessPool

        call = partial(_predict_in_process, version, [str(s) for s in sources], self.chunk)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._process_pool(), call)
        except BrokenProcessPool:  # the process died (e.g. out of memory): a new one on the next batch
            self._pool = None
            raise

    def _process_pool(self):
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            threads = max(1, (os.cpu_count() or 2) // (2 * self.processes))  # the other half serves the web
            self._pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_start_inference_process,
                                             initargs=(threads, os.getpid(), self.cache.size, self.cache.freeze))
        return self._pool

    def _loaded(self, version) -> LoadedBundle:
        try:
            return self.cache.get(version)
        except (BundleIntegrityError, MissingDependencyError) as error:
            raise ModelUnavailable(f"The model cannot be used now: {error}") from None

    def _options(self, loaded: LoadedBundle) -> dict:
        """predict's options for ``loaded`` (call it holding ``loaded.lock``): image chunks and their padding."""
        if self._spec(loaded)["kind"] != "image":
            return {}
        sizes = loaded.pad_sizes_for(self.chunk)
        return {"chunk": self.chunk} | ({"pad_sizes": sizes} if sizes else {})

    def _predict_raw(self, version, sources: list[Path]) -> list[dict]:
        """The task's results for input files in one call (errors not translated: see ``_answer``)."""
        from medai import api

        loaded = self._loaded(version)
        with loaded.lock:
            return api.predict(loaded.bundle, sources, **self._options(loaded))

    def _predict(self, version, sources: list[Path], display_name: str) -> list[dict]:
        """:meth:`_predict_raw` with the task's errors as 4xx/5xx answers and the results cleaned."""
        source = sources[0]
        with task_errors(source.parent):
            results = self._predict_raw(version, sources)
        if not results:
            raise Unprocessable("No usable record in the input (every field missing, or no rows).")
        return [clean(result, source, display_name) for result in results]

    def _explain(self, version, source: Path, display_name: str, target: str | None) -> dict:
        from medai import api

        loaded = self._loaded(version)
        out = source.parent / "explanation.png"
        options = {"target": target} if target else {}
        with loaded.lock, task_errors(source.parent):
            prediction = api.predict(loaded.bundle, [source], **self._options(loaded))
            explanation = api.explain(loaded.bundle, source, out, **options)
        picture = base64.b64encode(out.read_bytes()).decode("ascii") if out.is_file() else None
        return {"prediction": clean(prediction[0], source, display_name) if prediction else None,
                "explanation": clean(explanation, source, display_name), "image_png_base64": picture}


_PROCESS_CACHE: BundleCache | None = None  # in an inference process: the bundles it has loaded


def _start_inference_process(threads: int, parent: int, cache_size: int = 8, freeze: bool = True) -> None:
    import threading

    import torch

    global _PROCESS_CACHE
    torch.set_num_threads(threads)
    _PROCESS_CACHE = BundleCache(cache_size, freeze=freeze)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="parent-watch").start()


def _exit_with_parent(parent: int) -> None:
    """End the inference process once the server that started it is gone (killed, crashed): not left behind."""
    import time

    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _predict_in_process(version: VersionRef, sources: list[str], chunk: int) -> list[dict]:
    """In an inference process: the task's results for image files, the bundle loaded once (its registered
    checksum checked) and short chunks padded only to sizes that give the same results."""
    from medai import api

    loaded = _PROCESS_CACHE.get(version)
    options = {"chunk": chunk}
    if sizes := loaded.pad_sizes_for(chunk):  # one batch at a time in this process: no lock needed
        options["pad_sizes"] = sizes
    return api.predict(loaded.bundle, [Path(s) for s in sources], **options)


@dataclass
class _Waiting:
    """One queued image request: its scratch file, the name to show for it, and where its answer goes."""

    source: Path
    display_name: str
    future: asyncio.Future


@dataclass
class _Lane:
    """The image requests queued for one model version, the event that signals a new one, and the task
    answering them (None when idle)."""

    queue: list[_Waiting]
    arrived: asyncio.Event
    drain: asyncio.Task | None = None


def _settle(future: asyncio.Future, result=None, *, error: BaseException | None = None) -> None:
    if future.done():  # the request was cancelled (client gone)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


@contextmanager
def task_errors(scratch: Path) -> Iterator[None]:
    """Turn the task's errors into 4xx/5xx answers whose messages name no server path."""
    try:
        yield
    except (BundleIntegrityError, MissingDependencyError) as error:
        raise ModelUnavailable(f"The model cannot be used now: {error}") from None
    except MedaiError as error:
        prefix = str(scratch)
        raise Unprocessable(str(error).replace(prefix + "/", "").replace(prefix, "upload")) from None


def clean(result, source: Path, display_name: str):
    """A task's result as plain JSON: numpy values unwrapped, NaN as null, scratch paths dropped, and the scratch
    file's name (``input.png``) shown as ``display_name``; record ids such as ``row-2`` are kept."""
    prefix = str(source.parent)

    def convert(value, key=None):
        if key == "input" and str(value) in (source.name, str(source)):
            return display_name
        if isinstance(value, dict):
            return {str(k): convert(v, str(k)) for k, v in value.items()
                    if not (isinstance(v, (str, Path)) and str(v).startswith(prefix))}
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        if isinstance(value, np.ndarray):
            return convert(value.tolist())
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, Path):
            return value.name
        return value

    return convert(result)
