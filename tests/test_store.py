"""SQLite state: schema versions, and nothing committed lost on kill -9."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

from appliance.store import MIGRATIONS, Store

from .conftest import http_json, login_cookie, start_live


def test_a_new_database_is_at_the_latest_schema_in_wal_mode(tmp_path: Path) -> None:
    store = Store(tmp_path / "station.db")
    assert store.schema_version == len(MIGRATIONS)
    mode = sqlite3.connect(tmp_path / "station.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    store.close()
    # opening again migrates nothing and keeps data
    again = Store(tmp_path / "station.db")
    assert again.schema_version == len(MIGRATIONS)


def test_use_guest_link_counts_atomically(tmp_path: Path) -> None:
    store = Store(tmp_path / "station.db")
    store.ensure_station_room("station", "Station")
    store.add_guest_link(
        jti="j", room_id="station", label="", created_at=0, expires_at=9e9, max_uses=2
    )
    assert store.use_guest_link("j") is not None
    assert store.use_guest_link("j") is not None
    assert store.use_guest_link("j") is None
    assert store.get_guest_link("j").uses == 2


def test_nothing_committed_is_lost_on_kill_9(tmp_path: Path) -> None:
    live = start_live(tmp_path)
    try:
        session = login_cookie(live.base_url)
        _, room, _ = http_json(f"{live.base_url}/api/rooms", {"name": "Porch"}, cookie=session)
        _, link, _ = http_json(
            f"{live.base_url}/api/rooms/{room['id']}/generate-guest-link",
            {"label": "Neighbour"},
            cookie=session,
        )
    finally:
        live.proc.send_signal(signal.SIGKILL)
        live.proc.wait()
    store = Store(live.state_dir / "station.db")
    assert [r.name for r in store.list_rooms()] == ["Video Station", "Porch"]
    assert store.get_guest_link(str(link["jti"])).label == "Neighbour"
