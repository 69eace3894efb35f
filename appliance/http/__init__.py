"""HTTP plumbing shared by every handler, one module per job.

``jsonerrors``: every error leaves as ``{"error": {"code", "message"}}``.
``security``: security headers on every answer and the Origin check.
``sessions``: the session cookie (read, required role, set, cleared).
``bodies``: a request's JSON body and its typed fields.
``connections``: connection limits (head and body deadlines, caps per address and in all
under the descriptor limit, a reserve for household and kiosk sessions).
``local``: is a request from the station itself (the kiosk key and session)?
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
"""An aiohttp request handler (what a middleware wraps)."""
