"""Folders of images (PNG, JPEG, BMP, TIFF, DICOM) labelled by sub-folder name or by a CSV file.

Two layouts are understood:

- ``root/<class>/**/<image>``: the label is the name of the first sub-folder;
- ``root/labels.csv`` (or any CSV passed as ``labels_csv``) with columns ``file,label`` (also accepted:
  ``path``/``filename`` and ``class``/``target``), file names relative to ``root``, and an optional
  ``patient_id`` column whose values become keyed pseudonyms in ``Dataset.groups``.

Every file goes through :func:`read_image`, so a single file given to ``predict`` is converted exactly as the
folder loader converted it for training. Multi-frame DICOM files contribute their middle frame.

Examples:
    >>> import numpy as np, tempfile, pathlib
    >>> from PIL import Image
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for label in ("benign", "malignant"):
    ...     (root / label).mkdir()
    ...     for index in range(2):
    ...         Image.fromarray(np.full((8, 8), 60 * index, np.uint8)).save(root / label / f"{index}.png")
    >>> dataset, report = load_image_folder(root)
    >>> dataset.inputs.shape, dataset.schema.label_names, report.n_loaded
    ((4, 1, 8, 8), ('benign', 'malignant'), 4)
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medai.data.dataset import Dataset, Schema
from medai.data.sources import dicom
from medai.errors import DataNotFoundError, InvalidInputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".dicom")
IMAGE_SIGNATURES = (b"\x89PNG", b"\xff\xd8", b"BM", b"II*\x00", b"MM\x00*", b"GIF8")
DEFAULT_SIZE = (128, 128)
FILE_COLUMNS = ("file", "path", "filename")
LABEL_COLUMNS = ("label", "class", "target")


@dataclass
class LoadReport:
    """What a folder load kept and left out.

    Attributes:
        n_loaded: number of images in the Dataset.
        skipped: ``(relative file name, reason)`` for every file left out.
        notes: decisions taken on the caller's behalf (size, channels, ignored files).
    """

    n_loaded: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"n_loaded": self.n_loaded, "n_skipped": len(self.skipped),
                "skipped": [{"file": name, "reason": reason} for name, reason in self.skipped], "notes": self.notes}


def read_image(path: str | os.PathLike, channels: int | None = None,
               image_size: int | tuple[int, int] | None = None) -> np.ndarray:
    """Read one image file as float32 of shape (channels, H, W) in [0, 1].

    Args:
        path: PNG/JPEG/BMP/TIFF file (first frame), or DICOM (``.dcm`` extension or ``DICM`` marker at byte 128;
            windowed as in :func:`medai.data.sources.dicom.read_dicom_pixels`, middle frame of a multi-frame file).
        channels: 1 (grayscale, ITU-R 601 luma) or 3 (RGB); None keeps the file's own (1 for grayscale).
        image_size: int or (height, width) to resize to (bilinear, antialiased); None keeps the file's size.

    Raises:
        DataNotFoundError: no file at ``path``.
        InvalidInputError: not an image, corrupt, DICOM without pixel data, or bad ``channels``/``image_size``.
    """
    size = _check_size(image_size)
    _check_channels(channels)
    native = _read_native(Path(path))
    if channels is None:
        channels = 1 if _is_grayscale(native) else 3
    return _resize(_to_channels(native, channels), size)


def load_image_folder(path: str | os.PathLike, image_size: int | tuple[int, int] | None = None,
                      channels: int | None = None, labels_csv: str | os.PathLike | None = None,
                      ) -> tuple[Dataset, LoadReport]:
    """Load a labelled folder of images into a Dataset of shape (N, channels, H, W).

    Args:
        path: the folder.
        image_size: int or (height, width); default: the common size when all images share one, else 128x128.
        channels: 1 or 3; default 1 when every image is grayscale (or RGB with equal channels), else 3.
        labels_csv: CSV of labels; default ``<path>/labels.csv`` when present, else sub-folder names.

    Returns:
        ``(dataset, report)``: ids are file paths relative to ``path``; label names are sorted (numeric names
        numerically); ``groups`` holds patient pseudonyms when every image has one (CSV ``patient_id`` or DICOM
        PatientID). Unreadable or unlabelled files are listed in ``report.skipped``. When ``image_size`` or
        ``channels`` is left to its default, each file is decoded twice (once to decide, once to convert) so
        that memory holds only the final arrays.

    Raises:
        DataNotFoundError: the folder or the CSV does not exist.
        InvalidInputError: no usable image, fewer than two classes, a CSV without the needed columns.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataNotFoundError(f"No image folder at {str(root)!r}.")
    size, report = _check_size(image_size), LoadReport()
    _check_channels(channels)
    csv_path = Path(labels_csv).expanduser() if labels_csv is not None else root / "labels.csv"
    if labels_csv is not None and not csv_path.is_file():
        raise DataNotFoundError(f"No labels CSV at {str(csv_path)!r}.")
    if csv_path.is_file():
        entries = _entries_from_csv(root, csv_path, report)
    else:
        entries = _entries_from_folders(root, report)
    natives, kept = {}, []
    for relative, label, group in entries:
        try:
            natives[relative] = _probe(root / relative) if size is None or channels is None else None
            kept.append((relative, label, group))
        except (InvalidInputError, DataNotFoundError) as error:
            report.skipped.append((relative, str(error)))
    if not kept:
        raise InvalidInputError(f"No readable, labelled image in {str(root)!r}; see the skipped files: "
                                f"{report.skipped[:5]}.")
    if size is None:
        sizes = {natives[relative][0] for relative, _, _ in kept}
        size = next(iter(sizes)) if len(sizes) == 1 else DEFAULT_SIZE
        report.notes.append(f"image size {size[0]}x{size[1]}" + (" (images differ in size)" if len(sizes) > 1 else ""))
    if channels is None:
        channels = 1 if all(natives[relative][1] for relative, _, _ in kept) else 3
        report.notes.append(f"{channels} channel(s) ({'grayscale' if channels == 1 else 'RGB'})")
    return _build(root, kept, size, channels, report), report


def _build(root: Path, kept: list, size: tuple[int, int], channels: int, report: LoadReport) -> Dataset:
    inputs, labels, ids, groups = [], [], [], []
    for relative, label, group in kept:
        try:
            inputs.append(read_image(root / relative, channels, size))  # (channels, H, W)
            if group is None and dicom.is_dicom_file(root / relative):
                group = dicom.patient_group(dicom.read_dicom(root / relative, stop_before_pixels=True))
        except (InvalidInputError, DataNotFoundError) as error:
            report.skipped.append((relative, str(error)))
            continue
        labels.append(label)
        ids.append(relative)
        groups.append(group)
    label_names = sorted(set(labels), key=_label_order)
    if len(label_names) < 2:
        raise InvalidInputError(f"Found {len(label_names)} class(es) {label_names} in {str(root)!r}; "
                                f"classification needs at least 2.")
    if any(group is None for group in groups) and any(group is not None for group in groups):
        report.notes.append("patient groups left unset: some images have no patient id")
    report.n_loaded = len(inputs)
    schema = Schema(modality="image", task_type="binary" if len(label_names) == 2 else "multiclass",
                    label_names=label_names, input_shape=(channels, *size), source="image-folder")
    return Dataset(inputs=np.stack(inputs), labels=np.array([label_names.index(x) for x in labels]),
                   ids=np.array(ids), schema=schema,
                   groups=np.array(groups) if all(group is not None for group in groups) else None)


def _entries_from_folders(root: Path, report: LoadReport) -> list[tuple[str, str, str | None]]:
    """``(relative path, label, group)`` for images under ``root/<class>/``."""
    class_folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_folders:
        raise InvalidInputError(f"{str(root)!r} has no class sub-folders and no labels.csv; expected "
                                f"root/<class>/<image> or a labels.csv with columns file,label.")
    for loose in _image_files(root, recursive=False, report=report):
        report.skipped.append((loose, "not inside a class folder"))
    entries = []
    for folder in class_folders:
        files = _image_files(folder, recursive=True, report=report, base=root)
        if not files:
            report.notes.append(f"class folder '{folder.name}' has no images; ignored")
        entries += [(relative, folder.name, None) for relative in files]
    return entries


def _entries_from_csv(root: Path, csv_path: Path, report: LoadReport) -> list[tuple[str, str, str | None]]:
    """``(relative path, label, group)`` for every CSV row whose file exists; other rows and files reported."""
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = {name.strip().lower(): name for name in reader.fieldnames or []}
        file_column = next((columns[c] for c in FILE_COLUMNS if c in columns), None)
        label_column = next((columns[c] for c in LABEL_COLUMNS if c in columns), None)
        if file_column is None or label_column is None:
            raise InvalidInputError(f"{csv_path.name} has columns {list(columns)}; expected a file column "
                                    f"({'/'.join(FILE_COLUMNS)}) and a label column ({'/'.join(LABEL_COLUMNS)}).")
        patient_column = columns.get("patient_id")
        rows = list(reader)
    entries, listed = [], set()
    for row in rows:
        relative = Path((row.get(file_column) or "").strip()).as_posix()
        label = (row.get(label_column) or "").strip()
        if relative in listed:
            report.skipped.append((relative, f"listed twice in {csv_path.name}; first row kept"))
            continue
        listed.add(relative)
        target = (root / relative).resolve()
        if Path(relative).is_absolute() or not target.is_relative_to(root.resolve()):
            report.skipped.append((relative, f"path in {csv_path.name} is outside the folder"))
        elif not target.is_file():
            report.skipped.append((relative, f"listed in {csv_path.name} but not found"))
        elif not label:
            report.skipped.append((relative, f"no label in {csv_path.name}"))
        else:
            patient = (row.get(patient_column) or "").strip() if patient_column else ""
            entries.append((relative, label, dicom.pseudonymize(patient) if patient else None))
    for relative in _image_files(root, recursive=True, report=None):
        if relative not in listed:
            report.skipped.append((relative, f"no label in {csv_path.name}"))
    return entries


def _image_files(folder: Path, recursive: bool, report: LoadReport | None, base: Path | None = None) -> list[str]:
    """Sorted image paths under ``folder`` relative to ``base``; extension-less DICOM files included."""
    base = base or folder
    found, ignored = [], []
    for file in sorted(folder.rglob("*") if recursive else folder.iterdir()):
        if not file.is_file() or any(part.startswith(".") for part in file.relative_to(folder).parts):
            continue
        if file.suffix.lower() in IMAGE_EXTENSIONS or (not file.suffix and dicom.is_dicom_file(file)):
            found.append(file.relative_to(base).as_posix())
        elif file.suffix.lower() != ".csv":
            ignored.append(file.relative_to(base).as_posix())
    if ignored and report is not None:
        report.notes.append(f"ignored {len(ignored)} file(s) that are not images by extension, e.g. {ignored[0]}")
    return found


def _probe(path: Path) -> tuple[tuple[int, int], bool]:
    """Decode once to learn ``((H, W), grayscale-like)`` and to reject unreadable files early."""
    native = _read_native(path)
    return native.shape[:2], _is_grayscale(native)


def _read_native(path: Path) -> np.ndarray:
    """Decode a file to float32 [0, 1] of shape (H, W) or (H, W, 3), before any channel or size change."""
    if not path.is_file():
        raise DataNotFoundError(f"No image file at {str(path)!r}.")
    if dicom.is_dicom_file(path):
        return dicom.middle_frame(dicom.read_dicom_pixels(path))  # (H, W) or (H, W, 3)
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            return _pil_to_array(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        known = isinstance(error, UnidentifiedImageError) and not _has_image_signature(path)
        problem = "not an image" if known else "corrupt or truncated image"
        raise InvalidInputError(f"'{path.name}': {problem} ({type(error).__name__}).") from None


def _has_image_signature(path: Path) -> bool:
    """True when the file starts like a PNG, JPEG, BMP, TIFF or GIF (so a decode failure means corruption)."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    return head.startswith(IMAGE_SIGNATURES)


def _pil_to_array(image) -> np.ndarray:
    """A PIL image -> float32 [0, 1], (H, W) for grayscale modes, (H, W, 3) otherwise."""
    mode = image.mode
    if mode.startswith("I;16"):
        return np.asarray(image, dtype=np.float32) / 65535.0  # 16-bit PNG/TIFF: full 16-bit range
    if mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if mode == "I" and values.min() >= 0 and values.max() <= 65535:
            return (values / 65535.0).astype(np.float32)  # 16-bit PNGs open as mode "I" in some Pillow versions
        if mode == "F" and values.min() >= 0 and values.max() <= 1:
            return values.astype(np.float32)
        low, high = values.min(), values.max()
        return ((values - low) / (high - low) if high > low else np.zeros_like(values)).astype(np.float32)
    if mode in ("1", "L", "LA", "La"):
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def _is_grayscale(native: np.ndarray) -> bool:
    """True for (H, W) pixels or (H, W, 3) pixels whose three channels are equal."""
    return native.ndim == 2 or bool(np.allclose(native[..., 0], native[..., 1], atol=1e-6)
                                    and np.allclose(native[..., 0], native[..., 2], atol=1e-6))


def _to_channels(native: np.ndarray, channels: int) -> np.ndarray:
    """(H, W) or (H, W, 3) -> (channels, H, W); RGB -> gray uses ITU-R 601 luma, as PIL's "L" mode does."""
    if native.ndim == 2:
        return np.repeat(native[None], channels, axis=0)  # (channels, H, W)
    if channels == 3:
        return np.ascontiguousarray(native.transpose(2, 0, 1))  # (3, H, W)
    return (native @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[None]  # (1, H, W)


def _resize(planes: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """(C, H, W) -> (C, *size) with PIL's bilinear, antialiased resize of each float plane."""
    if size is None or planes.shape[1:] == tuple(size):
        return planes.astype(np.float32)
    from PIL import Image

    height, width = size
    resized = [np.asarray(Image.fromarray(plane).resize((width, height), Image.Resampling.BILINEAR))
               for plane in planes.astype(np.float32)]
    return np.clip(np.stack(resized), 0.0, 1.0).astype(np.float32)  # (C, height, width)


def _check_size(image_size) -> tuple[int, int] | None:
    if image_size is None:
        return None
    size = (image_size, image_size) if isinstance(image_size, (int, np.integer)) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0
                                 for n in size):
        raise InvalidInputError(f"The 'image_size' parameter must be a positive int or (height, width); "
                                f"got {image_size!r}.")
    return int(size[0]), int(size[1])


def _check_channels(channels) -> None:
    if channels not in (None, 1, 3):
        raise InvalidInputError(f"The 'channels' parameter must be 1 (grayscale) or 3 (RGB); got {channels!r}.")


def _label_order(name: str) -> tuple:
    """Sort key: numeric label names numerically and first, others alphabetically."""
    try:
        return (0, float(name), name)
    except ValueError:
        return (1, name.lower(), name)

