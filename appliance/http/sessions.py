"""The session cookie: HttpOnly, SameSite=Strict, Secure under TLS; read on every
request that needs a role."""

from __future__ import annotations

from aiohttp import web

from .. import errors
from ..appkeys import AUTH
from ..auth import SESSION_COOKIE, Session
from .local import require_this_machine


def session_of(request: web.Request) -> Session:
    """The request's valid session. A kiosk session counts only on the station itself
    (:mod:`.local`): its cookie copied elsewhere, or one paired remotely before issue 22
    item 7, is refused (``kiosk_not_local``)."""
    session = request.app[AUTH].read_session(request.cookies.get(SESSION_COOKIE))
    if session.role == "kiosk":
        require_this_machine(request)
    return session


def require(request: web.Request, *roles: str) -> Session:
    session = session_of(request)
    if session.role not in roles:
        raise errors.Forbidden(f"This needs the {' or '.join(roles)} role.")
    return session


def set_session_cookie(
    request: web.Request, response: web.Response, token: str, *, max_age: int
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path="/",
    )


def clear_session_cookie(request: web.Request, response: web.Response) -> None:
    response.del_cookie(SESSION_COOKIE, path="/", samesite="Strict", secure=request.secure)
