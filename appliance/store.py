"""SQLite state: rooms, guest links, call log, settings.

One file in the state dir, WAL journal, ``synchronous=FULL`` so a committed write
survives ``kill -9`` and power loss. The schema is versioned with
``PRAGMA user_version``; each entry of ``MIGRATIONS`` moves it one version up.
This module is the only one that speaks SQL.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .clock import SYSTEM_CLOCK, Clock, boot_id
from .errors import GuestLinkNotFound, RoomNotFound

MIGRATIONS: list[str] = [
    # 1: the first schema
    """
    CREATE TABLE rooms (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        is_station INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );
    CREATE TABLE guest_links (
        jti TEXT PRIMARY KEY,
        room_id TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        label TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        max_uses INTEGER,
        uses INTEGER NOT NULL DEFAULT 0,
        revoked INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX guest_links_room ON guest_links(room_id);
    CREATE TABLE calls (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        room_id TEXT NOT NULL,
        caller TEXT NOT NULL,
        started_at REAL NOT NULL,
        answered_at REAL,
        ended_at REAL,
        outcome TEXT NOT NULL DEFAULT 'ringing'
    );
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 2: sessions ended on the server (logout) before their cookie expires
    """
    CREATE TABLE ended_sessions (
        jti TEXT PRIMARY KEY,
        expires_at REAL NOT NULL
    );
    """,
    # 3: the kiosk's short invitation codes ride on hidden guest links
    """
    ALTER TABLE guest_links ADD COLUMN kiosk_code TEXT;
    ALTER TABLE guest_links ADD COLUMN code_expires_at REAL;
    CREATE UNIQUE INDEX guest_links_kiosk_code ON guest_links(kiosk_code);
    """,
    # 4: the sessions of the call in progress, so that a call killed with the service
    # (kill -9, power) resumes for them alone; emptied at every call end
    """
    CREATE TABLE resumable_calls (
        sid TEXT PRIMARY KEY,
        call_id INTEGER NOT NULL,
        room_id TEXT NOT NULL,
        seen_at REAL NOT NULL
    );
    """,
    # 5: a resume record's heartbeat on the monotonic clock of the boot that wrote it
    # (a wall-clock jump between crash and restart neither revives nor drops it)
    """
    ALTER TABLE resumable_calls ADD COLUMN boot TEXT NOT NULL DEFAULT '';
    """,
    # 6: rings refused during a caller's cooldown are counted on the row of the ring
    # that started it, not logged as rows of their own
    """
    ALTER TABLE calls ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
    """,
    # 7: links made while the clock was not synchronised get true wall times once it
    # is; the sessions a kiosk code opened, each listed and revocable on its own
    """
    ALTER TABLE guest_links ADD COLUMN provisional INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE guest_links ADD COLUMN settled INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE code_sessions (
        sid TEXT PRIMARY KEY,
        link_jti TEXT NOT NULL REFERENCES guest_links(jti) ON DELETE CASCADE,
        issued_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX code_sessions_link ON code_sessions(link_jti);
    """,
]
CALL_LOG_ROWS = 2000
"""The call log keeps this many calls, newest first (by count, not by a wall clock that
can jump; a code holder's rings cannot fill the card)."""
CALL_LOG_DAYS = 365
"""…and none older than this many days, pruned only while the clock is synchronized
(a clock that jumped ahead must not empty the log)."""
KIOSK_LINKS_KEPT = 200
"""Dead kiosk links are deleted beyond the newest this many (33 h of codes at one per
ten minutes, far past a kiosk session's 4 h): by count, not by a wall clock that can
jump."""


@dataclass(frozen=True, slots=True)
class Room:
    id: str
    """URL-safe identifier."""
    name: str
    """Human name."""
    is_station: bool
    """True for the station's own room (joining it rings the station)."""
    created_at: float
    """Unix time."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "is_station": self.is_station,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class GuestLink:
    jti: str
    """The token's unique id."""
    room_id: str
    """The only room the link admits to."""
    label: str
    """Who the link is for, e.g. "Grandma"."""
    created_at: float
    """Unix time."""
    expires_at: float
    """Unix time after which the link no longer works."""
    max_uses: int | None
    """How many times it may be exchanged for a session; None: unlimited."""
    uses: int
    """How many times it has been."""
    revoked: bool
    """Revoked links never work again."""
    kiosk_code: bool = False
    """It rides under a code the kiosk showed: its uses are the sessions of the phones
    that scanned it, listed for the household to revoke."""
    settled: bool = False
    """Made on a clock not synchronised, its times were set right since: they, not the
    token's, say how long it lives."""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "kiosk-code" if self.kiosk_code else "link",
            "jti": self.jti,
            "room_id": self.room_id,
            "label": self.label,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "max_uses": self.max_uses,
            "uses": self.uses,
            "revoked": self.revoked,
        }


@dataclass(frozen=True, slots=True)
class CodeSession:
    """A phone's session opened with a kiosk code."""

    sid: str
    """The session's id (its cookie's jti)."""
    link_jti: str
    """The kiosk code's link."""
    issued_at: float
    """Unix time of the scan."""
    expires_at: float
    """Unix time its cookie expires (a call in progress keeps it longer)."""
    ended: bool
    """Ended by its holder or revoked by the household."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.sid,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "ended": self.ended,
        }


@dataclass(frozen=True, slots=True)
class ResumableCall:
    """The answered call a crash interrupted, as found at start-up."""

    call_id: int
    """Its row in the call log."""
    room_id: str
    """The station room it ran in."""
    sids: frozenset[str]
    """The sessions that were in it (answered or let in): the only ones it resumes for."""


@dataclass(frozen=True, slots=True)
class CallRecord:
    id: int
    room_id: str
    caller: str
    started_at: float
    answered_at: float | None
    ended_at: float | None
    outcome: str
    """ringing | answered | missed | declined."""
    attempts: int = 1
    """Rings it stands for: 1, plus those refused while the caller had to wait."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "room_id": self.room_id,
            "caller": self.caller,
            "started_at": self.started_at,
            "answered_at": self.answered_at,
            "ended_at": self.ended_at,
            "outcome": self.outcome,
            "attempts": self.attempts,
        }


class Store:
    """The station's database. Calls are short and synchronous (SQLite on local
    flash answers in well under a millisecond); one lock serialises writers.

    Example::

        store = Store(Path("/var/lib/videostation/station.db"))
        room = store.create_room("kitchen", "Kitchen")
    """

    def __init__(self, path: Path, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.path = path
        self.clock = clock
        """Wall time for the rows' timestamps."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        if str(path) != ":memory:":
            # it holds the master password's hash: the owner's alone (its -wal and -shm
            # files take the same mode); another user's file is left as it is
            with contextlib.suppress(OSError):
                os.chmod(path, 0o600)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._migrate()

    # -- plumbing ---------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._lock:
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                self._db.executescript(
                    f"BEGIN IMMEDIATE; {script}; PRAGMA user_version={number}; COMMIT;"
                )

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def healthy(self) -> bool:
        try:
            with self._lock:
                self._db.execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    def write_problem(self) -> str | None:
        """Try a tiny write (rolled back): None if the database can write, else why not
        (disk full, read-only card, locked)."""
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.execute(
                        "INSERT OR REPLACE INTO settings(key, value) VALUES ('health_probe', ?)",
                        (str(self.clock.now()),),
                    )
                finally:
                    self._db.execute("ROLLBACK")
        except sqlite3.Error as exc:
            return str(exc)
        return None

    def close_open_calls(self) -> int:
        """At start-up: calls a crash left open are closed (ringing ones as missed)."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE calls SET ended_at = ?,"
                " outcome = CASE WHEN outcome = 'ringing' THEN 'missed' ELSE outcome END"
                " WHERE ended_at IS NULL",
                (self.clock.now(),),
            )
            return int(cur.rowcount)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- rooms ------------------------------------------------------------------------

    @staticmethod
    def _room(row: sqlite3.Row) -> Room:
        return Room(row["id"], row["name"], bool(row["is_station"]), row["created_at"])

    def ensure_station_room(self, room_id: str, name: str) -> Room:
        with self._tx() as db:
            db.execute(
                "INSERT INTO rooms(id, name, is_station, created_at) VALUES (?, ?, 1, ?)"
                " ON CONFLICT(id) DO UPDATE SET is_station = 1",
                (room_id, name, self.clock.now()),
            )
            db.execute("UPDATE rooms SET is_station = 0 WHERE id != ?", (room_id,))
        return self.get_room(room_id)

    def create_room(self, room_id: str, name: str) -> Room:
        with self._tx() as db:
            db.execute(
                "INSERT INTO rooms(id, name, is_station, created_at) VALUES (?, ?, 0, ?)",
                (room_id, name, self.clock.now()),
            )
        return self.get_room(room_id)

    def get_room(self, room_id: str) -> Room:
        with self._lock:
            row = self._db.execute("SELECT * FROM rooms WHERE id = ?", (room_id,)).fetchone()
        if row is None:
            raise RoomNotFound(f"No room {room_id!r}.")
        return self._room(row)

    def list_rooms(self) -> list[Room]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM rooms ORDER BY is_station DESC, created_at"
            ).fetchall()
        return [self._room(r) for r in rows]

    def delete_room(self, room_id: str) -> None:
        with self._tx() as db:
            if db.execute("DELETE FROM rooms WHERE id = ?", (room_id,)).rowcount == 0:
                raise RoomNotFound(f"No room {room_id!r}.")

    # -- guest links ------------------------------------------------------------------

    @staticmethod
    def _link(row: sqlite3.Row) -> GuestLink:
        return GuestLink(
            row["jti"],
            row["room_id"],
            row["label"],
            row["created_at"],
            row["expires_at"],
            row["max_uses"],
            row["uses"],
            bool(row["revoked"]),
            row["kiosk_code"] is not None,
            bool(row["settled"]),
        )

    def add_guest_link(
        self,
        *,
        jti: str,
        room_id: str,
        label: str,
        created_at: float,
        expires_at: float,
        max_uses: int | None,
        provisional: bool = False,
    ) -> GuestLink:
        """``provisional``: made on a clock not synchronised (see :meth:`settle_link`)."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO guest_links(jti, room_id, label, created_at, expires_at, max_uses,"
                " provisional) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (jti, room_id, label, created_at, expires_at, max_uses, int(provisional)),
            )
        return self.get_guest_link(jti)

    def provisional_links(self) -> list[GuestLink]:
        """Links made while the clock was not synchronised, not yet settled."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM guest_links WHERE provisional = 1 AND revoked = 0"
            ).fetchall()
        return [self._link(r) for r in rows]

    def settle_link(self, jti: str, *, created_at: float, expires_at: float) -> None:
        """The clock is synchronised now: the link's true wall times (what survives a
        restart); the signed token's own times are not used for its life any more."""
        with self._tx() as db:
            db.execute(
                "UPDATE guest_links SET created_at = ?, expires_at = ?, provisional = 0,"
                " settled = 1"
                " WHERE jti = ?",
                (created_at, expires_at, jti),
            )

    # -- sessions opened with a kiosk code ---------------------------------------------

    def add_code_session(self, sid: str, link_jti: str, *, expires_at: float) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO code_sessions(sid, link_jti, issued_at, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (sid, link_jti, self.clock.now(), expires_at),
            )

    def code_sessions(self, room_id: str) -> dict[str, list[CodeSession]]:
        """The room's code sessions by kiosk link, oldest first, with whether each has
        been ended (a logout or the household's revocation)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT c.*, e.jti IS NOT NULL AS ended FROM code_sessions c"
                " JOIN guest_links g ON g.jti = c.link_jti"
                " LEFT JOIN ended_sessions e ON e.jti = c.sid"
                " WHERE g.room_id = ? ORDER BY c.issued_at",
                (room_id,),
            ).fetchall()
        found: dict[str, list[CodeSession]] = {}
        for r in rows:
            found.setdefault(r["link_jti"], []).append(
                CodeSession(
                    r["sid"], r["link_jti"], r["issued_at"], r["expires_at"], bool(r["ended"])
                )
            )
        return found

    def code_session(self, room_id: str, sid: str) -> CodeSession:
        for sessions in self.code_sessions(room_id).values():
            for session in sessions:
                if session.sid == sid:
                    return session
        raise GuestLinkNotFound(f"No session {sid!r} from a code of room {room_id!r}.")

    def get_guest_link(self, jti: str) -> GuestLink:
        with self._lock:
            row = self._db.execute("SELECT * FROM guest_links WHERE jti = ?", (jti,)).fetchone()
        if row is None:
            raise GuestLinkNotFound(f"No guest link {jti!r}.")
        return self._link(row)

    def list_guest_links(self, room_id: str) -> list[GuestLink]:
        """The room's links, and the kiosk codes someone scanned (each use is a phone's
        session; revoking the code ends them all)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM guest_links WHERE room_id = ? AND (kiosk_code IS NULL OR uses > 0)"
                " ORDER BY created_at",
                (room_id,),
            ).fetchall()
        return [self._link(r) for r in rows]

    def add_kiosk_code(
        self,
        *,
        jti: str,
        room_id: str,
        code: str,
        code_expires_at: float,
        expires_at: float,
        grace: float,
        max_uses: int | None = None,
    ) -> GuestLink:
        """A new kiosk invitation: earlier codes stop working ``grace`` seconds from now,
        and kiosk links nobody can use any more are deleted (no pile-up per kiosk start)."""
        now = self.clock.now()
        with self._tx() as db:
            db.execute(
                "DELETE FROM guest_links WHERE kiosk_code IS NOT NULL AND expires_at < ? AND jti"
                " NOT IN (SELECT jti FROM guest_links WHERE kiosk_code IS NOT NULL"
                " ORDER BY created_at DESC LIMIT ?)",
                (now, KIOSK_LINKS_KEPT),
            )
            db.execute(
                "UPDATE guest_links SET code_expires_at = MIN(code_expires_at, ?)"
                " WHERE kiosk_code IS NOT NULL AND room_id = ?",
                (now + grace, room_id),
            )
            db.execute(
                "INSERT INTO guest_links(jti, room_id, label, created_at, expires_at, max_uses,"
                " kiosk_code, code_expires_at) VALUES (?, ?, '', ?, ?, ?, ?, ?)",
                (jti, room_id, now, expires_at, max_uses, code, code_expires_at),
            )
        return self.get_guest_link(jti)

    def kiosk_code_link(self, code: str) -> tuple[GuestLink, float] | None:
        """The kiosk link for ``code`` and when the code stops working (None: unknown or
        revoked). Whether it still works is the clock's call (Auth.redeem_kiosk_code)."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM guest_links WHERE kiosk_code = ? AND revoked = 0", (code,)
            ).fetchone()
        if row is None or row["code_expires_at"] is None:
            return None
        return self._link(row), float(row["code_expires_at"])

    def revoke_guest_link(self, room_id: str, jti: str) -> GuestLink:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE guest_links SET revoked = 1 WHERE jti = ? AND room_id = ?", (jti, room_id)
            )
            if cur.rowcount == 0:
                raise GuestLinkNotFound(f"No guest link {jti!r} in room {room_id!r}.")
        return self.get_guest_link(jti)

    def use_guest_link(self, jti: str) -> GuestLink | None:
        """Count one use if the link is usable; None if it is revoked or used up.
        Check and increment happen in one statement, so two phones racing for the
        last use cannot both win."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE guest_links SET uses = uses + 1 WHERE jti = ? AND revoked = 0"
                " AND (max_uses IS NULL OR uses < max_uses)",
                (jti,),
            )
            used = cur.rowcount == 1
        return self.get_guest_link(jti) if used else None

    # -- call log ---------------------------------------------------------------------

    def call_started(self, room_id: str, caller: str, *, at: float | None = None) -> int:
        """A call rings. ``at`` (and in the other ``call_*``): its wall time, which the
        call machine derives from the monotonic clock, so that a call's length in the
        log survives a jump of the wall clock."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO calls(room_id, caller, started_at) VALUES (?, ?, ?)",
                (room_id, caller, self.clock.now() if at is None else at),
            )
            call_id = int(cur.lastrowid or 0)
            db.execute("DELETE FROM calls WHERE id <= ?", (call_id - CALL_LOG_ROWS,))
            if self.clock.synchronized() is True:
                db.execute(
                    "DELETE FROM calls WHERE started_at < ? AND ended_at IS NOT NULL",
                    (self.clock.now() - CALL_LOG_DAYS * 86400,),
                )
            return call_id

    def call_answered(self, call_id: int, *, at: float | None = None) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE calls SET answered_at = ?, outcome = 'answered' WHERE id = ?",
                (self.clock.now() if at is None else at, call_id),
            )

    def call_ended(
        self, call_id: int, outcome: str | None = None, *, at: float | None = None
    ) -> None:
        ended = self.clock.now() if at is None else at
        with self._tx() as db:
            if outcome is None:
                db.execute("UPDATE calls SET ended_at = ? WHERE id = ?", (ended, call_id))
            else:
                db.execute(
                    "UPDATE calls SET ended_at = ?, outcome = ? WHERE id = ?",
                    (ended, outcome, call_id),
                )

    def call_attempted(self, call_id: int) -> None:
        """Another ring by the same caller while they had to wait: counted on its row."""
        with self._tx() as db:
            db.execute("UPDATE calls SET attempts = attempts + 1 WHERE id = ?", (call_id,))

    def call_reopened(self, call_id: int) -> None:
        """A call that a crash interrupted resumed: its row is open again."""
        with self._tx() as db:
            db.execute(
                "UPDATE calls SET ended_at = NULL WHERE id = ? AND outcome = 'answered'",
                (call_id,),
            )

    # -- calls that may resume after a crash -------------------------------------------

    def call_resumable(self, call_id: int, room_id: str, sid: str) -> None:
        """``sid`` is in the answered call ``call_id`` (answered or let in)."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO resumable_calls(sid, call_id, room_id, seen_at, boot)"
                " VALUES (?, ?, ?, ?, ?)",
                (sid, call_id, room_id, self.clock.monotonic(), boot_id()),
            )

    def call_still_running(self, call_id: int) -> None:
        """Heartbeat of the call in progress: its record stays fresh."""
        with self._tx() as db:
            db.execute(
                "UPDATE resumable_calls SET seen_at = ?, boot = ? WHERE call_id = ?",
                (self.clock.monotonic(), boot_id(), call_id),
            )

    def call_not_resumable(self, sid: str | None = None) -> None:
        """The call ended (every record goes), or ``sid`` left it."""
        with self._tx() as db:
            if sid is None:
                db.execute("DELETE FROM resumable_calls")
            else:
                db.execute("DELETE FROM resumable_calls WHERE sid = ?", (sid,))

    def take_resumable(self, *, max_age: float) -> ResumableCall | None:
        """At start-up: the interrupted call, consumed (deleted) in the same transaction,
        so it resumes at most once. None if there is none, or if its last heartbeat is
        older than ``max_age`` seconds on this boot's monotonic clock (or from another
        boot). Raises if the record cannot be deleted: then it must not be used."""
        now = self.clock.monotonic()
        with self._tx() as db:
            rows = db.execute("SELECT * FROM resumable_calls").fetchall()
            db.execute("DELETE FROM resumable_calls")
        if not rows:
            return None
        call_ids = {int(r["call_id"]) for r in rows}
        rooms = {str(r["room_id"]) for r in rows}
        newest = max(float(r["seen_at"]) for r in rows)
        boots = {str(r["boot"]) for r in rows}
        if boots != {boot_id()} or len(call_ids) != 1 or len(rooms) != 1:
            return None
        if not 0 <= now - newest <= max_age:
            return None
        return ResumableCall(call_ids.pop(), rooms.pop(), frozenset(str(r["sid"]) for r in rows))

    def list_calls(self, limit: int = 50) -> list[CallRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM calls ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [
            CallRecord(
                r["id"],
                r["room_id"],
                r["caller"],
                r["started_at"],
                r["answered_at"],
                r["ended_at"],
                r["outcome"],
                r["attempts"],
            )
            for r in rows
        ]

    def calls_since(self, since: float) -> tuple[int, float | None]:
        """Missed calls that started at or after ``since`` (Unix time), and when the
        newest call started (None: no call yet)."""
        with self._lock:
            row = self._db.execute(
                "SELECT SUM(outcome = 'missed' AND started_at >= ?) AS missed,"
                " MAX(started_at) AS newest FROM calls",
                (since,),
            ).fetchone()
        return int(row["missed"] or 0), row["newest"]

    def count_calls(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT outcome, COUNT(*) AS n FROM calls GROUP BY outcome"
            ).fetchall()
        return {r["outcome"]: int(r["n"]) for r in rows}

    # -- sessions ---------------------------------------------------------------------

    def end_session(self, jti: str, expires_at: float, *, prune: bool = False) -> None:
        """Logout: the session's cookie stops working now. ``prune`` (only on a
        synchronised clock: a clock that jumped ahead and comes back would revive a
        cookie whose revocation was pruned) deletes rows a day past their expiry."""
        with self._tx() as db:
            if prune:
                db.execute(
                    "DELETE FROM ended_sessions WHERE expires_at < ?", (self.clock.now() - 86400,)
                )
            db.execute(
                "INSERT OR REPLACE INTO ended_sessions(jti, expires_at) VALUES (?, ?)",
                (jti, expires_at),
            )

    def session_ended(self, jti: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM ended_sessions WHERE jti = ?", (jti,)).fetchone()
        return row is not None

    # -- settings ---------------------------------------------------------------------

    def get_setting(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def set_setting(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO settings(key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def set_settings(self, values: dict[str, str]) -> None:
        """Several settings in one transaction: all are written, or none."""
        with self._tx() as db:
            db.executemany(
                "INSERT INTO settings(key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                list(values.items()),
            )

    def delete_setting(self, key: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM settings WHERE key = ?", (key,))
