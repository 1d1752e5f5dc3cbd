"""Service settings from ``MEDAI_*`` environment variables (pydantic-settings).

Every field reads the variable ``MEDAI_<FIELD NAME>``: ``MEDAI_HOME``, ``MEDAI_DATABASE_URL``, ``MEDAI_SECRET_KEY``,
``MEDAI_ACCESS_TOKEN_MINUTES`` ... Lists are given as JSON (``MEDAI_REGISTER_ROOTS='["/srv/bundles"]'``).

Examples:
    >>> settings = ServiceSettings(home="/srv/medai", database_url=None)
    >>> settings.database_url_resolved
    'sqlite:////srv/medai/medai.db'
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024
SECRET_FILE = "secret_key"


class ServiceSettings(BaseSettings):
    """What the service reads from the environment; the defaults suit one hospital machine."""

    model_config = SettingsConfigDict(env_prefix="MEDAI_", extra="ignore")

    home: Path = Path("~/.medai")  # database, bundles, secret key and upload scratch space live here
    database_url: str | None = None  # SQLAlchemy URL; default: SQLite file <home>/medai.db
    secret_key: SecretStr | None = None  # signs access tokens; default: generated once into <home>/secret_key (0600)
    access_token_minutes: int = Field(15, ge=1, le=24 * 60)  # lifetime of a browser sign-in token
    api_token_days: int = Field(90, ge=1, le=3650)  # default lifetime of an API token for scripts
    max_upload_bytes: int = Field(20 * MiB, ge=1024)  # largest prediction request (image, table, JSON)
    max_bundle_upload_bytes: int = Field(512 * MiB, ge=1024)  # largest zipped bundle upload (and unzipped size)
    login_max_failures: int = Field(5, ge=1)  # failed sign-ins per user name within the window before a lock-out
    login_ip_max_failures: int = Field(20, ge=1)  # failed sign-ins per client address within the window
    login_window_seconds: int = Field(900, ge=1)  # the throttling window (and the lock-out's length)
    scratch: Path | None = None  # where uploads wait while served (deleted after each request); default <home>/tmp.
    #   A memory file system (e.g. a folder under /dev/shm) keeps uploads off the disk and is faster under load
    register_roots: list[Path] | None = None  # server folders bundles may be registered from; default <home>/incoming
    inference_threads: int = Field(2, ge=1, le=64)  # predictions running at once (each in a worker thread)
    max_batch: int = Field(64, ge=1, le=1024)  # concurrent image predictions for one model answered by one call
    inference_chunk: int = Field(8, ge=1, le=1024)  # images per (padded) forward pass when answering requests
    inference_processes: int = Field(1, ge=0, le=64)  # batched image predictions run in this many processes of
    #   their own (started on first use; the web server's interpreter lock is then free for requests), one batch
    #   running per process and the next waiting in its pipe; 0: in worker threads
    freeze_heap: bool = True  # keep long-lived objects (imports, the app, loaded bundles) out of the garbage
    #   collector's full passes, which otherwise stop the server for ~250 ms (medai.service.heap); tests that
    #   build many apps in one process turn it off
    auth_cache_seconds: float = Field(5.0, ge=0, le=300)  # how long predictions trust a checked token and model
    #   version without asking the database; changes made through this process apply at once, through another
    #   process (several workers on one database) within this time; 0 asks the database on every request
    bundle_cache_size: int = Field(8, ge=1)  # bundles kept loaded in memory (least recently used dropped)
    argon2_time_cost: int = Field(3, ge=1)  # argon2id iterations (OWASP: >= 2 with 19 MiB)
    argon2_memory_kib: int = Field(64 * 1024, ge=8)  # argon2id memory per hash in KiB

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @property
    def database_url_resolved(self) -> str:
        """The database URL: ``MEDAI_DATABASE_URL`` or the SQLite file under ``home``."""
        return self.database_url or f"sqlite:///{self.home / 'medai.db'}"

    @property
    def bundles_dir(self) -> Path:
        """Where registered bundles are copied to: ``<home>/bundles/<name>/<version>``."""
        return self.home / "bundles"

    @property
    def scratch_dir(self) -> Path:
        """Private folder for uploads while a request is served (emptied after each request):
        ``MEDAI_SCRATCH`` or ``<home>/tmp``."""
        return self.scratch.expanduser().absolute() if self.scratch is not None else self.home / "tmp"

    @property
    def register_roots_resolved(self) -> list[Path]:
        """Server folders from which bundles may be registered by path."""
        roots = self.register_roots if self.register_roots is not None else [self.home / "incoming"]
        return [Path(root).expanduser().resolve() for root in roots]

    def prepare(self) -> None:
        """Create ``home`` and its sub-folders, readable by the service's user only."""
        folders = [self.home, self.bundles_dir, self.scratch_dir]
        if self.register_roots is None:
            folders.append(self.home / "incoming")  # the default folder bundles are registered from
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, 0o700)

    def signing_key(self) -> str:
        """The token-signing secret: ``MEDAI_SECRET_KEY``, else ``<home>/secret_key`` (created once, mode 0600)."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.home / SECRET_FILE
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            try:
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process created it first
                return path.read_text().strip()
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
        return path.read_text().strip()


def load_settings(**overrides) -> ServiceSettings:
    """ServiceSettings from the environment; a bad value raises InvalidInputError naming the variable."""
    from medai.errors import InvalidInputError

    try:
        return ServiceSettings(**overrides)
    except ValidationError as error:
        problems = "; ".join(f"MEDAI_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in error.errors())
        raise InvalidInputError(f"Invalid service setting(s): {problems}.") from None
