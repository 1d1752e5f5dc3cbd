"""Benchmark: clinical time-series loading (PhysioNet 2012 parse and cache, MIMIC-III CHARTEVENTS streaming).

Prints one JSON document with the floors of the "Clinical time series with RNNs" issue:

- PhysioNet 2012 set A (4,000 records) parsed cold (no cache) beside a plain one-file-at-a-time parser with the
  same hourly binning, measured in the same run; floor: cold < 6 s; and loaded from the cache: floor < 1 s;
- the MIMIC-III demo's CHARTEVENTS (758,355 rows) to hourly series, floor < 10 s, with its peak memory, and the
  same on a synthetic CHARTEVENTS ``--scale`` times larger (the demo rows repeated), to show that memory stays
  flat. Each MIMIC run is a fresh subprocess so that peaks do not mix; ``baseline_rss_mb`` is the process after
  importing medai (torch included), before loading.

    python bench/timeseries_parse.py                       # about a minute
    python bench/timeseries_parse.py --scale 10 --skip-physionet
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

FLOORS = {"physionet_cold_s": 6.0, "physionet_cached_s": 1.0, "mimic_chartevents_s": 10.0}
MIMIC_TABLES = ("ICUSTAYS.csv", "ADMISSIONS.csv", "PATIENTS.csv")


def plain_parse(folder: Path, hours: int = 48) -> np.ndarray:
    """The baseline: one file at a time, line by line, mean per hourly bin (no validation)."""
    from medai.data.sources.physionet2012 import VARIABLES

    index = {name: j for j, name in enumerate(VARIABLES)}
    files = sorted(p for p in folder.glob("*.txt"))
    out = np.full((len(files), hours, len(VARIABLES)), np.nan, dtype=np.float32)
    for r, path in enumerate(files):
        sums, counts = {}, {}
        with open(path) as handle:
            next(handle)
            for line in handle:
                clock, name, value = line.rstrip("\n").split(",")
                j = index.get(name)
                if j is None:
                    continue
                hour, minute = clock.split(":")
                key = (min((int(hour) * 60 + int(minute)) // 60, hours - 1), j)
                sums[key] = sums.get(key, 0.0) + float(value)
                counts[key] = counts.get(key, 0) + 1
        for (b, j), total in sums.items():
            out[r, b, j] = total / counts[b, j]
    return out


def timed(function, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, round(time.perf_counter() - wall, 3), round(time.process_time() - cpu, 3)


def physionet(folder: Path) -> dict:
    from medai.data.sources.physionet2012 import load_records

    _, plain_s, plain_cpu = timed(plain_parse, folder)
    series, cold_s, cold_cpu = timed(load_records, folder, cache=False)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["MEDAI_CACHE_DIR"] = cache
        load_records(folder)  # writes the cache
        cached, cached_s, _ = timed(load_records, folder)
    return {"records": len(series), "lines": series.report["lines_read"], "deaths": int(series.labels.sum()),
            "plain_parser_s": plain_s, "plain_parser_cpu_s": plain_cpu, "cold_s": cold_s, "cold_cpu_s": cold_cpu,
            "speedup_vs_plain": round(plain_s / cold_s, 1), "cached_s": cached_s,
            "cache_hit": bool(cached.report.get("from_cache")),
            "checks": {"cold_under_6s": cold_s < FLOORS["physionet_cold_s"],
                       "cached_under_1s": cached_s < FLOORS["physionet_cached_s"]}}


def worker(folder: str) -> None:
    """Run in a subprocess: load one MIMIC folder, print seconds and peak memory as JSON.

    Peaks come from /proc/self/status (VmHWM, and RssAnon sampled every 5 ms): Linux carries ru_maxrss over
    from the parent across exec, so it would report the parent's peak.
    """
    from medai.data.sources import mimic3

    peak = {"RssAnon": 0}
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak["RssAnon"] = max(peak["RssAnon"], status_mb("RssAnon"))
            time.sleep(0.005)

    baseline = status_mb("VmHWM")
    threading.Thread(target=sample, daemon=True).start()
    series, seconds, cpu = timed(mimic3.load_stays, folder)
    done.set()
    print(json.dumps({"seconds": seconds, "cpu_s": cpu, "stays": len(series),
                      "chartevents_rows_used": series.report["events_used"].get("chartevents"),
                      "peak_rss_mb": status_mb("VmHWM"), "peak_anonymous_mb": peak["RssAnon"],
                      "baseline_rss_mb": baseline, "values_checksum": float(np.nansum(series.values))}))


def status_mb(key: str) -> int:
    """A memory figure of this process from /proc/self/status, in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) // 1024
    return 0


def chartevents_folder(source: Path, target: Path, scale: int) -> Path:
    """A folder with the stay tables and a CHARTEVENTS.csv.gz holding the demo's rows ``scale`` times."""
    target.mkdir(parents=True)
    for name in MIMIC_TABLES:
        os.symlink(source / name, target / name)
    chart = next(source.glob("CHARTEVENTS*.csv*"))
    if scale == 1:
        os.symlink(chart, target / chart.name)
        return target
    with gzip.open(chart, "rb") as handle:
        header, body = handle.readline(), handle.read()
    with gzip.open(target / "CHARTEVENTS.csv.gz", "wb", compresslevel=1) as out:
        out.write(header)
        for _ in range(scale):
            out.write(body)
    return target


def mimic(source: Path, scale: int) -> dict:
    results = {}
    with tempfile.TemporaryDirectory() as temporary:
        for label, factor in (("demo", 1), (f"synthetic_x{scale}", scale)):
            folder = chartevents_folder(source, Path(temporary) / label, factor)
            size = sum(p.stat().st_size for p in folder.glob("CHARTEVENTS*"))
            run = subprocess.run([sys.executable, __file__, "--worker", str(folder)], capture_output=True, text=True,
                                 check=True)
            results[label] = {"chartevents_rows": 758_355 * factor, "chartevents_gz_mb": round(size / 2**20, 1),
                              **json.loads(run.stdout.strip().splitlines()[-1])}
            print(json.dumps({"progress": label, **results[label]}), file=sys.stderr, flush=True)
    demo, large = results["demo"], results[f"synthetic_x{scale}"]
    results["checks"] = {
        "demo_under_10s": demo["seconds"] < FLOORS["mimic_chartevents_s"],
        "same_values_on_repeated_rows": demo["values_checksum"] == large["values_checksum"],
        "memory_flat_within_25pct": large["peak_rss_mb"] <= 1.25 * demo["peak_rss_mb"],
        "loader_memory_growth_mb": large["peak_rss_mb"] - demo["peak_rss_mb"]}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=None, help="data folder (default: medai.settings.data_dir())")
    parser.add_argument("--scale", type=int, default=6, help="size of the synthetic CHARTEVENTS, in demo tables")
    parser.add_argument("--skip-physionet", action="store_true")
    parser.add_argument("--skip-mimic", action="store_true")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    from medai import settings

    data = Path(args.data) if args.data else settings.data_dir()
    report = {"benchmark": "timeseries-parse", "cpus": os.cpu_count(), "load_average": os.getloadavg(),
              "floors": FLOORS}
    if not args.skip_physionet:
        report["physionet2012_set_a"] = physionet(data / "physionet2012_mortality" / "set-a")
    if not args.skip_mimic:
        report["mimic3_chartevents"] = mimic(data / "mimic3_demo", args.scale)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
