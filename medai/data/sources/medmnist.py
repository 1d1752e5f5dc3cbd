"""MedMNIST v2 2-D datasets: a catalog, a checksum-verified downloader and a loader for the ``.npz`` files.

A MedMNIST ``.npz`` archive holds ``{split}_images`` (uint8, shape (N, H, W) or (N, H, W, 3)) and
``{split}_labels`` (shape (N, 1)) for the splits ``train``, ``val`` and ``test``. Label names, URLs and MD5
checksums come from the medmnist package (``medmnist/info.py``, version 3.0.2, Zenodo record 10519652).

Examples:
    >>> from medai.data.sources.medmnist import MEDMNIST_2D, parse_name
    >>> MEDMNIST_2D["breastmnist"].label_names
    ('malignant', 'normal, benign')
    >>> parse_name("BreastMNIST_64")
    ('breastmnist', 64)
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medai import settings
from medai.data.dataset import Dataset, Schema
from medai.errors import DataNotFoundError, InvalidInputError, did_you_mean

ZENODO_RECORD = "https://zenodo.org/records/10519652/files"
SIZES = (28, 64, 128, 224)
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class MedMNISTInfo:
    """One MedMNIST 2-D dataset.

    Attributes:
        name: catalog name, e.g. ``"breastmnist"``.
        description: one line on what the images show and the task.
        label_names: class names, index = class id.
        n_channels: 1 (grayscale) or 3 (RGB).
        task: ``"binary"``, ``"multiclass"``, ``"ordinal"`` (loaded as multiclass) or ``"multi-label"``.
        md5: MD5 checksum per image size (28 is the original ``<name>.npz``; others ``<name>_<size>.npz``).
        license: licence of the data.
        supported: False for datasets medai cannot train on yet (multi-label).
    """

    name: str
    description: str
    label_names: tuple[str, ...]
    n_channels: int
    task: str
    md5: dict[int, str]
    license: str = "CC BY 4.0"
    supported: bool = True

    def file_name(self, size: int = 28) -> str:
        return f"{self.name}.npz" if size == 28 else f"{self.name}_{size}.npz"

    def url(self, size: int = 28) -> str:
        return f"{ZENODO_RECORD}/{self.file_name(size)}?download=1"


def _info(name, description, labels, channels, task, md5s, license="CC BY 4.0", supported=True) -> MedMNISTInfo:
    return MedMNISTInfo(name, description, tuple(labels), channels, task, dict(zip(SIZES, md5s)), license, supported)


_ORGANS = ("bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right", "liver", "lung-left",
           "lung-right", "pancreas", "spleen")

MEDMNIST_2D: dict[str, MedMNISTInfo] = {info.name: info for info in (
    _info("pathmnist", "Colorectal cancer histology patches (H&E), 9 tissue types", (
        "adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle", "normal colon mucosa",
        "cancer-associated stroma", "colorectal adenocarcinoma epithelium"), 3, "multiclass",
        ("a8b06965200029087d5bd730944a56c1", "55aa9c1e0525abe5a6b9d8343a507616",
         "ac42d08fb904d92c244187169d1fd1d9", "2c51a510bcdc9cf8ddb2af93af1eadec")),
    _info("chestmnist", "Chest X-ray (NIH ChestX-ray14), 14 findings, multi-label", (
        "atelectasis", "cardiomegaly", "effusion", "infiltration", "mass", "nodule", "pneumonia", "pneumothorax",
        "consolidation", "edema", "emphysema", "fibrosis", "pleural", "hernia"), 1, "multi-label",
        ("02c8a6516a18b556561a56cbdd36c4a8", "9de6cd0b934ebb5b7426cfba5efbae16",
         "db107e5590b27930b62dbaf558aebee3", "45bd33e6f06c3e8cdb481c74a89152aa"), supported=False),
    _info("dermamnist", "Dermatoscopic images of pigmented skin lesions (HAM10000), 7 diagnoses", (
        "actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma", "benign keratosis-like lesions",
        "dermatofibroma", "melanoma", "melanocytic nevi", "vascular lesions"), 3, "multiclass",
        ("0744692d530f8e62ec473284d019b0c7", "b70a2f5635c6199aeaa28c31d7202e1f",
         "2defd784463fa5243564e855ed717de1", "8974907d8e169bef5f5b96bc506ae45d"), license="CC BY-NC 4.0"),
    _info("octmnist", "Retinal optical coherence tomography, 4 diagnoses", (
        "choroidal neovascularization", "diabetic macular edema", "drusen", "normal"), 1, "multiclass",
        ("c68d92d5b585d8d81f7112f81e2d0842", "e229e9440236b774d9f0dfef9d07bdaf",
         "0a97e76651ace45c5d943ee3f65b63ae", "abc493b6d529d5de7569faaef2773ba3")),
    _info("pneumoniamnist", "Paediatric chest X-ray, normal vs pneumonia", ("normal", "pneumonia"), 1, "binary",
          ("28209eda62fecd6e6a2d98b1501bb15f", "8f4eceb4ccffa70c672198ea285246c6",
           "05b46931834c231683c68f40c47b2971", "d6a3c71de1b945ea11211b03746c1fe1")),
    _info("retinamnist", "Retinal fundus images, diabetic retinopathy grade 0-4 (ordinal, loaded as multiclass)",
          ("0", "1", "2", "3", "4"), 3, "ordinal",
          ("bd4c0672f1bba3e3a89f0e4e876791e4", "afda852cc34dcda56f86ad2b2457dbcc",
           "e48e916a24454daf90583d4e6efb1a18", "eae7e3b6f3fcbda4ae613ebdcbe35348")),
    _info("breastmnist", "Breast ultrasound, malignant vs normal/benign", ("malignant", "normal, benign"), 1,
          "binary", ("750601b1f35ba3300ea97c75c52ff8f6", "742edef2a1fd1524b2efff4bd7ba9364",
                     "363e4b3f8d712e9b5de15470a2aaadf1", "b56378a6eefa9fed602bb16d192d4c8b")),
    _info("bloodmnist", "Blood cell microscopy, 8 cell types", (
        "basophil", "eosinophil", "erythroblast",
        "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)", "lymphocyte", "monocyte",
        "neutrophil", "platelet"), 3, "multiclass",
        ("7053d0359d879ad8a5505303e11de1dc", "2b94928a2ae4916078ca51e05b6b800b",
         "adace1e0ed228fccda1f39692059dd4c", "b718ff6835fcbdb22ba9eacccd7b2601")),
    _info("tissuemnist", "Kidney cortex cell microscopy (BBBC051), 8 cell types", (
        "Collecting Duct, Connecting Tubule", "Distal Convoluted Tubule", "Glomerular endothelial cells",
        "Interstitial endothelial cells", "Leukocytes", "Podocytes", "Proximal Tubule Segments",
        "Thick Ascending Limb"), 1, "multiclass",
        ("ebe78ee8b05294063de985d821c1c34b", "123ece2eba09d0aa5d698fda57103344",
         "61b955355d7425a89687b06cca3ce0c2", "b077128c4a949f0a4eb01517f9037b9c")),
    _info("organamnist", "Abdominal CT, axial slices, 11 organs", _ORGANS, 1, "multiclass",
          ("68e3f8846a6bd62f0c9bf841c0d9eacc", "2dcccc29b88e6da5a01161ef20cda288",
           "eeae80d0a227a8d099027e1b3cfd3b60", "50747347e05c87dd3aaf92c49f9f3170")),
    _info("organcmnist", "Abdominal CT, coronal slices, 11 organs", _ORGANS, 1, "multiclass",
          ("b9ceb9546e10131b32923c5bbeaea2b1", "3ce34a8724ea6f548e6db4744d03b6a9",
           "773c1f009daa3fe5d9a2a201b2a7ed94", "050f5e875dc056f6768abf94ec9995d1")),
    _info("organsmnist", "Abdominal CT, sagittal slices, 11 organs", _ORGANS, 1, "multiclass",
          ("9ab87b696fb54e2a387ebe992d6ed5f1", "53a6d115339d874c25e309a994ff46d3",
           "ded0c5fa01a95dc4978b956f613e9b8e", "b354719e553fbbb2513d5533f52a4cb1")),
)}

_NAME_PATTERN = re.compile(r"^([a-z]+mnist)(?:_(\d+))?$")


def parse_name(name: str) -> tuple[str, int] | None:
    """Split ``"breastmnist_64"`` (any case, optional ``.npz``) into ``("breastmnist", 64)``; None if no match."""
    text = name.strip().lower().removesuffix(".npz")
    match = _NAME_PATTERN.match(text)
    if not match:
        return None
    return match.group(1), int(match.group(2) or 28)


def catalog_entry(name: str) -> tuple[MedMNISTInfo, int]:
    """Look up a catalog name such as ``"BreastMNIST"`` or ``"breastmnist_128"``.

    Raises:
        InvalidInputError: unknown name (with the nearest valid one) or an image size MedMNIST does not publish.
    """
    parsed = parse_name(name)
    if parsed is None or parsed[0] not in MEDMNIST_2D:
        raise InvalidInputError(
            f"Unknown MedMNIST dataset {name!r}; known 2-D datasets: {', '.join(MEDMNIST_2D)}."
            f"{did_you_mean(name.strip().lower(), MEDMNIST_2D)}"
        )
    base, size = parsed
    if size not in SIZES:
        raise InvalidInputError(f"MedMNIST image size must be one of {SIZES}; got {size} in {name!r}.")
    return MEDMNIST_2D[base], size


def local_candidates(info: MedMNISTInfo, size: int = 28) -> list[Path]:
    """Where a catalog file is looked for, in order: the data folder, then the download cache."""
    file_name = info.file_name(size)
    short = info.name.removesuffix("mnist")
    places = []
    data = settings.data_dir()
    if data is not None:
        places += [data / f"medmnist_{short}" / file_name, data / "medmnist" / file_name, data / file_name]
    places.append(settings.cache_dir() / "medmnist" / file_name)
    return places


def find_local(info: MedMNISTInfo, size: int = 28) -> Path | None:
    """The first existing local copy of a catalog file, or None."""
    return next((path for path in local_candidates(info, size) if path.is_file()), None)


def resolve_medmnist(name_or_path: str | os.PathLike, download: bool = True) -> Path:
    """Return the path of a MedMNIST ``.npz`` file given a path or a catalog name.

    A path that exists is returned as is. A catalog name (``"breastmnist"``, ``"BreastMNIST_64"``) is looked for
    in ``<data_dir>/medmnist_<short>/``, ``<data_dir>/medmnist/``, ``<data_dir>/`` and ``<cache_dir>/medmnist/``;
    otherwise it is downloaded into the cache (MD5 verified) unless ``download`` is False or medai is offline.

    Raises:
        InvalidInputError: unknown name, or a dataset medai does not support yet (multi-label ChestMNIST).
        DataNotFoundError: a missing path, or a name not found locally that could not be downloaded.
    """
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    text = str(name_or_path)
    if parse_name(text) is None and (os.sep in text or "/" in text or text.lower().endswith(".npz")):
        raise DataNotFoundError(f"No file at {str(path)!r}; expected a MedMNIST .npz file or a dataset name "
                                f"such as 'breastmnist'.")
    info, size = catalog_entry(text)
    if not info.supported:
        raise InvalidInputError(f"{info.name} is a {info.task} dataset ({len(info.label_names)} findings per image); "
                                f"multi-label datasets are not supported yet.")
    local = find_local(info, size)
    if local is not None:
        return local
    target = settings.cache_dir() / "medmnist" / info.file_name(size)
    if settings.offline() or not download:
        reason = "MEDAI_OFFLINE is set" if settings.offline() else "download=False"
        raise DataNotFoundError(_not_found_message(info, size, f"Not downloaded because {reason}."))
    try:
        _download(info.url(size), target, info.md5[size])
    except DataNotFoundError:
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        raise DataNotFoundError(_not_found_message(info, size, f"Download failed: {error}.")) from None
    return target


def _not_found_message(info: MedMNISTInfo, size: int, reason: str) -> str:
    looked = ", ".join(str(path) for path in local_candidates(info, size))
    return (f"MedMNIST file {info.file_name(size)} was not found locally (looked in: {looked}). {reason} "
            f"Download it from {info.url(size)} (MD5 {info.md5[size]}) and put it at "
            f"{local_candidates(info, size)[-1]} or in your MEDAI_DATA_DIR.")


def _download(url: str, target: Path, md5: str) -> None:
    """Stream ``url`` to a temporary file next to ``target``, check its MD5, then rename it into place."""
    from tqdm.auto import tqdm

    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name, disable=None) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != md5:
            raise DataNotFoundError(f"Downloaded {target.name} from {url} has MD5 {digest.hexdigest()}, expected "
                                    f"{md5}; the file was deleted. Try again, or download it by hand.")
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def load_medmnist(name_or_path: str | os.PathLike, download: bool = True) -> dict:
    """Resolve a MedMNIST name or path and load its splits: ``{"train", "val", "test"} -> Dataset``.

    Examples:
        >>> import os, tempfile
        >>> import numpy as np
        >>> path = os.path.join(tempfile.mkdtemp(), "breastmnist.npz")
        >>> np.savez(path, train_images=np.zeros((4, 28, 28), np.uint8), train_labels=np.array([[0], [1], [0], [1]]))
        >>> splits = load_medmnist(path)
        >>> splits["train"].inputs.shape, splits["train"].schema.label_names
        ((4, 1, 28, 28), ('malignant', 'normal, benign'))
    """
    return load_npz(resolve_medmnist(name_or_path, download=download))


def list_known() -> list[dict]:
    """One dict per catalog dataset: name, description, task, classes, supported, local path (or None), url."""
    rows = []
    for info in MEDMNIST_2D.values():
        local = find_local(info)
        rows.append({
            "name": info.name, "description": info.description, "task": info.task,
            "classes": len(info.label_names), "supported": info.supported,
            "local_path": str(local) if local else None, "url": info.url(), "sizes": list(SIZES),
        })
    return rows


def load_npz(path: str | os.PathLike, name: str | None = None) -> dict[str, Dataset]:
    """Load the splits of a MedMNIST-format ``.npz`` archive.

    Args:
        path: the ``.npz`` file, with keys ``{split}_images`` and ``{split}_labels`` for some of
            ``train``, ``val``, ``test``.
        name: catalog name used for label names; defaults to the file name (``breastmnist_64.npz`` ->
            ``breastmnist``). Files that match no catalog entry get labels ``class_0 .. class_{k-1}``.

    Returns:
        ``{split: Dataset}`` for the splits present (the caller decides which ones it needs). Inputs have shape
        (N, C, H, W), float32 in [0, 1]; ids look like ``"test/000123"``.

    Raises:
        DataNotFoundError: no file at ``path``.
        InvalidInputError: not a readable ``.npz`` archive, no complete split, or bad arrays (length mismatch,
            NaN or multi-label labels, unexpected image shapes).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataNotFoundError(f"No MedMNIST .npz file at {str(path)!r}.")
    arrays = _read_npz(path)
    found = sorted(arrays)
    splits = [split for split in SPLITS if f"{split}_images" in arrays or f"{split}_labels" in arrays]
    for split in splits:
        for key in (f"{split}_images", f"{split}_labels"):
            if key not in arrays:
                raise InvalidInputError(f"{path.name} has {split} data but no {key!r} key; keys found: {found}.")
    if not splits:
        expected = [f"{split}_{kind}" for split in SPLITS for kind in ("images", "labels")]
        raise InvalidInputError(f"{path.name} is not a MedMNIST archive: keys found {found}, expected {expected}.")
    images = {split: _images(arrays[f"{split}_images"], f"{path.name}:{split}_images") for split in splits}
    labels = {split: _labels(arrays[f"{split}_labels"], f"{path.name}:{split}_labels") for split in splits}
    shapes = {images[split].shape[1:] for split in splits}
    if len(shapes) > 1:
        raise InvalidInputError(f"{path.name}: splits have different image shapes {sorted(shapes)}.")
    label_names = _label_names(name or path.stem, max(int(labels[s].max(initial=0)) for s in splits) + 1)
    schema = Schema(modality="image", task_type="binary" if len(label_names) == 2 else "multiclass",
                    label_names=label_names, input_shape=images[splits[0]].shape[1:], source="medmnist-npz")
    result = {}
    for split in splits:
        if len(images[split]) != len(labels[split]):
            raise InvalidInputError(f"{path.name}: {split} has {len(images[split])} images but "
                                    f"{len(labels[split])} labels; expected one label per image.")
        ids = np.array([f"{split}/{index:06d}" for index in range(len(labels[split]))])
        result[split] = Dataset(inputs=images[split], labels=labels[split], ids=ids, schema=schema)
    return result


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of a ``.npz`` archive, read without pickle; unreadable files raise InvalidInputError."""
    unreadable = (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, KeyError)
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise InvalidInputError(f"{path.name} holds a single .npy array; expected a MedMNIST .npz archive.")
        with loaded:
            return {key: loaded[key] for key in loaded.files}
    except InvalidInputError:
        raise
    except unreadable as error:
        raise InvalidInputError(f"{path.name} is not a readable .npz archive (truncated, corrupt or another "
                                f"format: {type(error).__name__}). Download or export it again.") from None


def _images(array: np.ndarray, where: str) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) integer/float images -> float32 (N, C, H, W) in [0, 1]."""
    if array.ndim == 3:
        array = array[:, None]  # (N, 1, H, W)
    elif array.ndim == 4 and array.shape[-1] in (1, 3):
        array = array.transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
    else:
        raise InvalidInputError(f"{where} has shape {array.shape}; expected (N, H, W) or (N, H, W, 3).")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if np.issubdtype(array.dtype, np.floating):
        if array.size and not (np.isfinite(array).all() and array.min() >= 0 and array.max() <= 1):
            raise InvalidInputError(f"{where}: float images must be finite and lie in [0, 1].")
        return array.astype(np.float32)
    raise InvalidInputError(f"{where} has dtype {array.dtype}; expected uint8, uint16 or float in [0, 1].")


def _labels(array: np.ndarray, where: str) -> np.ndarray:
    """(N,) or (N, 1) class ids -> int64 (N,)."""
    if array.ndim == 2 and array.shape[1] > 1:
        raise InvalidInputError(f"{where} has shape {array.shape} (several labels per image); "
                                f"multi-label datasets are not supported yet.")
    if array.ndim not in (1, 2):
        raise InvalidInputError(f"{where} has shape {array.shape}; expected (N,) or (N, 1).")
    array = array.reshape(-1)
    if np.issubdtype(array.dtype, np.floating):
        if np.isnan(array).any():
            raise InvalidInputError(f"{where} contains NaN labels; every image needs a class id.")
        if not np.array_equal(array, np.round(array)):
            raise InvalidInputError(f"{where} contains non-integer labels; expected class ids 0, 1, ...")
    elif not np.issubdtype(array.dtype, np.integer) and array.dtype != bool:
        raise InvalidInputError(f"{where} has dtype {array.dtype}; expected integer class ids.")
    if array.size and array.min() < 0:
        raise InvalidInputError(f"{where} contains negative labels; expected class ids 0, 1, ...")
    return array.astype(np.int64)


def _label_names(name: str, n_classes: int) -> tuple[str, ...]:
    """Catalog label names when ``name`` is a catalog dataset with enough classes, else ``class_0..``."""
    parsed = parse_name(name)
    info = MEDMNIST_2D.get(parsed[0]) if parsed else None
    if info is not None and len(info.label_names) >= n_classes:
        return info.label_names
    return tuple(f"class_{index}" for index in range(max(n_classes, 2)))
