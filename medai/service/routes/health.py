"""``GET /health``: the only route answered without authentication; it reveals no data."""

from __future__ import annotations

from fastapi import APIRouter

from medai.service.deps import ServicesDep
from medai.service.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
def health(services: ServicesDep) -> Health:
    """Whether the service and its database answer."""
    from medai import __version__

    database = services.database.ping()
    return Health(status="ok" if database else "degraded", version=__version__, database=database)
