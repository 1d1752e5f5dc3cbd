"""Real mode: a server and one client per hospital as separate processes, with Flower's Deployment Runtime.

``medai federated server`` starts Flower's SuperLink (``flower-superlink --insecure``), writes a small Flower App
(``pyproject.toml`` naming :data:`server_app` and :data:`client_app` below) and submits it with ``flwr run``; the
ServerApp runs the same :func:`medai.privacy.federated_server.run_federation` as the simulation and writes the
bundle. ``medai federated client`` starts Flower's SuperNode (``flower-supernode``) for one site; its ClientApp
reads that site's records from the node config (``data`` and ``site``) and nothing else. Loopback and ``--insecure``
(no TLS) only: for a network across hospitals, enable Flower's TLS and SuperNode authentication.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from medai.errors import InvalidInputError, require

APP_NAME = "medaifed"
PYPROJECT = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "{name}"
version = "1.0.0"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "medai"

[tool.flwr.app.components]
serverapp = "{name}_app:server_app"
clientapp = "{name}_app:client_app"

[tool.flwr.app.config]
plan = "{{}}"
"""


def _settings_from(run_config) -> object:
    from medai.privacy.federated import FederatedSettings

    plan = json.loads(str(run_config.get("plan", "{}")))
    return plan, FederatedSettings(**plan.get("settings", {})).validate()


def _client(context):
    from medai.privacy.federated import load_sites
    from medai.privacy.federated_client import make_numpy_client

    _, settings = _settings_from(context.run_config)
    data, site = context.node_config.get("data"), context.node_config.get("site")
    if not data or not site:
        raise InvalidInputError("A medai SuperNode needs --node-config 'data=\"FILE\" site=\"NAME\"'.")
    return make_numpy_client(load_sites(str(data), settings, site=str(site))[0])


def _server_main(grid, context) -> None:
    from medai.privacy.federated import save_federated_bundle
    from medai.privacy.federated_server import ServerPlan, run_federation

    plan_json, settings = _settings_from(context.run_config)
    plan = ServerPlan(settings, int(plan_json["sites"]))
    run_federation(grid, plan)
    save_federated_bundle(plan_json["out"], plan.results, settings, source="sites' own files",
                          mode="deployment (Flower SuperLink + SuperNodes)")  # fmt: skip


def _apps():
    """The ServerApp and ClientApp that Flower's runtime loads (None, None without Flower)."""
    if importlib.util.find_spec("flwr") is None:
        return None, None
    from flwr.client import ClientApp
    from flwr.client.mod import fixedclipping_mod, secaggplus_mod
    from flwr.server import ServerApp

    server = ServerApp()
    server.main()(_server_main)
    # one ClientApp serves every run: each mod acts only on messages of a run whose server asks for it
    mods = [_when(secaggplus_mod, _asks_secure_aggregation), _when(fixedclipping_mod, _asks_clipping)]
    client = ClientApp(client_fn=lambda context: _client(context).to_client(), mods=mods)
    return server, client


def _asks_secure_aggregation(message) -> bool:
    return "secaggplus_configs" in message.content.config_records


def _asks_clipping(message) -> bool:
    from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

    return any(KEY_CLIPPING_NORM in record for record in message.content.config_records.values())


def _when(mod, asked):
    """A Flower mod applied only to the messages for which ``asked(message)`` is true."""

    def conditional(message, context, call_next):
        return mod(message, context, call_next) if asked(message) else call_next(message, context)

    return conditional


server_app, client_app = _apps()


def _binary(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def _wait_for_port(port: int, timeout: float = 120.0) -> None:
    import socket

    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                time.sleep(2)  # the port opens before every API behind it is ready
                return
        time.sleep(0.5)
    raise InvalidInputError(f"The SuperLink did not listen on 127.0.0.1:{port} within {timeout:.0f} s.")


def _environment(flwr_home: Path) -> dict:
    """FLWR_HOME for this process's Flower state; this interpreter's bin folder first on PATH (Flower starts
    ``flower-superexec`` and ``flwr-serverapp``/``flwr-clientapp`` from there)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "FLWR_HOME": str(Path(flwr_home).resolve()), "PATH": path}


def serve(out, sites: int, settings, *, flwr_home: Path, port: int = 9093, timeout: float = 3600) -> Path:
    """Start a SuperLink, submit the medai Flower App and wait until the bundle is written; returns its path."""
    require("flwr", "federated")
    out, flwr_home = Path(out).resolve(), Path(flwr_home).resolve()
    app = flwr_home / "app"
    app.mkdir(parents=True, exist_ok=True)
    (app / "pyproject.toml").write_text(PYPROJECT.format(name=APP_NAME))
    (app / f"{APP_NAME}_app.py").write_text("from medai.privacy import federated_deploy\n\nserver_app = federated_deploy.server_app\n"
                                            "client_app = federated_deploy.client_app\n")
    (flwr_home / "config.toml").write_text(f'[superlink]\ndefault = "medai"\n\n[superlink.medai]\naddress = "127.0.0.1:{port}"\ninsecure = true\n')
    env = _environment(flwr_home)
    link = subprocess.Popen([_binary("flower-superlink"), "--insecure", "--host", "127.0.0.1", "--port", str(port)], env=env)
    try:
        _wait_for_port(port)
        plan = {"settings": asdict(settings), "sites": sites, "out": str(out)}
        overrides = flwr_home / "run-config.toml"
        overrides.write_text(require("tomli_w", "federated").dumps({"plan": json.dumps(plan)}))
        command = [_binary("flwr"), "run", str(app), "medai", "--run-config", str(overrides), "--stream"]
        try:
            subprocess.run(command, env=env, check=True, timeout=timeout)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            raise InvalidInputError(f"`flwr run` failed ({type(error).__name__}); see Flower's log above.") from None
        deadline = time.time() + 60
        while not (out / "config.json").exists() and time.time() < deadline:
            time.sleep(1)
    finally:
        link.terminate()
        link.wait(30)
    if not (out / "config.json").exists():
        raise InvalidInputError(f"The federation ended without writing {out}; see the SuperLink log above.")
    return out


def join(server: str, data, site: str, *, flwr_home: Path, port: int = 9094) -> int:
    """Run a SuperNode for one site until it is stopped; returns its exit code."""
    require("flwr", "federated")
    node_config = f"data={json.dumps(str(Path(str(data)).expanduser().resolve()) if Path(str(data)).exists() else str(data))} site={json.dumps(site)}"
    env = _environment(flwr_home)
    command = [_binary("flower-supernode"), "--insecure", "--superlink", server, "--node-config", node_config,
               "--port", str(port)]  # fmt: skip
    return subprocess.call(command, env=env)
