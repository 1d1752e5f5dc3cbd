"""The model registry: named models with numbered versions, each a bundle folder owned by the service.

Registering copies the bundle into ``MEDAI_HOME/bundles/<name>/v<version>`` (so later changes to the source do
not change what is served), loads it once (``load_bundle`` verifies the weights' SHA-256) and records the
checksum. A version is ``staging`` or ``production`` (one production version per model) and can be retired.
Bundles are loaded on first use and kept in a small least-recently-used cache, re-checked against the
registered checksum.
"""

from __future__ import annotations

import re
import shutil
import stat
import tempfile
import threading
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medai.bundle import ModelBundle, load_bundle, read_config
from medai.errors import BundleIntegrityError, MedaiError, did_you_mean
from medai.service.errors import Conflict, NotFound, PayloadTooLarge, Unprocessable
from medai.service.expiring import ExpiringCache
from medai.service.heap import freeze_long_lived
from medai.service.models import STAGES, ModelVersion, RegisteredModel

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_ZIP_MEMBERS = 2000


def check_name(name: str) -> str:
    """A model name: 1-64 characters of lower-case letters, digits, '.', '_' and '-', starting with a letter or digit."""
    if not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise Unprocessable("A model name has 1 to 64 characters: lower-case letters, digits, '.', '_' and '-', "
                            "starting with a letter or digit (e.g. 'breast-ultrasound').")
    return name


def check_register_path(path: str, roots: list[Path]) -> Path:
    """The resolved bundle folder ``path`` if it lies inside one of ``roots``; 4xx errors otherwise."""
    if "\x00" in path:
        raise Unprocessable("The path contains a NUL character.")
    folder = Path(path).expanduser().resolve()
    if not any(folder == root or root in folder.parents for root in roots):
        allowed = ", ".join(str(root) for root in roots)
        raise Unprocessable(f"Bundles are registered from inside {allowed} (MEDAI_REGISTER_ROOTS); the path given "
                            f"lies outside. Copy the bundle folder there, or upload it as a zip file.")
    if not folder.is_dir():
        raise Unprocessable(f"No bundle folder at {folder}.")
    return folder


# -- registration ------------------------------------------------------------------------------------------------


def register(session: Session, bundles_dir: Path, name: str, folder: Path, *, actor: str, description: str = "",
             stage: str = "staging", source: str = "") -> tuple[ModelVersion, ModelBundle]:
    """Copy the bundle in ``folder`` into the registry as the next version of ``name`` (not committed).

    Raises:
        Unprocessable: not a complete, loadable medai bundle, or a bad name or stage.
        Conflict: a concurrent registration took the same version number.
    """
    check_name(name)
    if stage not in STAGES:
        raise Unprocessable(f"The stage must be one of {', '.join(STAGES)}; got {stage!r}.")
    try:
        config = read_config(folder)
    except MedaiError as error:
        raise Unprocessable(str(error)) from None
    _refuse_links(folder)
    model = session.scalar(select(RegisteredModel).where(RegisteredModel.name == name))
    if model is None:
        model = RegisteredModel(name=name, description=description, created_by=actor)
        session.add(model)
        session.flush()
    elif description:
        model.description = description
    number = max((v.version for v in model.versions), default=0) + 1
    target = bundles_dir / name / f"v{number}"
    bundle = _copy_and_load(folder, target)
    version = ModelVersion(model=model, version=number, task=config["task"], checksum=config["weights_sha256"],
                           storage_path=str(target), source=source, stage="staging",
                           label_names=list(bundle.label_names), registered_by=actor)
    session.add(version)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        shutil.rmtree(target, ignore_errors=True)
        raise Conflict(f"Another version of '{name}' was registered at the same moment; try again.") from None
    if stage == "production":
        set_stage(session, version, "production")
    return version, bundle


def _refuse_links(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_symlink():
            raise Unprocessable(f"The bundle holds a symbolic link ({path.relative_to(folder)}); registered bundles "
                                f"must contain plain files only.")


def _copy_and_load(folder: Path, target: Path) -> ModelBundle:
    if target.exists():  # left over from a registration that failed after copying
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        shutil.copytree(folder, staging / "bundle", symlinks=True)
        (staging / "bundle").rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    try:
        return load_bundle(target)
    except MedaiError as error:
        shutil.rmtree(target, ignore_errors=True)
        raise Unprocessable(f"The bundle cannot be loaded: {error}") from None
    except Exception as error:
        shutil.rmtree(target, ignore_errors=True)
        raise Unprocessable(f"The bundle cannot be loaded ({type(error).__name__}); check that it was saved by "
                            f"medai and that its task's optional dependencies are installed.") from None


def unpack_bundle_zip(archive: Path, destination: Path, max_bytes: int) -> Path:
    """Extract a zipped bundle safely; return the bundle folder (the archive's root or its single top folder).

    Refuses absolute names, '..', links and special files, more than 2000 members, and more than ``max_bytes``
    once unpacked.
    """
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = zipped.infolist()
            if len(members) > MAX_ZIP_MEMBERS:
                raise Unprocessable(f"The zip file holds {len(members)} entries; a bundle has at most {MAX_ZIP_MEMBERS}.")
            if sum(member.file_size for member in members) > max_bytes:
                raise PayloadTooLarge(f"The bundle would unpack to more than {max_bytes // 2**20} MiB.")
            for member in members:
                _check_member(member)
            zipped.extractall(destination)
    except zipfile.BadZipFile:
        raise Unprocessable("The upload is not a readable zip file; zip the bundle folder (config.json and "
                            "model.safetensors inside) and upload it again.") from None
    entries = [p for p in destination.iterdir() if not p.name.startswith("__MACOSX")]
    if not (destination / "config.json").exists() and len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return destination


def _check_member(member: zipfile.ZipInfo) -> None:
    name = member.filename
    parts = Path(name).parts
    mode = member.external_attr >> 16
    if name.startswith(("/", "\\")) or ".." in parts or "\\" in name or ":" in name or "\x00" in name:
        raise Unprocessable("The zip file holds an entry with an absolute or parent ('..') path; refused.")
    if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise Unprocessable("The zip file holds a link or special file; a bundle holds plain files only.")


# -- stages and retirement ---------------------------------------------------------------------------------------


def set_stage(session: Session, version: ModelVersion, stage: str) -> None:
    """Make ``version`` staging or production; a new production version demotes the previous one."""
    if stage not in STAGES:
        raise Unprocessable(f"The stage must be one of {', '.join(STAGES)}; got {stage!r}.")
    if version.retired:
        raise Conflict(f"Version {version.version} of '{version.model.name}' is retired; register it again to use it.")
    if stage == "production":
        for other in version.model.versions:
            if other is not version and other.stage == "production":
                other.stage = "staging"
    version.stage = stage


def retire(session: Session, version: ModelVersion) -> None:
    """Retire ``version``: it can no longer be used for predictions (its files and audit entries remain)."""
    if version.retired:
        raise Conflict(f"Version {version.version} of '{version.model.name}' is already retired.")
    version.retired_at = datetime.now(timezone.utc)
    version.stage = "staging"


# -- look-up -----------------------------------------------------------------------------------------------------


def get_model(session: Session, name: str) -> RegisteredModel:
    model = session.scalar(select(RegisteredModel).where(RegisteredModel.name == name))
    if model is None:
        names = session.scalars(select(RegisteredModel.name)).all()
        hint = did_you_mean(name, names) if NAME_PATTERN.fullmatch(name) else ""
        raise NotFound(f"No registered model named {name!r}.{hint}" if hint else "No registered model of that name.")
    return model


def get_version(session: Session, name: str, number: int | None, *, usable: bool = False) -> ModelVersion:
    """Version ``number`` of model ``name``, or its production version when ``number`` is None.

    With ``usable``, a retired version is refused (409) with the versions that can be used instead.
    """
    model = get_model(session, name)
    if number is None:
        production = [v for v in model.versions if v.stage == "production" and not v.retired]
        if not production:
            listed = ", ".join(f"{v.version} ({'retired' if v.retired else v.stage})" for v in model.versions)
            raise Conflict(f"'{name}' has no production version; choose one with ?version=N (versions: {listed}).")
        return production[0]
    found = [v for v in model.versions if v.version == number]
    if not found:
        raise NotFound(f"'{name}' has no version {number}; it has {', '.join(str(v.version) for v in model.versions)}.")
    if usable and found[0].retired:
        active = [str(v.version) for v in model.versions if not v.retired]
        raise Conflict(f"Version {number} of '{name}' is retired; usable versions: {', '.join(active) or 'none'}.")
    return found[0]


@dataclass(frozen=True)
class VersionRef:
    """What serving a prediction needs of a model version, detached from any database session."""

    id: int
    model_name: str
    version: int
    checksum: str
    task: str
    stage: str
    storage_path: str

    @classmethod
    def of(cls, version: ModelVersion) -> VersionRef:
        return cls(version.id, version.model.name, version.version, version.checksum, version.task, version.stage,
                   version.storage_path)


class VersionDirectory:
    """Usable versions by (model name, version number or None for production), kept ``seconds`` in memory.

    Predictions look their model up here instead of in the database. A registry change made through this
    process clears it at once (``clear``); other processes serving the same database see it within ``seconds``.
    Errors (unknown model, retired version) are not kept.
    """

    def __init__(self, database, seconds: float = 5.0):
        self.database = database
        self._known = ExpiringCache(seconds)

    def cached(self, name: str, number: int | None) -> VersionRef | None:
        return self._known.get((name, number))

    def resolve(self, name: str, number: int | None) -> VersionRef:
        """The usable version (from memory, else the database); 404/409 errors as ``get_version``."""
        found = self.cached(name, number)
        if found is None:
            with self.database.session() as session:
                found = VersionRef.of(get_version(session, name, number, usable=True))
            self._known.put((name, number), found)
        return found

    def clear(self) -> None:
        self._known.clear()


# -- the bundle cache --------------------------------------------------------------------------------------------


@dataclass
class LoadedBundle:
    """A loaded bundle and the lock that serialises its use (explainers attach hooks to the shared model)."""

    bundle: ModelBundle
    lock: threading.Lock = field(default_factory=threading.Lock)
    pad_sizes: tuple[int, ...] | None = None  # image models: see pad_sizes_for(); None until first needed

    def pad_sizes_for(self, chunk: int) -> tuple[int, ...]:
        """The batch sizes a short chunk of images may be padded to instead of ``chunk`` with the same results
        on this machine (:func:`medai.tasks.image_classification.inference_pad_sizes`), checked once (~50 ms);
        () for other tasks. Call it holding ``lock``."""
        if self.pad_sizes is None:
            self.pad_sizes = ()
            if self.bundle.task == "image-classification":
                from medai.tasks.image_classification import inference_pad_sizes

                self.pad_sizes = inference_pad_sizes(self.bundle, chunk)
        return self.pad_sizes


class BundleCache:
    """Loaded bundles by model-version id, least recently used dropped beyond ``size``; with ``freeze``, a loaded
    bundle is moved out of the garbage collector's full passes (:func:`medai.service.heap.freeze_long_lived`)."""

    def __init__(self, size: int = 8, freeze: bool = False):
        self.size = size
        self.freeze = freeze
        self._loaded: OrderedDict[int, LoadedBundle] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, version_id: int, bundle: ModelBundle) -> LoadedBundle:
        with self._lock:
            loaded = self._loaded[version_id] = LoadedBundle(bundle)
            self._trim()
        return loaded

    def get(self, version: ModelVersion) -> LoadedBundle:
        """The loaded bundle of ``version``, loading (and verifying) it on first use."""
        with self._lock:
            if version.id in self._loaded:
                self._loaded.move_to_end(version.id)
                return self._loaded[version.id]
            bundle = load_bundle(version.storage_path)  # verifies the weights against config.json
            if bundle.config.get("weights_sha256") != version.checksum:
                raise BundleIntegrityError(f"The bundle of '{version.model_name}' version {version.version} differs "
                                           f"from the one registered (checksum changed).")
            loaded = self._loaded[version.id] = LoadedBundle(bundle)
            self._trim()
            if self.freeze:
                freeze_long_lived()  # the bundle (and torch, imported for it) stays loaded
            return loaded

    def peek(self, version_id: int) -> LoadedBundle | None:
        """The loaded bundle of a version if it is in memory (no loading, no recency update)."""
        return self._loaded.get(version_id)

    def evict(self, version_id: int) -> None:
        with self._lock:
            self._loaded.pop(version_id, None)

    def __contains__(self, version_id: int) -> bool:
        return version_id in self._loaded

    def _trim(self) -> None:
        while len(self._loaded) > self.size:
            self._loaded.popitem(last=False)
