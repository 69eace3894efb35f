"""The session cookie: HttpOnly, SameSite=Strict, Secure under TLS; read on every
request that needs a role."""

from __future__ import annotations

from aiohttp import web

from .. import errors
from ..appkeys import AUTH
from ..auth import SESSION_COOKIE, Session


def session_of(request: web.Request) -> Session:
    return request.app[AUTH].read_session(request.cookies.get(SESSION_COOKIE))


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
