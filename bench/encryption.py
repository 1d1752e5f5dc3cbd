"""Benchmark: encryption at rest (AES-256-GCM in 1 MiB authenticated chunks, :mod:`medai.privacy.crypto`).

Prints one JSON document:

- encrypt and decrypt throughput (MB/s, 1 MB = 10^6 bytes) of ``encrypt_file`` / ``decrypt_file`` on a random file
  of ``--megabytes`` (default 100), best of ``--repeats``, with the round trip checked bit for bit (SHA-256); the
  file functions include the disk and an fsync, so ``in_memory_*`` gives the same on bytes held in memory, per
  second of wall time and per second of this process's CPU time (which other jobs on the machine do not inflate);
- tamper detection: ``--flips`` single-byte flips at random positions of a multi-chunk ciphertext (header, tags and
  ciphertext alike), and every position of a small one; each must raise. Floors (issue 7): bit-identical round trip,
  every flip detected.

    python bench/encryption.py --out bench/results/2026-11-29-encryption.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import tempfile
import time
from pathlib import Path

from medai.engine.state_io import sha256_file
from medai.errors import MedaiError
from medai.privacy.crypto import DEFAULT_CHUNK_BYTES, decrypt_bytes, decrypt_file, encrypt_bytes, encrypt_file


def throughput(megabytes: int, repeats: int, key: bytes) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        plain, sealed, restored = Path(folder) / "data.bin", Path(folder) / "data.bin.enc", Path(folder) / "back.bin"
        with open(plain, "wb") as handle:
            for _ in range(megabytes):
                handle.write(os.urandom(1_000_000))
        size = plain.stat().st_size
        encrypt_s, decrypt_s = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            encrypt_file(plain, sealed, key, overwrite=True)
            encrypt_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            decrypt_file(sealed, restored, key, overwrite=True)
            decrypt_s.append(time.perf_counter() - started)
        identical = sha256_file(plain) == sha256_file(restored)
        overhead = sealed.stat().st_size - size
        data = plain.read_bytes()
    memory_encrypt_s, memory_decrypt_s, cpu_encrypt_s, cpu_decrypt_s = [], [], [], []
    for _ in range(repeats):  # the same in memory: cipher cost without disk and fsync; CPU time too (load-proof)
        started, cpu = time.perf_counter(), time.process_time()
        ciphertext = encrypt_bytes(data, key)
        memory_encrypt_s.append(time.perf_counter() - started)
        cpu_encrypt_s.append(time.process_time() - cpu)
        started, cpu = time.perf_counter(), time.process_time()
        identical = identical and decrypt_bytes(ciphertext, key) == data
        memory_decrypt_s.append(time.perf_counter() - started)
        cpu_decrypt_s.append(time.process_time() - cpu)
    return {"bytes": size, "chunk_bytes": DEFAULT_CHUNK_BYTES, "repeats": repeats,
            "encrypt_seconds": [round(s, 3) for s in encrypt_s], "decrypt_seconds": [round(s, 3) for s in decrypt_s],
            "encrypt_mb_per_s": round(size / 1e6 / min(encrypt_s), 1), "decrypt_mb_per_s": round(size / 1e6 / min(decrypt_s), 1),
            "in_memory_encrypt_mb_per_s": round(size / 1e6 / min(memory_encrypt_s), 1),
            "in_memory_decrypt_mb_per_s": round(size / 1e6 / min(memory_decrypt_s), 1),
            "in_memory_encrypt_mb_per_cpu_s": round(size / 1e6 / min(cpu_encrypt_s), 1),
            "in_memory_decrypt_mb_per_cpu_s": round(size / 1e6 / min(cpu_decrypt_s), 1),
            "ciphertext_overhead_bytes": overhead, "round_trip_bit_identical": identical}  # fmt: skip


def _detected(sealed: bytes, position: int, key: bytes) -> bool:
    tampered = bytearray(sealed)
    tampered[position] ^= 1 << random.randrange(8)
    try:
        decrypt_bytes(bytes(tampered), key)
    except MedaiError:
        return True
    return False


def tamper_detection(flips: int, key: bytes, seed: int) -> dict:
    random.seed(seed)
    large = encrypt_bytes(secrets.token_bytes(4 * (1 << 16) + 123), key, chunk_size=1 << 16)  # 5 chunks of 64 KiB
    positions = [random.randrange(len(large)) for _ in range(flips)]
    random_detected = sum(_detected(large, p, key) for p in positions)
    small = encrypt_bytes(secrets.token_bytes(200), key, chunk_size=64)  # 4 chunks: every position tried
    every_detected = sum(_detected(small, p, key) for p in range(len(small)))
    return {"random_flips": {"ciphertext_bytes": len(large), "chunk_bytes": 1 << 16, "flips": flips,
                             "detected": random_detected, "seed": seed},
            "every_position": {"ciphertext_bytes": len(small), "chunk_bytes": 64, "flips": len(small),
                               "detected": every_detected},
            "all_detected": random_detected == flips and every_detected == len(small)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--flips", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="Also write the JSON here.")
    args = parser.parse_args()
    import cryptography

    key = secrets.token_bytes(32)
    result = {"benchmark": "encryption", "python": platform.python_version(), "cryptography": cryptography.__version__,
              "machine": platform.machine(), "cpus": os.cpu_count(),
              "load_average_1min_at_start": round(os.getloadavg()[0], 2),  # other jobs on the same cores slow it
              "throughput": throughput(args.megabytes, args.repeats, key),
              "tamper_detection": tamper_detection(args.flips, key, args.seed)}  # fmt: skip
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
