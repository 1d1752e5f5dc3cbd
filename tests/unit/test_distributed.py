"""The Trainer runs unchanged under torchrun with DistributedDataParallel (2 processes, gloo on CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import write_npz


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(tmp_path):
    data = write_npz(tmp_path / "tiny.npz")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MEDAI_OFFLINE": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "medai", "train", "--task", "image-classification", "--data", str(data), "--out", str(tmp_path / "ddp"),
        "--epochs", "2", "--batch-size", "16", "--ensemble", "1", "--device", "cpu", "--quiet", "--json",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout[done.stdout.index("{") :])
    assert summary["bundle"].endswith("ddp")
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    # each rank trained on half of the 48 training images per epoch
    assert metrics["fit"]["train_samples"] == 2 * 24
    assert (tmp_path / "ddp" / "model.safetensors").is_file()
