"""Synthetic clinical time series written in the test: PhysioNet 2012 folders and UCR files with a learnable signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np

OUTCOMES_HEADER = "RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death\n"


def record_text(record_id: int, died: int, rng: np.random.Generator, hours: int = 48) -> str:
    """One stay: deaths have a higher, rising heart rate and a lower mean arterial pressure; vitals every ~2 h."""
    lines = ["Time,Parameter,Value", f"00:00,RecordID,{record_id}", f"00:00,Age,{rng.integers(30, 90)}",
             f"00:00,Gender,{rng.integers(0, 2)}", "00:00,Height,-1", f"00:00,ICUType,{rng.integers(1, 5)}",
             f"00:00,Weight,{rng.normal(80, 10):.1f}"]
    level = 95.0 if died else 80.0
    for hour in range(0, hours, 2):
        minute = rng.integers(0, 60)
        drift = (0.4 if died else 0.0) * hour
        lines.append(f"{hour:02d}:{minute:02d},HR,{level + drift + rng.normal(0, 4):.0f}")
        lines.append(f"{hour:02d}:{minute:02d},MAP,{(65 if died else 80) + rng.normal(0, 5):.0f}")
        lines.append(f"{hour:02d}:{minute:02d},RespRate,{18 + 3 * died + rng.normal(0, 2):.0f}")
        if hour % 6 == 0:
            lines.append(f"{hour:02d}:{minute:02d},Temp,{37 + 0.5 * died + rng.normal(0, 0.3):.1f}")
        if hour % 12 == 0:
            lines.append(f"{hour:02d}:{minute:02d},Lactate,{(3.5 if died else 1.2) + abs(rng.normal(0, 0.4)):.1f}")
    return "\n".join(lines) + "\n"


def write_physionet(root: Path, n: int = 60, seed: int = 0, name: str = "x", first_id: int = 100000,
                    death_rate: float = 0.35) -> Path:
    """``root/set-<name>/<id>.txt`` and ``root/Outcomes-<name>.txt``; returns ``root``."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / f"set-{name}"
    folder.mkdir(parents=True, exist_ok=True)
    outcomes = [OUTCOMES_HEADER]
    for i in range(n):
        died = int(i % round(1 / death_rate) == 0)
        record_id = first_id + i
        (folder / f"{record_id}.txt").write_text(record_text(record_id, died, rng))
        outcomes.append(f"{record_id},1,1,5,-1,{died}\n")
    (Path(root) / f"Outcomes-{name}.txt").write_text("".join(outcomes))
    return Path(root)


def write_ucr(path: Path, n: int = 40, length: int = 48, seed: int = 0) -> Path:
    """Two classes: class 1 carries a bump in the first half, class -1 in the second half; UCR line format."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        label = 1 if i % 2 else -1
        signal = rng.normal(0, 0.3, length)
        centre = length // 4 if label == 1 else 3 * length // 4
        signal[centre - 3 : centre + 3] += 2.0
        lines.append(" ".join([f"{label:d}", *(f"{v:.4f}" for v in signal)]))
    path.write_text("\n".join(lines) + "\n")
    return path
