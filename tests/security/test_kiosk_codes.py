"""The kiosk's invitation (issue 7, item 9): a short code that lives minutes, rotates,
is not a household link, and cannot be guessed."""

from __future__ import annotations

import math
import time

import pytest
import zxingcpp
from PIL import Image

from appliance import auth as auth_mod
from appliance import store as store_mod
from appliance.appkeys import AUTH, STORE

from ..conftest import ServiceHarness
from ..helpers import connect


def decode_qr(data_url: str) -> str:
    import base64
    import io

    png = base64.b64decode(data_url.split(",", 1)[1])
    (result,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    return str(result.text)


async def kiosk_link(station: ServiceHarness) -> dict:
    kiosk = await station.kiosk()
    resp = await kiosk.post("/api/kiosk/guest-link")
    assert resp.status == 201
    return dict(await resp.json())


async def test_the_kiosk_code_is_short_and_opens_the_room(station: ServiceHarness) -> None:
    link = await kiosk_link(station)
    assert set(link) == {
        "guest_url",
        "guest_qr_code",
        "guest_token",
        "expires_at",
        "jti",
        "label",
        "max_uses",
    }
    code = link["guest_url"].rsplit("/j/", 1)[1]
    assert 8 <= len(code) <= 10 and set(code) <= set(auth_mod.CODE_ALPHABET)
    assert len(code) * math.log2(len(auth_mod.CODE_ALPHABET)) >= 40
    assert decode_qr(link["guest_qr_code"]) == link["guest_url"].upper().replace("/j/", "/J/")
    assert link["expires_at"] - time.time() <= auth_mod.KIOSK_CODE_TTL + 5
    # scanning: a guest session cookie and a redirect to the room (lower case works too)
    phone = await station.client()
    resp = await phone.get(f"/j/{code.lower()}", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/#/room/station"
    assert code not in resp.headers["Location"]
    me = await (await phone.get("/api/auth/me")).json()
    assert me["role"] == "guest" and me["room"] == "station"
    ws = await connect(phone)
    assert (await ws.join("station", "Neighbour"))["role"] == "guest"
    # the household sees it as a scanned code (its uses: the phones' sessions)
    user = await station.user()
    links = (await (await user.get("/api/rooms/station/guest-links")).json())["guest_links"]
    assert [(link["kind"], link["uses"]) for link in links] == [("kiosk-code", 1)]


async def test_codes_rotate_and_old_ones_stop_after_the_grace(
    station: ServiceHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth_mod, "KIOSK_CODE_GRACE", 0.5)
    first = (await kiosk_link(station))["guest_url"].rsplit("/", 1)[1]
    second = (await kiosk_link(station))["guest_url"].rsplit("/", 1)[1]
    phone = await station.client()
    assert (await phone.get(f"/j/{first}", allow_redirects=False)).status == 303  # grace
    time.sleep(0.6)
    stale = await (await station.client()).get(f"/j/{first}", allow_redirects=False)
    assert stale.status == 303 and stale.headers["Location"] == "/#/"
    assert "vs_session" not in stale.cookies
    fresh = await (await station.client()).get(f"/j/{second}", allow_redirects=False)
    assert fresh.headers["Location"] == "/#/room/station"
    # an hour later (the code's lifetime passed) a photo of the screen opens nothing
    store = station.app[STORE]
    store._db.execute("UPDATE guest_links SET code_expires_at = 0")
    late = await (await station.client()).get(f"/j/{second}", allow_redirects=False)
    assert late.headers["Location"] == "/#/"


async def test_kiosk_starts_do_not_pile_up_links(
    station: ServiceHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # dead links go by count beyond the newest KIOSK_LINKS_KEPT (a wall clock that jumps
    # ahead must not delete the links of sessions still running)
    monkeypatch.setattr(store_mod, "KIOSK_LINKS_KEPT", 2)
    store = station.app[STORE]
    for _ in range(5):
        await kiosk_link(station)
    store._db.execute("UPDATE guest_links SET expires_at = 0")
    await kiosk_link(station)
    count = store._db.execute("SELECT COUNT(*) FROM guest_links").fetchone()[0]
    assert count == 3  # the two newest dead ones and the new one


async def test_guessing_codes_is_rate_limited(station: ServiceHarness) -> None:
    await kiosk_link(station)
    attacker = await station.client()
    statuses = []
    for i in range(25):
        resp = await attacker.get(f"/j/ABCDEFGH{i:02d}", allow_redirects=False)
        statuses.append(resp.status)
    assert statuses[:20] == [303] * 20 and set(statuses[20:]) == {429}
    assert station.app[AUTH].code_limiter.attempts == 20
    # the 429 speaks of codes, and a live code still opens from that address
    refused = await attacker.get("/j/ABCDEFGH99", allow_redirects=False)
    assert "wrong codes" in (await refused.json())["error"]["message"]
    code = (await kiosk_link(station))["guest_token"]
    scan = await (await station.client()).get(f"/j/{code}", allow_redirects=False)
    assert scan.status == 303 and scan.headers["Location"] == "/#/room/station"


async def test_only_a_page_load_acts_on_a_code(station: ServiceHarness) -> None:
    """Another site's page can point images, scripts or no-cors fetches at /j/…: refused
    (403) and not counted; a signed-in household member's session is never replaced."""
    for dest, mode in (("image", "no-cors"), ("script", "no-cors"), ("empty", "no-cors")):
        for i in range(25):
            resp = await (await station.client()).get(
                f"/j/ABCDEFGH{i:02d}",
                headers={"Sec-Fetch-Dest": dest, "Sec-Fetch-Mode": mode},
                allow_redirects=False,
            )
            assert resp.status == 403, (dest, resp.status)
    code = (await kiosk_link(station))["guest_token"]
    user = await station.user()
    before = user.session.cookie_jar.filter_cookies(user.make_url("/"))["vs_session"].value
    resp = await user.get(f"/j/{code}", allow_redirects=False)
    assert resp.headers["Location"] == "/#/room/station"
    assert "vs_session" not in resp.cookies  # the household session stays
    assert user.session.cookie_jar.filter_cookies(user.make_url("/"))["vs_session"].value == before
    # from another site: to the station's page, which trades the code itself
    phone = await station.client()
    resp = await phone.get(
        f"/j/{code}", headers={"Sec-Fetch-Site": "cross-site"}, allow_redirects=False
    )
    assert resp.headers["Location"] == f"/#/room/station?code={code}"
    assert "vs_session" not in resp.cookies
    traded = await phone.post("/api/auth/code", json={"code": code})
    assert traded.status == 200 and (await traded.json())["role"] == "guest"
    kept = await user.post("/api/auth/code", json={"code": code})
    assert (await kept.json())["role"] == "user" and "vs_session" not in kept.cookies
