"""bench/service_load.py's load path end to end, briefly: a real uvicorn server, the clients in their own process,
and one audit entry per answered request (the bench's own check, on a tiny bundle)."""

from __future__ import annotations

import os

import pytest

from tests.service.conftest import service_bench


@pytest.mark.slow
def test_the_load_bench_runs_its_clients_in_a_child_and_every_answer_is_audited(tmp_path, bundles):
    import httpx

    bench = service_bench()
    saved = dict(os.environ)
    server = None
    try:
        app, _ = bench.prepare(tmp_path / "home", {"breast": bundles["image"]}, 1024 * 1024)  # sets MEDAI_* (restored below)
        port = bench.free_port()
        base = f"http://127.0.0.1:{port}"
        server = bench.start_server(port)
        token = httpx.post(f"{base}/api/auth/token", data={"username": "cleo", "password": bench.PASSWORD},
                           timeout=30).json()["access_token"]
        png = bundles["png"].read_bytes()
        closed = bench.load_in_child(base, token, "breast", png, clients=3, seconds=1.5)
        paced = bench.load_in_child(base, token, "breast", png, clients=3, seconds=1.5, rate=6.0)
        cpu = bench.process_cpu_seconds(server.pid)  # the web server's CPU and its inference process's
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        os.environ.clear()
        os.environ.update(saved)
    for run in (closed, paced):
        assert run["errors"] == 0 and run["ok"] > 0, run
        assert run["client_cpu_ms_per_request"] > 0
    if os.path.isdir("/proc"):
        assert cpu["web"] > 0 and cpu["workers"] > 0, cpu
    assert paced["mode"].startswith("paced at 6.0") and paced["ok"] <= 12  # about 9 scheduled in 1.5 s
    digests = closed.pop("_digests") + paced.pop("_digests")
    assert len(set(digests)) == len(digests) == closed["ok"] + paced["ok"]  # each upload was made unique
    outcomes, audited, _ = bench.audit_counts(app.state.services.database, "breast", 0)
    assert outcomes == {"ok": len(digests)} and sorted(audited) == sorted(digests)
    app.state.services.database.dispose()
