"""The session cookie: HttpOnly, SameSite=Strict, Secure under TLS; read on every
request that needs a role."""

from __future__ import annotations

from aiohttp import hdrs, web

from .. import errors
from ..appkeys import AUTH
from ..auth import SESSION_COOKIE, Session
from .local import require_this_machine


def session_of(request: web.Request) -> Session:
    """The request's valid session. A kiosk session counts only on the station itself
    (:mod:`.local`): its cookie copied elsewhere, or one paired remotely before issue 22
    item 7, is refused (``kiosk_not_local``)."""
    auth = request.app[AUTH]
    session = auth.read_session(request.cookies.get(SESSION_COOKIE))
    if session.role == "kiosk":
        require_this_machine(request)
    if session.provisional and (settled := auth.settle_session(session)) is not None:
        request[_SETTLED] = settled
    return session


_SETTLED = web.RequestKey("settled_session", tuple[str, int])
"""Request key: the provisional session's cookie with true times, sent with the response."""


async def send_settled_cookie(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """on_response_prepare: a session issued before the clock was synchronised gets its
    cookie again with true wall times (:meth:`~appliance.auth.Auth.settle_session`) on
    the first response after it is, unless the handler set or cleared the cookie."""
    settled = request.get(_SETTLED)
    cookies = response.headers.getall(hdrs.SET_COOKIE, ())
    if settled is None or any(c.startswith(f"{SESSION_COOKIE}=") for c in cookies):
        return
    token, max_age = settled
    set_session_cookie(request, response, token, max_age=max_age)
    # the response's cookies became headers just before this hook
    response.headers.add(hdrs.SET_COOKIE, response.cookies[SESSION_COOKIE].output(header="")[1:])


def require(request: web.Request, *roles: str) -> Session:
    session = session_of(request)
    if session.role not in roles:
        raise errors.Forbidden(f"This needs the {' or '.join(roles)} role.")
    return session


def set_session_cookie(
    request: web.BaseRequest, response: web.StreamResponse, token: str, *, max_age: int
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
