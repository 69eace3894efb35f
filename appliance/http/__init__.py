"""HTTP plumbing shared by every handler, one module per job.

``jsonerrors``: every error leaves as ``{"error": {"code", "message"}}``.
``security``: security headers on every answer and the Origin check.
``sessions``: the session cookie (read, required role, set, cleared).
``bodies``: a request's JSON body and its typed fields.
``connections``: per-connection limits (header deadline, connections per address).
``local``: is a request from the station itself (the kiosk key and session)?
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
"""An aiohttp request handler (what a middleware wraps)."""
