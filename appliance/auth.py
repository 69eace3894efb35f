"""Who may do what: the master password, sessions, guest links and the kiosk key.

Three roles (see docs/security.md and docs/architecture.md):

- ``user`` knows the master password (stored as a scrypt hash);
- ``guest`` holds a room-scoped JWT from a guest link and trades it for a guest
  session limited to that room;
- ``kiosk`` is the station's own screen, holding the key in ``kiosk.key``.

Sessions are HS256 JWTs in an HttpOnly cookie. Changing the password bumps a
session epoch, which logs every user out everywhere.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jwt

from .clock import SYSTEM_CLOCK, Clock
from .errors import (
    GuestLinkNotFound,
    GuestLinkRevoked,
    GuestLinkUsedUp,
    InvalidToken,
    NotAuthenticated,
    PasswordNotSet,
    TokenExpired,
    TooManyAttempts,
    WrongPassword,
    WrongRoom,
)
from .store import GuestLink, Store

log = logging.getLogger(__name__)

Role = Literal["user", "guest", "kiosk"]
ALGORITHM = "HS256"
GUEST_AUDIENCE = "vs:guest"
SESSION_AUDIENCE = "vs:session"
LEEWAY_SECONDS = 5
SESSION_COOKIE = "vs_session"
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
"""Kiosk invitation codes: no 0/O, 1/I/L; all in the QR's alphanumeric mode."""
CODE_LENGTH = 10
"""31**10 ≈ 2**49.5 codes; guessing is also rate-limited per address."""
KIOSK_CODE_TTL = 600
"""A code on the kiosk's screen works for ten minutes (the kiosk shows a new one
before that)."""
KIOSK_CODE_GRACE = 60
"""An earlier code keeps working this long after a new one is made (mid-scan)."""
KIOSK_SESSION_TTL = 15 * 60
"""A guest session from a kiosk code lasts this long (to ring, wait, knock); a call in
progress keeps it, and so does :data:`CALL_GRACE` after it (a photographed code buys
minutes, not hours: issue 22)."""
KIOSK_CODE_SESSIONS = 6
"""Sessions one kiosk code can open (a family calling together); the next scan gets the
code used up, and the kiosk shows a new code within its rotation."""
CALL_GRACE = 5 * 60
"""A session whose cookie ran out during a call lasts this long after it (a dropped
connection rejoins, the person calls back)."""


def write_secret_file(path: Path, nbytes: int = 32) -> str:
    """Return the secret in ``path``, creating it (mode 0600) on first use."""
    try:
        value = path.read_text().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    os.chmod(path, 0o600)
    return value


MIN_PASSWORD = 8
"""Characters in a master password, at least (set at first boot or in Settings)."""


def password_problem(password: str) -> str | None:
    """Why ``password`` may not be the master password, or None: the one rule for
    ``videostation set-password`` and the app's Settings."""
    if len(password) < MIN_PASSWORD:
        return f"The master password must have at least {MIN_PASSWORD} characters."
    return None


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=32,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed, base64.b64decode(digest))


@dataclass(frozen=True, slots=True)
class Session:
    role: Role
    """user, guest or kiosk."""
    room: str | None
    """The only room a guest may enter; the station room for the kiosk; None for users."""
    subject: str
    """Who: "user", "kiosk" or the guest link's jti."""
    label: str = ""
    """For guests: who the link was made for."""
    sid: str = ""
    """The session's own id (its cookie's jti): one joined peer per session."""
    expires_at: float = 0
    """Unix time the cookie expires (0: not from a cookie)."""
    issued_at: float = 0
    """Unix time the cookie was issued (by the clock of that moment)."""
    epoch: int = 0
    """For users: the password epoch the session was issued in."""
    provisional: bool = False
    """Issued while the clock was not synchronised: its wall times may be days off; the
    cookie is issued again with true ones once the clock is (:meth:`Auth.settle_session`)."""

    def may_enter(self, room_id: str) -> bool:
        return self.role == "user" or self.room == room_id


@dataclass(frozen=True, slots=True)
class IssuedLink:
    token: str
    link: GuestLink


class LoginLimiter:
    """At most ``attempts`` failed logins per client within ``window`` seconds."""

    def __init__(self, *, attempts: int, window: float) -> None:
        self.attempts = attempts
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(client, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def failures(self, client: str) -> int:
        """Attempts counted against ``client`` within the window (without counting)."""
        if client not in self._failures:
            return 0
        return len(self._recent(client, time.monotonic()))

    def check(self, client: str) -> None:
        now = time.monotonic()
        failures = self._recent(client, now)
        if len(failures) >= self.attempts:
            retry = max(1, int(failures[0] + self.window - now) + 1)
            raise TooManyAttempts(retry, f"Too many failed logins; try again in {retry} s.")

    def attempt(self, client: str) -> float:
        """Count an attempt *before* checking the secret, so parallel requests cannot
        all pass the check before the first failure is recorded. Returns a ticket for
        :meth:`succeeded`. Raises TooManyAttempts."""
        self.check(client)
        ticket = time.monotonic()
        self._recent(client, ticket).append(ticket)
        if len(self._failures) > 10_000:  # bound memory under a spray from many addresses
            for key in list(self._failures)[:5000]:
                del self._failures[key]
        return ticket

    def failed(self, client: str) -> None:
        self.attempt(client)

    def succeeded(self, client: str, ticket: float | None = None) -> None:
        """The secret was right: forget this attempt (or all of the client's)."""
        if ticket is None:
            self._failures.pop(client, None)
            return
        failures = self._failures.get(client)
        if failures is not None:
            with contextlib.suppress(ValueError):
                failures.remove(ticket)


class Auth:
    """Issues and checks every credential of the station.

    Example (a throw-away state dir and an in-memory database)::

        >>> import tempfile
        >>> from pathlib import Path
        >>> from appliance.store import Store
        >>> tmp = tempfile.TemporaryDirectory()
        >>> store = Store(Path(":memory:"))
        >>> _ = store.ensure_station_room("station", "Station")
        >>> auth = Auth(store, Path(tmp.name), station_room="station")
        >>> auth.set_password("correct horse")
        >>> auth.check_password("correct horse", client="192.0.2.1")  # or WrongPassword
        >>> cookie = auth.issue_session(Session("user", None, "user"), ttl=3600)
        >>> auth.read_session(cookie).role
        'user'
        >>> issued = auth.make_guest_link("station", ttl=600, label="Grandma")
        >>> guest = auth.redeem_guest_token(issued.token)
        >>> guest.role, guest.room, guest.label, guest.may_enter("kitchen")
        ('guest', 'station', 'Grandma', False)
        >>> store.close(); tmp.cleanup()
    """

    def __init__(
        self,
        store: Store,
        state_dir: Path,
        *,
        station_room: str,
        login_attempts: int = 5,
        login_window: float = 300,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.store = store
        self.clock = clock
        """Wall time for issuing; every expiry is judged by :meth:`Clock.remaining`."""
        self.station_room = station_room
        self._secret = write_secret_file(state_dir / "secret.key", 48)
        self.kiosk_key = write_secret_file(state_dir / "kiosk.key", 32)
        self.limiter = LoginLimiter(attempts=login_attempts, window=login_window)
        self.kiosk_limiter = LoginLimiter(attempts=login_attempts * 4, window=login_window)
        """Wrong kiosk keys: apart from the password's, so a password guesser on the
        station's own address cannot lock the screen out."""
        self.code_limiter = LoginLimiter(attempts=20, window=login_window)
        """Wrong kiosk invitation codes per address."""
        self.metrics_limiter = LoginLimiter(attempts=login_attempts, window=login_window)
        """Wrong metrics tokens per address (:mod:`.scrape`)."""
        self._in_call: dict[str, float] = {}
        """Session id → when (monotonic) it was last seen in a call: no session expires
        mid-call, and one that ran out during it lasts CALL_GRACE after."""

    # -- password ---------------------------------------------------------------------

    def set_password(self, password: str, *, hashed: str | None = None) -> None:
        """Set the master password (the first time, or again) and log every household
        session out: the hash and the new session epoch are written in one
        transaction. ``hashed``: its scrypt hash, already computed off the event loop."""
        problem = password_problem(password)
        if problem is not None:
            raise ValueError(problem)
        epoch = int(self.store.get_setting("session_epoch") or 0) + 1
        self.store.set_settings(
            {"password_hash": hashed or hash_password(password), "session_epoch": str(epoch)}
        )

    @property
    def password_set(self) -> bool:
        return self.store.get_setting("password_hash") is not None

    def check_password(self, password: str, *, client: str) -> None:
        stored = self.store.get_setting("password_hash")
        if stored is None:
            raise PasswordNotSet()
        ticket = self.limiter.attempt(client)
        if not verify_password(password, stored):
            raise WrongPassword()
        self.limiter.succeeded(client, ticket)

    def password_hash(self) -> str:
        """The stored scrypt hash, for :class:`~appliance.hashing.PasswordWorker` (count
        the attempt with ``limiter.attempt`` first)."""
        stored = self.store.get_setting("password_hash")
        if stored is None:
            raise PasswordNotSet()
        return stored

    # -- sessions ---------------------------------------------------------------------

    def _epoch(self) -> int:
        return int(self.store.get_setting("session_epoch") or 0)

    def issue_session(self, session: Session, *, ttl: int, sid: str | None = None) -> str:
        """A signed session cookie for ``session``, lasting ``ttl`` seconds; ``sid``:
        its id (default: a new one)."""
        now = int(self.clock.now())
        jti = sid or uuid.uuid4().hex
        epoch = self._epoch() if session.role == "user" else None
        self.clock.issued(f"session:{jti}", iat=now, exp=now + ttl)
        provisional = self.clock.synchronized() is False
        return self._cookie(session, jti, now, now + ttl, epoch=epoch, provisional=provisional)

    def settle_session(self, session: Session) -> tuple[str, int] | None:
        """A provisional session's cookie issued again now that the clock is
        synchronised: the same session (its id, so a logout or a revoked link still
        ends it), with the wall times its monotonic life says, so that after a restart
        it is judged by true times (a cookie issued on a clock two days behind would
        lose two days; one issued ahead would gain them). None: nothing to do yet.
        Returns the cookie and its seconds left."""
        if not session.provisional or self.clock.synchronized() is not True:
            return None
        key = f"session:{session.sid}"
        left = self.clock.remaining(key, iat=session.issued_at, exp=session.expires_at)
        if left <= 0:
            return None
        now = self.clock.now()
        exp = int(now + left)
        iat = int(exp - (session.expires_at - session.issued_at))
        epoch = session.epoch if session.role == "user" else None
        return self._cookie(session, session.sid, iat, exp, epoch=epoch), exp - int(now)

    def _cookie(
        self,
        session: Session,
        jti: str,
        iat: int,
        exp: int,
        *,
        epoch: int | None,
        provisional: bool = False,
    ) -> str:
        claims: dict[str, Any] = {
            "sub": session.subject,
            "role": session.role,
            "room": session.room,
            "label": session.label,
            "aud": SESSION_AUDIENCE,
            "iat": iat,
            "exp": exp,
            "jti": jti,
        }
        if epoch is not None:
            claims["epoch"] = epoch
        if provisional:
            claims["prov"] = 1
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def read_session(self, token: str | None) -> Session:
        if not token:
            raise NotAuthenticated()
        claims = self._decode(token, SESSION_AUDIENCE)
        role = claims.get("role")
        if role not in ("user", "guest", "kiosk"):
            raise InvalidToken("Unknown role in session.")
        room = claims.get("room")
        epoch = claims.get("epoch")
        session = Session(
            role,
            room if isinstance(room, str) else None,
            str(claims["sub"]),
            str(claims.get("label") or ""),
            sid=str(claims["jti"]),
            expires_at=float(claims["exp"]),
            issued_at=float(claims["iat"]),
            epoch=epoch if isinstance(epoch, int) else 0,
            provisional=claims.get("prov") == 1,
        )
        self.revalidate(session)
        return session

    def revalidate(self, session: Session, *, in_call: bool = False) -> None:
        """Raise if ``session`` no longer holds: logged out, expired, its guest link
        revoked, or (for users) the password changed since. Checked at the upgrade, on
        ``join`` and periodically for every open socket (``in_call``: its peer is in
        the call in progress, which an expiry never ends)."""
        if session.expires_at and session.sid:
            mono = self.clock.monotonic()
            if in_call:
                self._in_call[session.sid] = mono
                if len(self._in_call) > 1000:  # a few callers at a time: drop the oldest
                    del self._in_call[next(iter(self._in_call))]
            left = self._left(f"session:{session.sid}", session.issued_at, session.expires_at)
            last_call = self._in_call.get(session.sid)
            if left < 0 and (last_call is None or mono - last_call > CALL_GRACE):
                raise TokenExpired("Your session has expired.")
        if session.sid and self.store.session_ended(session.sid):
            raise NotAuthenticated("Your session has ended; log in again.")
        if session.role == "user" and session.epoch != self._epoch():
            raise NotAuthenticated("Your session has ended; log in again.")
        if session.role == "guest":
            link = self.store_link(session.subject)
            if link is None or link.revoked:
                raise GuestLinkRevoked()

    def session_left(self, session: Session) -> float | None:
        """Seconds ``session`` has left as :meth:`revalidate` judges it: its own life, or,
        if it was seen in a call, CALL_GRACE from then, whichever is longer. None: it
        has no expiry (the kiosk's key). What a TURN credential for it may last."""
        if not (session.expires_at and session.sid):
            return None
        left = self.clock.remaining(
            f"session:{session.sid}", iat=session.issued_at, exp=session.expires_at
        )
        last_call = self._in_call.get(session.sid)
        if last_call is not None:
            left = max(left, CALL_GRACE - (self.clock.monotonic() - last_call))
        return left

    def end_session(self, session: Session) -> None:
        if session.sid:
            # Kept past the latest time any cookie of this session could still pass: its
            # monotonic life, and one more lifetime for a copy issued on a wrong clock
            # (a provisional cookie and its settled one share the id, not the times).
            left = self.session_left(session)
            life = session.expires_at - session.issued_at if session.expires_at else 86400
            expires_at = max(session.expires_at, self.clock.now() + max(left or 0, 0)) + life
            self.store.end_session(session.sid, expires_at, prune=self.clock.synchronized() is True)

    def store_link(self, jti: str) -> GuestLink | None:
        try:
            return self.store.get_guest_link(jti)
        except LookupError:
            return None

    def kiosk_session(self, key: str) -> Session:
        if not isinstance(key, str) or not hmac.compare_digest(key, self.kiosk_key):
            raise InvalidToken("Wrong kiosk key.")
        return Session("kiosk", self.station_room, "kiosk")

    # -- guest links ------------------------------------------------------------------

    def make_guest_link(
        self, room_id: str, *, ttl: int, label: str = "", max_uses: int | None = None
    ) -> IssuedLink:
        # Short claims keep the link, and so its QR code, small enough to scan from a
        # phone at arm's length.
        now = int(self.clock.now())
        jti = secrets.token_urlsafe(12)
        claims = {
            "sub": "guest",
            "role": "guest",
            "room": room_id,
            "aud": GUEST_AUDIENCE,
            "iat": now,
            "exp": now + ttl,
            "jti": jti,
        }
        token = jwt.encode(claims, self._secret, algorithm=ALGORITHM)
        link = self.store.add_guest_link(
            jti=jti,
            room_id=room_id,
            label=label,
            created_at=now,
            expires_at=now + ttl,
            max_uses=max_uses,
            provisional=self.clock.synchronized() is False,
        )
        self.clock.issued(f"link:{jti}", iat=now, exp=now + ttl)
        return IssuedLink(token, link)

    def settle(self) -> int:
        """Once the clock is synchronised, give the links made before it was their true
        wall times (what they have left by the monotonic clock, from now): a link made
        on a clock two days behind then neither loses two days at the next restart nor,
        made ahead, gains them. Run periodically; returns how many were settled."""
        if self.clock.synchronized() is not True:
            return 0
        links = self.store.provisional_links()
        now = self.clock.now()
        for link in links:
            left = self.clock.remaining(
                f"link:{link.jti}", iat=link.created_at, exp=link.expires_at
            )
            expires_at = now + left
            self.store.settle_link(
                link.jti,
                created_at=expires_at - (link.expires_at - link.created_at),
                expires_at=expires_at,
            )
        if links:
            log.info("the clock is synchronised: %d links made before it settled", len(links))
        return len(links)

    def redeem_guest_token(self, token: str, *, room_id: str | None = None) -> Session:
        """Check a guest token and count one use; return the guest's session."""
        claims = self._decode(token, GUEST_AUDIENCE)
        if claims.get("role") != "guest" or not isinstance(claims.get("room"), str):
            raise InvalidToken("Not a guest token.")
        jti = str(claims["jti"])
        link = self.store_link(jti)
        if link is None or link.room_id != claims["room"]:
            self._check_life(f"link:{jti}", claims)  # an expired token says so first
            raise InvalidToken("Unknown guest link.")
        if link.settled:  # made on a wrong clock: its true times are the stored ones
            self._check_life(f"link:{jti}", {"iat": link.created_at, "exp": link.expires_at})
        else:
            self._check_life(f"link:{jti}", claims)
        if room_id is not None and claims["room"] != room_id:
            raise WrongRoom()
        if link.revoked:
            raise GuestLinkRevoked()
        used = self.store.use_guest_link(jti)
        if used is None:
            raise (
                GuestLinkRevoked() if self.store.get_guest_link(jti).revoked else GuestLinkUsedUp()
            )
        return Session("guest", used.room_id, jti, used.label)

    # -- kiosk invitation codes --------------------------------------------------------

    def make_kiosk_code(self, room_id: str) -> tuple[str, GuestLink]:
        """A short code for the kiosk's QR; earlier ones stop working after the grace."""
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        now = self.clock.now()
        link = self.store.add_kiosk_code(
            jti="k" + secrets.token_urlsafe(12),
            room_id=room_id,
            code=code,
            code_expires_at=now + KIOSK_CODE_TTL,
            expires_at=now + KIOSK_CODE_TTL + KIOSK_SESSION_TTL,
            grace=KIOSK_CODE_GRACE,
            max_uses=KIOSK_CODE_SESSIONS,
        )
        self.clock.issued(f"code:{code}", iat=now, exp=now + KIOSK_CODE_TTL)
        return code, link

    def redeem_kiosk_code(self, code: str, *, client: str) -> Session:
        """The guest session for a live kiosk code (case-insensitive). Wrong codes are
        limited per address; a live code is never refused because of them (another
        site's page can make wrong guesses from a household's address; a code's 49
        bits, not the limiter, keep guessers out)."""
        normal = code.strip().upper()
        link = None
        if len(normal) == CODE_LENGTH and all(c in CODE_ALPHABET for c in normal):
            found = self.store.kiosk_code_link(normal)
            # no leeway: the grace after a new code is the code's only slack
            if (
                found is not None
                and self.clock.remaining(f"code:{normal}", iat=found[0].created_at, exp=found[1])
                > 0
            ):
                link = found[0]
        if link is not None and self.store.use_guest_link(link.jti) is None:
            raise GuestLinkUsedUp("This code has been used up: scan the new one on the station.")
        if link is None:
            try:
                self.code_limiter.attempt(client)
            except TooManyAttempts as exc:
                raise TooManyAttempts(
                    exc.retry_after,
                    f"Too many wrong codes from your network; try again in {exc.retry_after} s.",
                ) from None
            raise InvalidToken("This code is not valid (any more).")
        return Session("guest", link.room_id, link.jti, "")

    def issue_code_session(self, session: Session) -> str:
        """The cookie for a phone that scanned a kiosk code, recorded so that the
        household sees it under the code and can end it alone."""
        sid = uuid.uuid4().hex
        token = self.issue_session(session, ttl=KIOSK_SESSION_TTL, sid=sid)
        self.store.add_code_session(
            sid, session.subject, expires_at=self.clock.now() + KIOSK_SESSION_TTL
        )
        return token

    def end_code_session(self, room_id: str, link_jti: str, sid: str) -> None:
        """The household ends one code session (404 unless ``sid`` is one of
        ``link_jti``'s in ``room_id``)."""
        found = self.store.code_session(room_id, sid)
        if found.link_jti != link_jti:
            raise GuestLinkNotFound(f"No session {sid!r} under {link_jti!r}.")
        self.end_session(
            Session(
                "guest",
                room_id,
                link_jti,
                sid=sid,
                expires_at=found.expires_at,
                issued_at=found.issued_at,
            )
        )

    # -- tokens -----------------------------------------------------------------------

    def _left(self, key: str, iat: float, exp: float) -> float:
        """Seconds a credential has left, by the clock's jump-proof rule (with leeway)."""
        return self.clock.remaining(key, iat=iat, exp=exp) + LEEWAY_SECONDS

    def _check_life(self, key: str, claims: dict[str, Any]) -> None:
        try:
            iat, exp = float(claims["iat"]), float(claims["exp"])
        except (TypeError, ValueError) as exc:
            raise InvalidToken("Invalid token (bad times).") from exc
        if self._left(key, iat, exp) < 0:
            raise TokenExpired()

    def _decode(self, token: str, audience: str) -> dict[str, Any]:
        if not isinstance(token, str) or len(token) > 4096:
            raise InvalidToken()
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=audience,
                # expiry by the station's jump-proof rule (_check_life), not PyJWT's wall
                # clock: a clock that went back must not lock anyone out
                options={
                    "require": ["exp", "iat", "sub", "jti", "aud"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"Invalid token ({type(exc).__name__}).") from exc
        return claims
