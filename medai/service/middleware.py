"""ASGI middleware (one layer): request size limits, security headers, internal-error containment, and request
logging without request data.

The size limit checks ``Content-Length`` first and then counts the bytes actually received, so a chunked upload
cannot slip past it. Logs name the method, path, status, duration and user, never bodies, file names or
query values beyond the path.
"""

from __future__ import annotations

import json
import logging
import os
import time

from fastapi import HTTPException
from fastapi.responses import JSONResponse

logger = logging.getLogger("medai.service")

CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
                           "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class _TooLarge(HTTPException):
    """Raised while the body is read; an HTTPException, so FastAPI's body parsing passes it on unchanged."""

    def __init__(self, message: str):
        super().__init__(status_code=413, detail=message)


_HTML_SAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def html_safe_json(content) -> bytes:
    """Compact UTF-8 JSON with ``<``, ``>`` and ``&`` written as ``\\u003c`` ...: the same document once parsed, but
    text a client sent (a field name, a query value) never appears in the body as markup, whatever reads it."""
    text = json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))
    for character, escaped in _HTML_SAFE.items():
        text = text.replace(character, escaped)  # these characters only occur inside JSON strings
    return text.encode("utf-8")


class SafeJSONResponse(JSONResponse):
    """The service's JSON response (the app's default response class): :func:`html_safe_json`."""

    def render(self, content) -> bytes:
        return html_safe_json(content)


async def _send_json(send, status: int, message: str) -> None:
    body = html_safe_json({"detail": message})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class ServiceMiddleware:
    """Every request's guards in one ASGI layer (one layer per duty would each wrap the request and its events):

    - size limit: answer 413 to a body over the limit for its path, declared (``Content-Length``) or counted as
      it is received;
    - security headers: CSP and related headers on every response, ``Cache-Control: no-store`` on API responses;
    - internal errors: an unexpected exception is answered with a 500 naming its type only, and logged the same
      way; it is not passed on, so no server logs its message or traceback (both may quote request data).
      ``MEDAI_DEBUG=1`` logs the traceback for debugging on test data;
    - request log: one line per request: method, path, status, milliseconds, user (no bodies, no query strings).

    Args:
        app: the wrapped ASGI app.
        default: body size limit in bytes for every path.
        overrides: ``{path prefix: limit}`` for larger uploads (zipped bundles).
    """

    def __init__(self, app, default: int, overrides: dict[str, int] | None = None):
        self.app, self.default, self.overrides = app, default, overrides or {}

    def limit_for(self, path: str) -> int:
        return next((limit for prefix, limit in self.overrides.items() if path.startswith(prefix)), self.default)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        begin, status, path = time.perf_counter(), 500, scope["path"]
        extra = [(b"cache-control", b"no-store")] if path.startswith("/api/") else []
        limit = self.limit_for(path)
        received, started = 0, False

        async def counting_receive():
            nonlocal received
            event = await receive()
            if event["type"] == "http.request":
                received += len(event.get("body", b""))
                if received > limit:
                    raise _TooLarge(_too_large(limit))
            return event

        async def with_headers(event):
            nonlocal status, started
            if event["type"] == "http.response.start":
                status, started = event["status"], True
                event = {**event, "headers": [*event.get("headers", []), *SECURITY_HEADERS, *extra]}
            await send(event)

        try:
            declared = dict(scope["headers"]).get(b"content-length")
            if declared is not None and (not declared.isdigit() or int(declared) > limit):
                return await _send_json(with_headers, 413, _too_large(limit))
            try:
                await self.app(scope, counting_receive, with_headers)
            except Exception as error:
                logger.error("internal error %s on %s %s", type(error).__name__, scope["method"], path,
                             exc_info=bool(os.environ.get("MEDAI_DEBUG")))
                if not started:
                    await _send_json(with_headers, 500, f"Internal error ({type(error).__name__}); it was logged "
                                                        f"without the request's data. Please report it.")
        finally:
            user = (scope.get("state") or {}).get("user", "-")
            logger.info("%s %s %s %.0fms user=%s", scope["method"], path, status,
                        1000 * (time.perf_counter() - begin), user)


def _too_large(limit: int) -> str:
    size = f"{limit / 2**20:.0f} MiB" if limit >= 2**20 else f"{limit} bytes"
    return f"The request is larger than this service accepts ({size}); send a smaller file."
