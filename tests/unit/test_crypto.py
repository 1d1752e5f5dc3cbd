"""Encryption at rest: bit-identical round trips, every flipped byte detected, truncation, keys, encrypted inputs."""

from __future__ import annotations

import csv
import io
import os
import secrets
import stat
from pathlib import Path

import numpy as np
import pytest

from medai import api
from medai.errors import MedaiError
from medai.privacy import crypto
from medai.privacy.crypto import (
    CiphertextError,
    EncryptionKeyError,
    StaticKeyProvider,
    decrypt_bytes,
    decrypt_file,
    decrypted_input,
    encrypt_bytes,
    encrypt_file,
    is_encrypted,
    open_input,
)

KEY = secrets.token_bytes(32)  # made per run: no key lives in the source
OTHER_KEY = secrets.token_bytes(32)


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 64, 65, 1000, 4096 + 3])
def test_round_trip_is_bit_identical_for_several_sizes_and_chunkings(size):
    data = secrets.token_bytes(size)
    for chunk_size in (1, 16, 64, 1 << 20):
        if chunk_size == 1 and size > 100:
            continue
        sealed = encrypt_bytes(data, KEY, chunk_size=chunk_size)
        assert decrypt_bytes(sealed, KEY) == data
        assert len(data) < 16 or data not in sealed


def test_two_encryptions_of_the_same_data_differ():
    assert encrypt_bytes(b"same", KEY) != encrypt_bytes(b"same", KEY)


def test_file_round_trip_multi_chunk(tmp_path):
    source = tmp_path / "records.bin"
    data = secrets.token_bytes(3 * 1024 + 5)
    source.write_bytes(data)
    sealed = encrypt_file(source, keys=KEY, chunk_size=1024)
    assert sealed.name == "records.bin.enc" and is_encrypted(sealed) and not is_encrypted(source)
    restored = decrypt_file(sealed, tmp_path / "out.bin", KEY)
    assert restored.read_bytes() == data
    assert open_input(sealed, KEY) == data and open_input(source) == data


@pytest.mark.parametrize("chunk_size", [16, 1 << 20])
def test_every_single_flipped_byte_is_detected(chunk_size):
    sealed = encrypt_bytes(b"glucose 7.1 mmol/L; hba1c 6.5%; bp 140/90", KEY, chunk_size=chunk_size)
    for position in range(len(sealed)):
        for mask in (0x01, 0x80):
            tampered = bytearray(sealed)
            tampered[position] ^= mask
            with pytest.raises(MedaiError):
                decrypt_bytes(bytes(tampered), KEY)


def test_truncation_reordering_and_appending_are_detected():
    sealed = encrypt_bytes(bytes(100), KEY, chunk_size=16)
    header = len(sealed) - 6 * 32 - (4 + 16)
    for cut in (len(sealed) - 1, len(sealed) - 20, header + 32, header, header - 3, 5, 0):
        with pytest.raises(CiphertextError):
            decrypt_bytes(sealed[:cut], KEY)
    chunks = [sealed[header + 32 * i : header + 32 * (i + 1)] for i in range(6)]
    swapped = sealed[:header] + chunks[1] + chunks[0] + b"".join(chunks[2:]) + sealed[header + 192 :]
    with pytest.raises(CiphertextError, match="modified, truncated or reordered"):
        decrypt_bytes(swapped, KEY)
    with pytest.raises(CiphertextError):
        decrypt_bytes(sealed + b"\x00", KEY)


def test_cut_exactly_at_a_chunk_boundary_is_detected():
    sealed = encrypt_bytes(bytes(64), KEY, chunk_size=16)  # four full chunks, the last one final
    with pytest.raises(CiphertextError):
        decrypt_bytes(sealed[: len(sealed) - 32], KEY)


def test_wrong_key_names_both_key_ids_and_never_the_key():
    sealed = encrypt_bytes(b"x", KEY)
    with pytest.raises(EncryptionKeyError, match="Wrong key") as caught:
        decrypt_bytes(sealed, OTHER_KEY)
    assert KEY.hex() not in str(caught.value) and OTHER_KEY.hex() not in str(caught.value)
    assert StaticKeyProvider(KEY).key_id in str(caught.value)


def test_missing_key_message_says_how_to_set_one(monkeypatch, tmp_path):
    monkeypatch.delenv(crypto.KEY_ENV, raising=False)
    monkeypatch.delenv(crypto.KEY_FILE_ENV, raising=False)
    source = tmp_path / "a.csv"
    source.write_text("a\n1\n")
    with pytest.raises(EncryptionKeyError, match="MEDAI_ENCRYPTION_KEY"):
        encrypt_file(source)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]


def test_keys_from_environment_hex_base64_and_file(monkeypatch, tmp_path):
    import base64

    sealed = encrypt_bytes(b"payload", KEY)
    monkeypatch.delenv(crypto.KEY_FILE_ENV, raising=False)
    for text in (KEY.hex(), base64.b64encode(KEY).decode(), base64.urlsafe_b64encode(KEY).decode().rstrip("=")):
        monkeypatch.setenv(crypto.KEY_ENV, text)
        assert decrypt_bytes(sealed) == b"payload"
    monkeypatch.setenv(crypto.KEY_ENV, "too-short")
    with pytest.raises(EncryptionKeyError, match="256-bit") as caught:
        decrypt_bytes(sealed)
    assert "too-short" not in str(caught.value)
    monkeypatch.delenv(crypto.KEY_ENV)
    for content in (KEY, (KEY.hex() + "\n").encode()):
        (tmp_path / "key").write_bytes(content)
        monkeypatch.setenv(crypto.KEY_FILE_ENV, str(tmp_path / "key"))
        assert decrypt_bytes(sealed) == b"payload"


def test_custom_key_provider_plugs_in():
    class Vault:  # stands for a KMS: several keys by id
        def __init__(self):
            self.keys = {"kms/key-2": OTHER_KEY, "kms/key-1": KEY}

        def current(self):
            return "kms/key-2", self.keys["kms/key-2"]

        def key_for(self, key_id):
            if key_id not in self.keys:
                raise EncryptionKeyError(f"unknown key {key_id}")
            return self.keys[key_id]

    assert isinstance(Vault(), crypto.KeyProvider)
    sealed = encrypt_bytes(b"data", Vault())
    assert b"kms/key-2" in sealed[:40] and decrypt_bytes(sealed, Vault()) == b"data"


def test_failed_decryption_writes_nothing(tmp_path):
    source = tmp_path / "x.bin"
    source.write_bytes(secrets.token_bytes(5000))
    sealed = encrypt_file(source, keys=KEY, chunk_size=1024)
    tampered = bytearray(sealed.read_bytes())
    tampered[-5] ^= 1  # the last chunk: four good chunks are decrypted first
    sealed.write_bytes(bytes(tampered))
    with pytest.raises(CiphertextError):
        decrypt_file(sealed, tmp_path / "out.bin", KEY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.bin", "x.bin.enc"]


def test_existing_outputs_and_plain_inputs_are_refused(tmp_path):
    source = tmp_path / "x.bin"
    source.write_bytes(b"abc")
    sealed = encrypt_file(source, keys=KEY)
    with pytest.raises(MedaiError, match="already exists"):
        encrypt_file(source, keys=KEY)
    with pytest.raises(MedaiError, match="already encrypted"):
        encrypt_file(sealed, tmp_path / "twice.enc", keys=KEY)
    with pytest.raises(CiphertextError, match="Not a medai encrypted file"):
        decrypt_file(source, tmp_path / "y.bin", KEY)
    assert encrypt_file(source, keys=KEY, overwrite=True) == sealed


def test_decrypted_input_is_private_and_removed(tmp_path):
    source = tmp_path / "table.csv"
    source.write_text("a,b\n1,2\n")
    sealed = encrypt_file(source, keys=KEY)
    with decrypted_input(str(sealed), KEY) as plain:
        assert isinstance(plain, str) and Path(plain).name == "table.csv"
        assert Path(plain).read_text() == "a,b\n1,2\n"
        assert stat.S_IMODE(os.stat(Path(plain).parent).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(plain).st_mode) & 0o077 == 0
    assert not Path(plain).parent.exists()
    with decrypted_input("breastmnist") as name, decrypted_input(source) as same:
        assert name == "breastmnist" and same == source
    with pytest.raises(RuntimeError), decrypted_input(sealed, KEY) as plain:
        raise RuntimeError("a failing task")
    assert not Path(plain).parent.exists()


def _write_table(path: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["glucose", "age", "outcome"])
        for _ in range(n):
            glucose, age = rng.normal(100, 20), rng.normal(50, 10)
            writer.writerow([f"{glucose:.1f}", f"{age:.0f}", "sick" if glucose + rng.normal(0, 5) > 100 else "well"])


@pytest.mark.slow  # a real training run: about 10 s on an idle 2-core machine
def test_api_trains_evaluates_and_predicts_from_an_encrypted_csv_without_cleartext(tmp_path, monkeypatch):
    private = tmp_path / "private"
    private.mkdir()
    monkeypatch.setattr(crypto, "_private_root", lambda size: str(private))
    monkeypatch.setenv(crypto.KEY_ENV, KEY.hex())
    plain = tmp_path / "cohort.csv"
    _write_table(plain, n=80)
    content = plain.read_bytes()
    sealed = encrypt_file(plain)
    plain.unlink()  # only the encrypted copy is left
    bundle = api.train("tabular-classification", sealed, tmp_path / "bundle", target="outcome",
                       model="logistic_regression", ensemble=1, epochs=5, progress=False)
    assert bundle.metrics["test"]["auroc"] > 0.8
    assert api.evaluate(bundle, sealed, split="all")["auroc"] > 0.8
    results = api.predict(bundle, [sealed])
    assert len(results) == 80
    assert list(private.iterdir()) == []
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and p != sealed and content in p.read_bytes()]
    assert leftovers == []
    assert not any(p.name == "cohort.csv" for p in tmp_path.rglob("*"))


def test_api_reads_an_encrypted_npz(tmp_path, monkeypatch):
    from tests.conftest import write_npz

    monkeypatch.setattr(crypto, "_private_root", lambda size: str(tmp_path))
    seen = {}

    def fake_train(data, out, **settings):
        arrays = np.load(data)
        seen.update(name=Path(data).name, mode=stat.S_IMODE(os.stat(Path(data).parent).st_mode),
                    shape=arrays["train_images"].shape)
        return "bundle"

    class FakeTask:
        from dataclasses import dataclass

        @dataclass
        class Settings:
            epochs: int = 1

        train = staticmethod(fake_train)

    monkeypatch.setattr(api, "get_task", lambda task: FakeTask)
    sealed = encrypt_file(write_npz(tmp_path / "tiny.npz"), keys=KEY)
    (tmp_path / "tiny.npz").unlink()
    monkeypatch.setenv(crypto.KEY_ENV, KEY.hex())
    assert api.train("image-classification", sealed, tmp_path / "b", epochs=1) == "bundle"
    assert seen == {"name": "tiny.npz", "mode": 0o700, "shape": (48, 16, 16)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.npz.enc"]


def test_streams_with_short_reads_like_pipes():
    class Trickle(io.BytesIO):  # returns at most 7 bytes per read, as a pipe may
        def read(self, size=-1):
            return super().read(7 if size < 0 else min(size, 7))

    sink = io.BytesIO()
    crypto.encrypt_stream(Trickle(b"abc" * 1000), sink, KEY, chunk_size=100)
    back = io.BytesIO()
    crypto.decrypt_stream(Trickle(sink.getvalue()), back, KEY)
    assert back.getvalue() == b"abc" * 1000 == decrypt_bytes(sink.getvalue(), KEY)


def test_cli_encrypt_and_decrypt(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from medai.cli.main import app

    runner = CliRunner()
    source = tmp_path / "scan.npz"
    source.write_bytes(secrets.token_bytes(3000))
    monkeypatch.delenv(crypto.KEY_FILE_ENV, raising=False)
    monkeypatch.delenv(crypto.KEY_ENV, raising=False)
    missing = runner.invoke(app, ["encrypt", str(source)])
    assert missing.exit_code == 2 and "MEDAI_ENCRYPTION_KEY" in missing.output and not (tmp_path / "scan.npz.enc").exists()
    monkeypatch.setenv(crypto.KEY_ENV, KEY.hex())
    assert runner.invoke(app, ["encrypt", str(source), "--out", str(tmp_path / "s.enc")]).exit_code == 0
    result = runner.invoke(app, ["decrypt", str(tmp_path / "s.enc"), "--out", str(tmp_path / "back.npz")])
    assert result.exit_code == 0 and (tmp_path / "back.npz").read_bytes() == source.read_bytes()
    assert runner.invoke(app, ["decrypt", str(tmp_path / "s.enc"), "--out", str(tmp_path / "back.npz")]).exit_code == 2
    monkeypatch.setenv(crypto.KEY_ENV, OTHER_KEY.hex())
    wrong = runner.invoke(app, ["decrypt", str(tmp_path / "s.enc"), "--out", str(tmp_path / "w.npz")])
    assert wrong.exit_code == 2 and "Wrong key" in wrong.output and not (tmp_path / "w.npz").exists()
