"""DICOM images: display-ready pixels in [0, 1] and keyed patient pseudonyms.

pydicom is imported lazily (``pip install 'medai[imaging]'``). Only pixels and a keyed pseudonym of PatientID leave
this module: no name, birth date, identifier, address, date or institution is copied into medai objects, and error
messages name the file, never a value read from it.

Examples:
    >>> from pydicom.data import get_testdata_file
    >>> pixels = read_dicom_pixels(get_testdata_file("CT_small.dcm"))
    >>> pixels.shape, str(pixels.dtype), float(pixels.min()) >= 0.0, float(pixels.max()) <= 1.0
    ((1, 128, 128), 'float32', True, True)
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

import numpy as np

from medai import settings
from medai.errors import DataNotFoundError, InvalidInputError, require

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
KEY_ENVIRONMENT_VARIABLE = "MEDAI_PSEUDONYM_KEY"


def is_dicom_file(path: str | os.PathLike) -> bool:
    """True for a ``.dcm``/``.dicom`` file name or a file with the ``DICM`` marker at byte 128."""
    path = Path(path)
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def read_dicom(path: str | os.PathLike, stop_before_pixels: bool = False):
    """Read a DICOM file into a pydicom Dataset (header only when ``stop_before_pixels``).

    Files without the 128-byte preamble are accepted when they parse and describe an image (have Rows).

    Raises:
        DataNotFoundError: no file at ``path``.
        InvalidInputError: not a DICOM file, or unreadable.
    """
    pydicom = require("pydicom", "imaging")
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"No DICOM file at {str(path)!r}.")
    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except pydicom.errors.InvalidDicomError:
        pass  # no preamble: try once more without the marker check below
    except (OSError, ValueError, EOFError, KeyError, TypeError) as error:
        raise InvalidInputError(f"'{path.name}' is not a readable DICOM file ({type(error).__name__}).") from None
    try:
        dataset = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, force=True)
        if "Rows" in dataset and "SOPClassUID" in dataset:
            return dataset
    except Exception:
        pass
    raise InvalidInputError(f"'{path.name}' is not a DICOM file (no 'DICM' marker at byte 128).")


def read_dicom_pixels(path: str | os.PathLike) -> np.ndarray:
    """Decode a DICOM image to display-ready float32 pixels in [0, 1].

    Grayscale images get the Modality LUT (or RescaleSlope/RescaleIntercept), then VOI windowing from the first
    WindowCenter/WindowWidth pair when present, else min-max scaling between the 0.5th and 99.5th percentiles of
    all frames; MONOCHROME1 images are inverted so that bright means dense. Colour images (RGB, YBR converted to
    RGB, palette colour) are scaled by their bit depth.

    Returns:
        Array of shape (frames, H, W) for grayscale or (frames, H, W, 3) for colour; a single-frame file has
        frames = 1.

    Raises:
        DataNotFoundError: no file at ``path``.
        InvalidInputError: not a DICOM file, no pixel data, or pixel data that cannot be decoded.
    """
    return dataset_pixels(read_dicom(path), Path(path).name)


def dataset_pixels(dataset, name: str = "DICOM dataset") -> np.ndarray:
    """:func:`read_dicom_pixels` for a pydicom Dataset already in memory; ``name`` is used in messages."""
    pixels_module = require("pydicom.pixels", "imaging")
    if not any(keyword in dataset for keyword in PIXEL_KEYWORDS):
        raise InvalidInputError(f"'{name}' has no pixel data (no (7FE0,0010) element); expected an image DICOM.")
    try:
        array = dataset.pixel_array
    except Exception as error:
        syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
        raise InvalidInputError(
            f"'{name}': pixel data could not be decoded ({type(error).__name__}; transfer syntax "
            f"{getattr(syntax, 'name', syntax)}). Compressed DICOM may need pylibjpeg or gdcm installed."
        ) from None
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    samples = int(dataset.get("SamplesPerPixel", 1) or 1)
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if frames == 1:
        array = array[None]  # (1, H, W) or (1, H, W, 3)
    if photometric == "PALETTE COLOR":
        array = pixels_module.apply_color_lut(array, dataset)
        return _scale_by_dtype(array)
    if samples == 3:
        return _scale_by_dtype(array, bits=int(dataset.get("BitsStored", 8)))
    values = np.asarray(pixels_module.apply_modality_lut(array, dataset), dtype=np.float64)
    scaled = _window(values, dataset)
    if photometric == "MONOCHROME1":
        scaled = 1.0 - scaled
    return scaled.astype(np.float32)


def _scale_by_dtype(array: np.ndarray, bits: int | None = None) -> np.ndarray:
    """Colour pixels -> float32 [0, 1], dividing by the largest value ``bits`` (or the dtype) can hold."""
    if np.issubdtype(array.dtype, np.floating):
        return np.clip(array, 0.0, 1.0).astype(np.float32)
    bits = bits or np.iinfo(array.dtype).bits
    return np.clip(array.astype(np.float32) / float(2**bits - 1), 0.0, 1.0)


def _first(value) -> float | None:
    """First value of a possibly multi-valued DICOM number (WindowCenter "40\\400" -> 40.0), or None."""
    try:
        return float(value if isinstance(value, (int, float)) else value[0])
    except (TypeError, ValueError, IndexError):
        return None


def _window(values: np.ndarray, dataset) -> np.ndarray:
    """Rescaled grayscale values -> [0, 1] by the DICOM VOI window, or by robust min-max scaling."""
    center, width = _first(dataset.get("WindowCenter")), _first(dataset.get("WindowWidth"))
    if center is not None and width is not None and width >= 1:
        if str(dataset.get("VOILUTFunction", "LINEAR")).upper() == "SIGMOID":
            return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
        # DICOM PS3.3 C.11.2.1.2.1 linear window, mapped to [0, 1]
        return np.clip((values - (center - 0.5)) / (width - 1.0 if width > 1 else 1.0) + 0.5, 0.0, 1.0)
    low, high = np.percentile(values, [0.5, 99.5])
    if high <= low:
        return np.zeros_like(values)
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def middle_frame(pixels: np.ndarray) -> np.ndarray:
    """The middle frame of (frames, H, W[, 3]) pixels: the one image readers use for multi-frame files."""
    return pixels[len(pixels) // 2]


def patient_group(dataset) -> str | None:
    """Keyed pseudonym of a pydicom Dataset's PatientID, or None when the tag is absent or empty.

    Used as the group for patient-level splits. The same PatientID gives the same pseudonym under the same key
    (``MEDAI_DEID_KEY``, else ``MEDAI_PSEUDONYM_KEY``, else a random per-install key in ``<cache_dir>/pseudonym.key``).
    """
    patient_id = str(dataset.get("PatientID", "") or "").strip()
    return pseudonymize(patient_id) if patient_id else None


def pseudonymize(identifier: str) -> str:
    """``"p-"`` + the first 16 hex digits of HMAC-SHA256(key, identifier); the identifier cannot be read back."""
    digest = hmac.new(_pseudonym_key(), identifier.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"p-{digest[:16]}"


def _pseudonym_key() -> bytes:
    """The de-identification key (``MEDAI_DEID_KEY`` / ``MEDAI_DEID_KEY_FILE``, shared with ``medai deid``), else
    ``MEDAI_PSEUDONYM_KEY``, else the per-install key file (created once, mode 0600)."""
    from medai.privacy import pseudonym

    if os.environ.get(pseudonym.KEY_ENV) or os.environ.get(pseudonym.KEY_FILE_ENV):
        return pseudonym.load_key()
    configured = os.environ.get(KEY_ENVIRONMENT_VARIABLE)
    if configured:
        return configured.encode("utf-8")
    key_path = settings.cache_dir() / "pseudonym.key"
    if key_path.is_file():
        key = key_path.read_bytes()
        if len(key) >= 16:
            return key
    key_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = key_path.with_name(f".pseudonym.key.{secrets.token_hex(8)}")
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(handle, "wb") as out:
        out.write(secrets.token_bytes(32))
    try:
        os.link(temporary, key_path)  # atomic and never overwrites: a concurrent creator's key wins
    except FileExistsError:
        pass
    finally:
        os.remove(temporary)
    key = key_path.read_bytes()
    if len(key) < 16:
        raise InvalidInputError(f"The pseudonym key file {key_path} is shorter than 16 bytes; delete it to make a "
                                f"new one, or set {KEY_ENVIRONMENT_VARIABLE}.")
    return key
