"""Micro-batched image predictions, the group-committed audit log and the in-memory identity/version caches."""

from __future__ import annotations

import asyncio
import hashlib
import shutil

import pytest

from tests.service.conftest import make_service, png_upload


def _inference(service):
    return service.services.inference


def _version(service, name="breast"):
    return service.services.versions.resolve(name, None)


def _copies(bundles, tmp_path, count):
    paths = []
    for index in range(count):
        folder = tmp_path / f"request-{index}"
        folder.mkdir()
        paths.append(shutil.copy(bundles["png"], folder / "input.png"))
    return paths


def test_concurrent_image_predictions_share_one_call_and_equal_single_ones(service, bundles, tmp_path, monkeypatch):
    import medai

    inference, version = _inference(service), _version(service)
    calls = []
    original = inference._predict_raw
    monkeypatch.setattr(inference, "_predict_raw", lambda v, sources: calls.append(len(sources)) or original(v, sources))
    paths = _copies(bundles, tmp_path, 6)

    async def all_at_once():
        return await asyncio.gather(*(inference.predict(version, p, "upload.png", batchable=True) for p in paths))

    results = asyncio.run(all_at_once())
    assert sum(calls) == 6 and max(calls) > 1  # requests were answered together
    expected = medai.predict(bundles["image"], [bundles["png"]])[0]["probabilities"]
    for [result] in results:
        assert result["input"] == "upload.png"
        assert result["probabilities"] == pytest.approx(expected, abs=1e-6)


def test_one_bad_upload_in_a_batch_fails_only_its_own_request(service, bundles, tmp_path):
    from medai.service.errors import Unprocessable

    inference, version = _inference(service), _version(service)
    paths = _copies(bundles, tmp_path, 3)
    paths[1].write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png")

    async def all_at_once():
        calls = [inference.predict(version, p, "upload.png", batchable=True) for p in paths]
        return await asyncio.gather(*calls, return_exceptions=True)

    good, bad, also_good = asyncio.run(all_at_once())
    assert isinstance(bad, Unprocessable) and str(tmp_path) not in str(bad)
    assert good[0]["label"] == also_good[0]["label"]


def test_every_concurrent_prediction_has_its_own_chained_audit_entry(service, bundles):
    from medai.service import audit

    with service.services.database.session() as session:
        before = audit.search(session, limit=1)[0].id
    data = bundles["png"].read_bytes()
    for index in range(3):
        response = service.client.post("/api/models/breast/predict/file", headers=service.auth("cleo"),
                                       files=png_upload(data + bytes([index])))
        assert response.status_code == 200, response.text
    with service.services.database.session() as session:
        entries = audit.search(session, after_id=before, action="predict", newest_first=False)
        assert [e.input_sha256 for e in entries] == [hashlib.sha256(data + bytes([i])).hexdigest() for i in range(3)]
        assert audit.verify_chain(session).valid


def test_audit_writer_appends_a_group_in_order_in_one_transaction(fresh):
    from medai.service import audit

    writer = fresh.services.audit_writer

    async def many():
        await asyncio.gather(*(writer.append(audit.Event("predict", "ok", actor="cleo", input_sha256=f"{i:064x}"))
                               for i in range(20)))

    asyncio.run(many())
    with fresh.services.database.session() as session:
        entries = audit.search(session, action="predict", newest_first=False, limit=50)
        assert [int(e.input_sha256, 16) for e in entries] == list(range(20))
        assert audit.verify_chain(session).valid


def test_scratch_files_are_removed_after_image_predictions(service, bundles):
    service.client.post("/api/models/breast/predict/file", files=png_upload(bundles["png"].read_bytes()),
                        headers=service.auth("cleo"))
    assert not any(service.services.settings.scratch_dir.iterdir())


def test_a_scratch_file_holds_its_content_privately_until_exit(tmp_path):
    from medai.service.inference import ScratchFile

    with ScratchFile(tmp_path / "scratch", ".png", b"\x89PNG data") as path:  # the folder is made on first use
        assert path.read_bytes() == b"\x89PNG data" and path.suffix == ".png"
        assert path.stat().st_mode & 0o777 == 0o600
    assert not path.exists()


def test_without_the_identity_cache_a_change_by_another_process_applies_at_once(tmp_path):
    from medai.service.models import User

    svc = make_service(tmp_path / "home", auth_cache_seconds=0)
    headers = svc.auth("cleo")
    assert svc.client.post("/api/models/x/predict/records", json={"records": [{"a": 1}]},
                           headers=headers).status_code == 404  # signed in; no such model
    with svc.services.database.session() as session:  # as another worker process would
        session.query(User).filter_by(username="cleo").one().is_active = False
        session.commit()
    response = svc.client.post("/api/models/x/predict/records", json={"records": [{"a": 1}]}, headers=headers)
    assert response.status_code == 401 and "deactivated" in response.json()["detail"]


def test_with_the_identity_cache_a_change_by_another_process_applies_after_it_expires(tmp_path, monkeypatch):
    import time

    from medai.service import expiring
    from medai.service.models import User

    svc = make_service(tmp_path / "home", auth_cache_seconds=5)
    headers = svc.auth("cleo")
    path = "/api/models/x/predict/records"
    assert svc.client.post(path, json={"records": [{"a": 1}]}, headers=headers).status_code == 404
    with svc.services.database.session() as session:
        session.query(User).filter_by(username="cleo").one().is_active = False
        session.commit()
    assert svc.client.post(path, json={"records": [{"a": 1}]}, headers=headers).status_code == 404  # still cached
    later = time.monotonic() + 6
    monkeypatch.setattr(expiring.time, "monotonic", lambda: later)
    assert svc.client.post(path, json={"records": [{"a": 1}]}, headers=headers).status_code == 401


def test_image_batches_in_the_inference_process_equal_the_library(tmp_path, bundles):
    import medai

    svc = make_service(tmp_path / "home", [bundles["root"]], inference_processes=1)
    try:
        response = svc.client.post("/api/models", json={"name": "breast", "path": str(bundles["image"]),
                                                        "stage": "production"}, headers=svc.auth("rhea"))
        assert response.status_code == 201, response.text
        expected = medai.predict(bundles["image"], [bundles["png"]])[0]["probabilities"]
        data = bundles["png"].read_bytes()
        good = svc.client.post("/api/models/breast/predict/file", files=png_upload(data), headers=svc.auth("cleo"))
        assert good.status_code == 200, good.text
        assert good.json()["predictions"][0]["probabilities"] == pytest.approx(expected, abs=1e-6)
        assert svc.services.inference._pool is not None  # it ran in the inference process
        bad = svc.client.post("/api/models/breast/predict/file", files=png_upload(b"\x89PNG\r\n\x1a\n" + b"x" * 40),
                              headers=svc.auth("cleo"))
        assert bad.status_code == 422, bad.text  # answered again in-process, with the task's message
    finally:
        svc.services.inference.close()


SERVER_THAT_DIES = """
import asyncio, os, sys
from pathlib import Path
from medai.bundle import load_bundle
from medai.service.inference import Inference
from medai.service.registry import BundleCache, VersionRef

bundle = load_bundle(sys.argv[1])
cache = BundleCache()
cache.put(1, bundle)
version = VersionRef(1, "m", 1, bundle.config["weights_sha256"], bundle.task, "production", sys.argv[1])
inference = Inference(cache, processes=1)
asyncio.run(inference.predict(version, Path(sys.argv[2]), "x", batchable=True))
print(next(iter(inference._pool._processes)), flush=True)
os._exit(0)  # as if killed: no shutdown
"""


@pytest.mark.slow
def test_the_inference_process_ends_when_the_server_dies(bundles):
    import os
    import subprocess
    import sys
    import time

    done = subprocess.run([sys.executable, "-c", SERVER_THAT_DIES, str(bundles["image"]), str(bundles["png"])],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    child = int(done.stdout.split()[-1])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(child, 9)
    pytest.fail("the inference process outlived the server by more than 10 s")


def test_batch_size_sends_whole_chunks_while_a_batch_runs():
    from medai.service.inference import Inference
    from medai.service.registry import BundleCache

    one = Inference(BundleCache(), max_batch=64, chunk=8, processes=1)
    assert [one._batch_size(0, 0), one._batch_size(0, 5), one._batch_size(0, 100)] == [0, 5, 64]
    assert [one._batch_size(1, 5), one._batch_size(1, 17), one._batch_size(1, 100)] == [0, 16, 64]
    assert one._batch_size(2, 30) == 0  # one running and one waiting in the pipe per process
    two = Inference(BundleCache(), max_batch=64, chunk=8, processes=2)
    assert [two._batch_size(2, 9), two._batch_size(3, 20), two._batch_size(4, 20)] == [8, 16, 0]
    threads = Inference(BundleCache(), max_batch=64, chunk=8, processes=0)
    assert [threads._batch_size(0, 5), threads._batch_size(1, 40)] == [5, 0]  # in threads: one batch at a time


def test_requests_arriving_while_a_batch_runs_are_sent_as_whole_chunks_before_it_ends(tmp_path):
    from pathlib import Path

    from medai.service.inference import Inference
    from medai.service.registry import BundleCache, VersionRef

    inference = Inference(BundleCache(), max_batch=64, chunk=4, processes=1)
    version = VersionRef(1, "m", 1, "0" * 64, "image-classification", "production", str(tmp_path))
    sizes, in_flight, most = [], [0], [0]

    async def fake_batch(_version, sources):  # stands in for the inference process
        sizes.append(len(sources))
        in_flight[0] += 1
        most[0] = max(most[0], in_flight[0])
        await asyncio.sleep(0.05)
        in_flight[0] -= 1
        return [{"input": source.name, "label": "a", "probabilities": {"a": 1.0}} for source in sources]

    inference._run_batch = fake_batch

    async def scenario():
        first = asyncio.ensure_future(inference.predict(version, Path(tmp_path / "f0.png"), "first.png", batchable=True))
        await asyncio.sleep(0.01)  # the first batch (one image) is running
        later = [inference.predict(version, Path(tmp_path / f"f{i}.png"), f"u{i}.png", batchable=True)
                 for i in range(1, 10)]
        return await asyncio.gather(first, *later)

    results = asyncio.run(scenario())
    assert sizes == [1, 8, 1]  # two whole chunks went while the first ran; the short remainder waited
    assert most[0] == 2  # the next batch was already in the pipe
    assert [r[0]["input"] for r in results] == ["first.png", *[f"u{i}.png" for i in range(1, 10)]]
    assert not inference._lanes  # nothing left queued


def test_the_server_freezes_its_long_lived_heap_at_start(tmp_path, bundles):
    import gc

    from fastapi.testclient import TestClient

    svc = make_service(tmp_path / "home", [bundles["root"]], freeze_heap=True)
    try:
        before = gc.get_freeze_count()
        with TestClient(svc.app) as client:
            assert client.get("/health").status_code == 200
            assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()  # give the test process its heap back


def test_a_cached_identity_never_outlives_its_access_token(tmp_path):
    import time

    from medai.service.models import User
    from medai.service.security import create_access_token

    svc = make_service(tmp_path / "home", auth_cache_seconds=300)
    with svc.services.database.session() as session:
        cleo = session.query(User).filter_by(username="cleo").one()
        token = create_access_token(cleo, svc.services.signing_key, minutes=1.5 / 60)  # valid for 1.5 s
    headers, path = {"Authorization": f"Bearer {token}"}, "/api/models/x/predict/records"
    assert svc.client.post(path, json={"records": [{"a": 1}]}, headers=headers).status_code == 404  # cached now
    time.sleep(1.7)  # past the token's expiry, well within the cache's 300 s
    response = svc.client.post(path, json={"records": [{"a": 1}]}, headers=headers)
    assert response.status_code == 401 and "expired" in response.json()["detail"]


def test_a_cancelled_drain_leaves_no_task_behind(tmp_path):
    from pathlib import Path

    from medai.service.inference import Inference
    from medai.service.registry import BundleCache, VersionRef

    inference = Inference(BundleCache(), max_batch=64, chunk=4, processes=1)
    version = VersionRef(1, "m", 1, "0" * 64, "image-classification", "production", str(tmp_path))

    async def slow_batch(_version, sources):  # a batch still running when the server shuts down
        await asyncio.sleep(30)

    inference._run_batch = slow_batch

    async def scenario():
        request = asyncio.ensure_future(inference.predict(version, Path(tmp_path / "a.png"), "a.png", batchable=True))
        await asyncio.sleep(0.02)
        inference._lanes[version.id].drain.cancel()  # as the event loop does at shutdown
        await asyncio.sleep(0.02)
        left = [task for task in asyncio.all_tasks() if task not in (asyncio.current_task(), request)]
        request.cancel()
        return left

    assert asyncio.run(scenario()) == []


def test_inference_process_pads_short_batches_less_with_the_same_results(bundles, tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    import medai
    from medai.bundle import load_bundle
    from medai.errors import BundleIntegrityError
    from medai.service import inference as module
    from medai.service.registry import BundleCache, VersionRef
    from medai.tasks.image_classification import inference_pad_sizes

    bundle = load_bundle(bundles["image"])
    sizes = inference_pad_sizes(bundle, 8)
    assert set(sizes) <= {1, 2, 4}  # checked on this machine's kernels, so any subset may come back
    rng = np.random.default_rng(0)
    paths = []
    for index in range(11):
        paths.append(tmp_path / f"{index}.png")
        Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(paths[-1])
    version = VersionRef(1, "m", 1, bundle.config["weights_sha256"], bundle.task, "production", str(bundles["image"]))
    monkeypatch.setattr(module, "_PROCESS_CACHE", BundleCache(8))  # as _start_inference_process makes it
    for n in (1, 3, 11):  # the inference process's results are exactly those of fixed chunks of 8
        got = module._predict_in_process(version, [str(p) for p in paths[:n]], 8)
        fixed = medai.predict(bundle, paths[:n], chunk=8)
        assert [r["probabilities"] for r in got] == [r["probabilities"] for r in fixed]
    assert module._PROCESS_CACHE.peek(1).pad_sizes == sizes
    wrong = VersionRef(2, "m", 1, "0" * 64, bundle.task, "production", str(bundles["image"]))
    with pytest.raises(BundleIntegrityError, match="differs from the one registered"):
        module._predict_in_process(wrong, [str(paths[0])], 8)


def test_worker_threads_pad_short_batches_like_the_inference_process(bundles, tmp_path):
    import numpy as np
    from PIL import Image

    import medai
    from medai.bundle import load_bundle
    from medai.service.inference import Inference
    from medai.service.registry import BundleCache, VersionRef
    from medai.tasks.image_classification import inference_pad_sizes

    bundle = load_bundle(bundles["image"])
    version = VersionRef(1, "m", 1, bundle.config["weights_sha256"], bundle.task, "production", str(bundles["image"]))
    inference = Inference(BundleCache(2), processes=0, chunk=8)
    loaded = inference._loaded(version)
    with loaded.lock:
        options = inference._options(loaded)
    sizes = inference_pad_sizes(bundle, 8)
    assert options == {"chunk": 8} | ({"pad_sizes": sizes} if sizes else {})
    paths = []
    for index in range(3):
        paths.append(tmp_path / f"{index}.png")
        Image.fromarray(np.random.default_rng(index).integers(0, 256, (32, 32), dtype=np.uint8)).save(paths[-1])
    got = inference._predict_raw(version, paths)
    assert [r["probabilities"] for r in got] == [r["probabilities"] for r in medai.predict(bundle, paths, chunk=8)]
