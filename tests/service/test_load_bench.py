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


def test_the_load_clients_connection_reads_sized_and_chunked_answers_and_reconnects_after_close():
    import asyncio

    bench = service_bench()
    answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{\"a\":1}",
               b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"b\"\r\n3\r\n:2}\r\n0\r\n\r\n",
               b"HTTP/1.1 503 Busy\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno",
               b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]
    connections = []

    async def handle(reader, writer):
        connections.append(writer)
        try:
            while answers:
                head = await reader.readuntil(b"\r\n\r\n")
                size = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                assert await reader.readexactly(size) == b"body"
                answer = answers.pop(0)
                writer.write(answer)
                await writer.drain()
                if b"close" in answer:
                    break
        finally:
            writer.close()

    async def exchange():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        connection = bench.Connection("127.0.0.1", port)
        head = b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\n"
        try:
            return [await connection.request(head, b"body") for _ in range(4)]
        finally:
            connection.close()
            server.close()

    assert asyncio.run(exchange()) == [(200, b'{"a":1}'), (200, b'{"b":2}'), (503, b"no"), (200, b"ok")]
    assert len(connections) == 2  # the answer that closed the connection made the client open a new one


def test_the_capacity_bound_divides_the_cores_by_the_cpu_each_request_costs():
    bench = service_bench()
    closed = {"client_cpu_ms_per_request": 0.17, "server_cpu_ms_per_request": {"web": 1.77, "workers": 3.02}}
    bound = bench.capacity_bound(closed, {"forward_images_per_s": 549.5}, {"forward_images_per_s": 967.7}, cores=2)
    assert bound["cpu_ms_per_request"]["total"] == 4.96
    assert bound["requests_per_s_at_most"] == round(2000 / 4.96, 1) == 403.2
    assert bound["inference_process_requests_per_s_at_most"] == round(1000 / 3.02, 1)
    assert bound["half_all_cores_rate"] == {"requests_per_s": 483.9, "utilisation_at_the_bound": round(483.85 / (2000 / 4.96), 3)}
    assert bound["half_one_thread_rate"]["utilisation_at_the_bound"] < 1 < bound["half_all_cores_rate"]["utilisation_at_the_bound"]
    assert bench.capacity_bound({"client_cpu_ms_per_request": 0.2}, {}, {}, cores=2) == {}  # nothing measured
