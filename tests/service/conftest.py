"""Fixtures of the service tests: tiny bundles trained once per session, and a service on a temporary SQLite file.

The shared ``service`` has three users (admin ``ada``, researcher ``rhea``, clinician ``cleo``) and two production
models: ``breast`` (a tiny image classifier) and ``labs`` (a tiny lab-values classifier with an OOD detector).
Tests that need a clean database (throttling, audit tampering, migrations) make their own with ``make_service``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import secrets
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the service needs the serve extra: pip install 'medai[serve]'")

from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import bench_module, write_npz

PASSWORD = secrets.token_urlsafe(16)  # made per run: no credential lives in the source
WRONG_PASSWORD = secrets.token_urlsafe(17)  # drawn per run too; 23 characters, so never PASSWORD (22)
USERS = {"ada": "admin", "rhea": "researcher", "cleo": "clinician"}


def service_bench():
    """bench/service_load.py as a module: its security battery and its lab-values table serve the tests too."""
    return bench_module("service_load")


def write_labs(path: Path, n: int = 80, seed: int = 0) -> Path:
    """Risk rises with glucose and with smoker == 'yes' (the bench's table)."""
    return service_bench().write_labs(path, n, seed)


@pytest.fixture(scope="session")
def bundles(tmp_path_factory) -> dict[str, Path]:
    """A tiny image bundle and a tiny tabular bundle, inside the folder the services may register from."""
    import medai

    root = tmp_path_factory.mktemp("bundles")
    images = write_npz(root / "tiny.npz", sizes=(32, 16, 8))
    medai.train("image-classification", images, root / "image", epochs=1, batch_size=16, ensemble=1, ood=False,
                device="cpu", progress=False)
    labs = write_labs(root / "labs.csv")
    medai.train("tabular-classification", labs, root / "labs", target="outcome", model="logistic_regression",
                device="cpu", progress=False)
    Image.fromarray(np.load(images)["test_images"][1]).save(root / "one.png")
    return {"root": root, "image": root / "image", "labs": root / "labs", "png": root / "one.png"}


@dataclass
class Service:
    app: object
    client: TestClient
    home: Path
    headers: dict[str, dict] = field(default_factory=dict)

    @property
    def services(self):
        return self.app.state.services

    def login(self, username: str, password: str = PASSWORD):
        return self.client.post("/api/auth/token", data={"username": username, "password": password})

    def auth(self, username: str) -> dict:
        if username not in self.headers:
            response = self.login(username)
            assert response.status_code == 200, response.text
            self.headers[username] = {"Authorization": f"Bearer {response.json()['access_token']}"}
        return self.headers[username]


_TEMPLATE = tempfile.TemporaryDirectory(prefix="medai-service-template-")


def _template_database() -> Path:
    """A migrated database with the three users, made once and copied: migrating each new file costs ~0.3 s."""
    from medai.service import migrate
    from medai.service.accounts import create_user
    from medai.service.db import Database
    from medai.service.security import password_hasher

    path = Path(_TEMPLATE.name) / "medai.db"
    if not path.exists():
        url = f"sqlite:///{path.with_suffix('.partial')}"
        migrate.upgrade(url)
        database = Database(url)
        with database.session() as session:
            for username, role in USERS.items():
                create_user(session, password_hasher(1, 1024), username, PASSWORD, role)
            session.commit()
        database.dispose()
        path.with_suffix(".partial").rename(path)
    return path


def make_service(home: Path, register_roots: list[Path] | None = None, **overrides) -> Service:
    from medai.service.app import create_app
    from medai.service.settings import ServiceSettings

    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_template_database(), home / "medai.db")
    settings = ServiceSettings(home=home, database_url=None, secret_key=None, register_roots=register_roots or [],
                               argon2_time_cost=1, argon2_memory_kib=1024,
                               **{"inference_processes": 0, "freeze_heap": False, **overrides})  # a test asks for
    #   the inference process or the heap freeze itself
    app = create_app(settings)
    return Service(app=app, client=TestClient(app), home=home)


@pytest.fixture(scope="session")
def service(tmp_path_factory, bundles) -> Service:
    svc = make_service(tmp_path_factory.mktemp("home"), [bundles["root"]], login_ip_max_failures=1000,
                       max_upload_bytes=256 * 1024)
    for name, folder in (("breast", bundles["image"]), ("labs", bundles["labs"])):
        response = svc.client.post("/api/models", json={"name": name, "path": str(folder), "stage": "production"},
                                   headers=svc.auth("rhea"))
        assert response.status_code == 201, response.text
    return svc


@pytest.fixture
def fresh(tmp_path) -> Service:
    """A service with its own empty database and no models."""
    return make_service(tmp_path / "home")


@contextlib.contextmanager
def served(app):
    """``app`` on uvicorn in a thread on a free loopback port (for browser tests); yields its base URL."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def png_upload(data: bytes, name: str = "scan.png") -> dict:
    return {"file": (name, io.BytesIO(data), "image/png")}


# -- drug-recommendation and molecular-property bundles (the patient-history and SMILES pages) -------------------

ATC_NAMES = {"A06A": "DRUGS FOR CONSTIPATION", "A10A": "INSULINS AND ANALOGUES", "B01A": "ANTITHROMBOTIC AGENTS",
             "C03C": "HIGH-CEILING DIURETICS", "C07A": "BETA BLOCKING AGENTS", "J01D": "OTHER BETA-LACTAM ANTIBACTERIALS",
             "N02B": "OTHER ANALGESICS AND ANTIPYRETICS", "N05C": "HYPNOTICS AND SEDATIVES"}  # fmt: skip


@pytest.fixture(scope="module")
def history_smiles_service(tmp_path_factory):
    """A service with a tiny drug-recommendation bundle ``drugrec`` (synthetic cohort, a staged two-pair DDI graph
    and ATC names under a temporary MEDAI_DATA_DIR, set while the module runs) and a tiny molecular-property bundle
    ``molprops`` (fingerprint MLP, 2 members; has_nitrogen probability and size), both in production."""
    import os

    import torch

    from medai.ehr.ddi import NAMES_FILE
    from medai.tasks import drug_recommendation, molecular_property
    from tests.drugrec_cohorts import make_cohort, stage_ddi
    from tests.molecules import write_molecules

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("history-smiles")
    stage_ddi(root / "data")
    names = root.joinpath("data", *NAMES_FILE)
    names.parent.mkdir(parents=True, exist_ok=True)
    with open(names, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["atc_code", "atc_name"])
        writer.writerows(ATC_NAMES.items())
    previous = os.environ.get("MEDAI_DATA_DIR")
    os.environ["MEDAI_DATA_DIR"] = str(root / "data")
    try:
        bundles = root / "bundles"
        drug_recommendation.train(make_cohort(60), bundles / "drugrec", model="drug_recommender", epochs=3, ensemble=1,
                                  progress=False)
        molecular_property.train(write_molecules(root / "molecules.csv", n=60), bundles / "molprops",
                                 model="fingerprint_mlp", epochs=2, ensemble=2, features="none", progress=False,
                                 num_threads=1)
        svc = make_service(root / "home", [bundles], login_ip_max_failures=1000)
        for name in ("drugrec", "molprops"):
            response = svc.client.post("/api/models", json={"name": name, "path": str(bundles / name),
                                                            "stage": "production"}, headers=svc.auth("rhea"))
            assert response.status_code == 201, response.text
        yield svc
    finally:
        if previous is None:
            os.environ.pop("MEDAI_DATA_DIR", None)
        else:
            os.environ["MEDAI_DATA_DIR"] = previous
