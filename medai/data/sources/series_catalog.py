"""The clinical time-series and ECG datasets medai reads, and where it finds them (for ``medai datasets``)."""

from __future__ import annotations

from medai import settings

SERIES_DATASETS = (
    {"name": "physionet2012", "folder": "physionet2012_mortality", "tasks": ["mortality", "forecasting"],
     "description": "PhysioNet/CinC Challenge 2012 ICU stays (set-a: 4,000 records, in-hospital death outcomes)",
     "url": "https://physionet.org/content/challenge-2012/1.0.0/"},
    {"name": "mimic3_demo", "folder": "mimic3_demo", "tasks": ["mortality", "forecasting"],
     "description": "MIMIC-III Clinical Database Demo (100 patients; the full database uses the same loader)",
     "url": "https://physionet.org/content/mimiciii-demo/1.4/"},
    {"name": "ucr_ecg200", "folder": "ucr_ecg/ECG200_TRAIN.txt", "tasks": ["ecg-classification"],
     "description": "UCR ECG200 (normal vs myocardial infarction beats; ECG200_TRAIN.txt / ECG200_TEST.txt)",
     "url": "https://www.timeseriesclassification.com/description.php?Dataset=ECG200"},
    {"name": "ucr_ecg5000", "folder": "ucr_ecg/ECG5000_TRAIN.txt", "tasks": ["ecg-classification"],
     "description": "UCR ECG5000 (5 heartbeat classes)",
     "url": "https://www.timeseriesclassification.com/description.php?Dataset=ECG5000"},
    {"name": "wfdb_mitdb_100", "folder": "ecg_wfdb_physionet_samples/100", "tasks": ["ecg-classification"],
     "description": "MIT-BIH Arrhythmia record 100 (WFDB, annotated beats)",
     "url": "https://physionet.org/content/mitdb/1.0.0/"},
)


def list_series() -> list[dict]:
    """One dict per dataset: name, description, tasks, local path (None when absent under MEDAI_DATA_DIR), url."""
    root = settings.data_dir()
    rows = []
    for entry in SERIES_DATASETS:
        local = None if root is None else root / entry["folder"]
        found = local is not None and (local.exists() or local.with_suffix(".hea").exists())
        rows.append({"name": entry["name"], "description": entry["description"], "tasks": entry["tasks"],
                     "local_path": str(local) if found else None, "url": entry["url"]})
    return rows
