"""Benchmark: MIMIC-III EHR ingestion (and drug-recommendation training) on synthetic cohorts of growing size.

Synthetic cohorts of 1,000 / 10,000 / 100,000 patients are drawn from the code statistics of the MIMIC-III demo
(:func:`medai.ehr.synthetic.generate_cohort`) and written as the MIMIC-III CSVs (about 80 PRESCRIPTIONS rows per
admission, 13% of them unmapped IV solutions, like the demo; 100,000 patients is about twice full MIMIC-III). Each
measurement runs in a fresh subprocess so that peak memories do not mix: ``load_cohort`` (with de-identification),
then ``medai.api.train("drug-recommendation", ...)`` for ``--epochs`` epochs. Peak memory is the subprocess's
VmHWM (``ru_maxrss`` would include the parent's memory at fork time); ``baseline_rss_mb`` is the same process after its imports, before any work.

Floors (issue 6, the data half): ingestion + training time grows no worse than linearly from the smallest to the
largest size (time per patient at the largest size <= 1.1 x the smallest), and peak memory at 100,000 patients
< 4 GB.

    python bench/ehr_scale.py                                    # writes bench/results/2026-11-29-ehr_scale.json
    python bench/ehr_scale.py --sizes 1000 10000 --no-train --out /tmp/ehr.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOORS = {"time_per_patient_ratio_max": 1.1, "peak_rss_mb_at_100k_max": 4096}
ROOT = Path(__file__).resolve().parent.parent


def child(mode: str, folder: str, out: str, epochs: int) -> dict:
    """Run one measurement in this (fresh) process; returns seconds and peak memory."""
    import medai.api
    from medai.ehr.mimic import load_cohort

    baseline = peak_rss_mb()
    started = time.perf_counter()
    result: dict = {}
    if mode == "ingest":
        cohort = load_cohort(folder, key="b" * 32)
        result.update(patients=len(cohort.patients), visits=cohort.n_visits,
                      prescription_rows=cohort.report["prescriptions"]["rows"],
                      coverage_rows_pct=cohort.report["prescriptions"]["coverage"]["routes"]["i+ii"]["rows_pct"])
    else:
        os.environ.setdefault("MEDAI_DEID_KEY", "b" * 32)
        bundle = medai.api.train("drug-recommendation", folder, out, epochs=epochs, batch_size=64, progress=False,
                                 num_threads=1)
        result.update(fit_seconds=round(bundle.metrics["fit"]["wall_seconds"], 2),
                      test_jaccard=bundle.metrics.get("test", {}).get("jaccard"))
    result["seconds"] = round(time.perf_counter() - started, 2)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    result["baseline_rss_mb"] = round(baseline, 1)
    return result


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM (Linux; reset by exec, unlike ``ru_maxrss``, which a child
    started by a large parent inherits), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as handle:
            return next(int(line.split()[1]) for line in handle if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(mode: str, folder: Path, epochs: int, timeout: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="medai-bench-") as out:
        command = [sys.executable, __file__, "--child", mode, str(folder), str(Path(out) / "bundle"), str(epochs)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "POLARS_MAX_THREADS": os.environ.get("POLARS_MAX_THREADS", "2")}
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout} s"}
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def stage(reference, mapper, size: int, folder: Path) -> dict:
    from medai.ehr.synthetic import generate_cohort, write_mimic_tables

    started = time.perf_counter()
    cohort = generate_cohort(reference, n_patients=size, seed=size)
    generated = time.perf_counter()
    written = write_mimic_tables(cohort, folder, mapper=mapper, seed=size)
    return {"generate_seconds": round(generated - started, 2),
            "write_seconds": round(time.perf_counter() - generated, 2),
            "csv_mb": round(sum(p.stat().st_size for p in written.values()) / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--epochs", type=int, default=1, help="training epochs per size (default 1)")
    parser.add_argument("--no-train", action="store_true", help="measure ingestion only")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per measurement")
    parser.add_argument("--demo", default=None, help="MIMIC-III demo folder (default <data_dir>/mimic3_demo)")
    parser.add_argument("--out", default=str(ROOT / "bench/results/2026-11-29-ehr_scale.json"))
    args = parser.parse_args()

    from medai.ehr.drugcodes import DrugMapper
    from medai.ehr.mimic import load_cohort
    from medai.settings import data_dir

    demo = Path(args.demo) if args.demo else data_dir() / "mimic3_demo"
    mapper = DrugMapper()
    started = time.perf_counter()
    reference = load_cohort(demo, key="b" * 32, mapper=mapper)
    demo_figures = {"seconds_in_process": round(time.perf_counter() - started, 2),
                    "patients": len(reference.patients), "visits": reference.n_visits,
                    "patients_with_2_or_more_visits": reference.report["patients"]["with_2_or_more_visits"],
                    "coverage": {route: {k: v[k] for k in ("rows", "drugs", "rows_pct", "drugs_pct")} for route, v in
                                 reference.report["prescriptions"]["coverage"]["routes"].items()}}
    demo_figures["ingest_subprocess"] = measure("ingest", demo, args.epochs, args.timeout)
    print(json.dumps({"demo": demo_figures}), file=sys.stderr, flush=True)
    rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="medai-ehr-scale-") as folder:
            row = {"patients": size, **stage(reference, mapper, size, Path(folder))}
            row["ingest"] = measure("ingest", Path(folder), args.epochs, args.timeout)
            if not args.no_train:
                row["train"] = measure("train", Path(folder), args.epochs, args.timeout)
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    result = {"benchmark": "ehr_scale", "date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} CPUs",
              "epochs": None if args.no_train else args.epochs, "demo": demo_figures, "sizes": rows,
              "floors": FLOORS, "checks": checks(rows, not args.no_train)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


def checks(rows: list[dict], trained: bool) -> dict:
    """Time per patient at the largest size over the smallest (ingestion + training), and peak memory."""

    def seconds(row):  # the training run loads the folder itself: its time is ingestion + training
        return (row.get("train") if trained else row["ingest"]).get("seconds")

    result = {}
    first, last = rows[0], rows[-1]
    if len(rows) > 1 and seconds(first) and seconds(last):
        ratio = (seconds(last) / last["patients"]) / (seconds(first) / first["patients"])
        result["time_per_patient_ratio"] = round(ratio, 3)
        result["linear_ok"] = ratio <= FLOORS["time_per_patient_ratio_max"]
        ingest = [row["ingest"].get("seconds") for row in (first, last)]
        if None not in ingest:
            result["ingest_time_per_patient_ratio"] = round(
                (ingest[1] / last["patients"]) / (ingest[0] / first["patients"]), 3)
        before = rows[-2]  # fixed costs (imports, mapping tables) flatter the smallest size: also the last step
        if seconds(before):
            slope = math.log(seconds(last) / seconds(before)) / math.log(last["patients"] / before["patients"])
            result["log_log_slope_last_step"] = round(slope, 3)
    for row in rows:
        if row["patients"] == 100_000:
            peaks = [row[m].get("peak_rss_mb") for m in ("ingest", "train") if m in row]
            if None not in peaks:
                result["peak_rss_mb_at_100k"] = max(peaks)
                result["memory_ok"] = max(peaks) < FLOORS["peak_rss_mb_at_100k_max"]
    return result


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))))
    else:
        main()
