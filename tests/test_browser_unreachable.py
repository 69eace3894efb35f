"""Why a call does not connect, in real Chromium: the diagnosis of web/js/protocol.js and
the notice of web/js/ui/unreachable.js in both languages. (The whole path, with a
misconfigured coturn between namespaces, is tests/net/test_unreachable.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser_kit import Pages, expect

pytestmark = pytest.mark.browser

DIAGNOSE = """async () => {
  const app = document.querySelector('script[type=module]').src;
  const { diagnoseUnreachable, oneNetwork } = await import(new URL('protocol.js', app).href);
  const turn = [{ urls: ['stun:turn.example.net:3478', 'turn:turn.example.net:3478'],
                  username: 'u', credential: 'p' }];
  const stunOnly = [{ urls: 'stun:turn.example.net:3478' }];
  const turnUrl = 'turn:turn.example.net:3478?transport=udp';
  // What ICE saw (protocol.js IceEvidence): a relay was needed only when nothing got
  // through, no relay existed and the ends share no network.
  const blocked = { remote: true, answered: false, relay: false, oneNetwork: false };
  return {
    nothingConfigured: diagnoseUnreachable([], []),
    nothingConfiguredBlocked: diagnoseUnreachable([], [], blocked),
    nothingConfiguredOneNetwork: diagnoseUnreachable([], [], { ...blocked, oneNetwork: true }),
    nothingConfiguredAnswered: diagnoseUnreachable([], [], { ...blocked, answered: true }),
    nothingConfiguredNoCandidates: diagnoseUnreachable([], [], { ...blocked, remote: false }),
    nothingConfiguredRelayThere: diagnoseUnreachable([], [], { ...blocked, relay: true }),
    stunOnly: diagnoseUnreachable(stunOnly, [{ url: 'stun:turn.example.net:3478', code: 701 }],
      blocked),
    oneNetwork: [oneNetwork('192.168.1.20', '192.168.1.7'),
      oneNetwork('192.168.1.20', '192.168.2.7'), oneNetwork('10.0.0.5', '10.0.0.5'),
      oneNetwork('203.0.113.4', '203.0.113.9'),
      oneNetwork('x.local', 'x.local'), oneNetwork('fd00::2', 'fd00::2')],
    refused: diagnoseUnreachable(turn, [{ url: turnUrl, code: 701 }, { url: turnUrl, code: 401 }]),
    silent: diagnoseUnreachable(turn, [{ url: turnUrl, code: 701 }]),
    stunErrorOnly: diagnoseUnreachable(turn, [{ url: 'stun:turn.example.net:3478', code: 701 }]),
    relayWorked: diagnoseUnreachable(turn, []),
  };
}"""

NOTICE = """async (lang) => {
  const app = document.querySelector('script[type=module]').src;
  const i18n = await import(new URL('i18n.js', app).href);
  const { UnreachableNotice } = await import(new URL('ui/unreachable.js', app).href);
  await i18n.setLanguage(lang);
  const out = {};
  for (const side of ['caller', 'kiosk']) {
    const notice = new UnreachableNotice(side);
    const hiddenAtFirst = notice.el.hidden;
    notice.unreachable('p1', 'relay-refused');
    notice.unreachable('p2', 'no-relay');
    const shown = [notice.el.hidden, notice.el.dataset.why, notice.el.textContent];
    notice.settled('p2');
    const afterOne = [notice.el.dataset.why, notice.el.textContent];
    notice.settled('p1');
    out[side] = { hiddenAtFirst, shown, afterOne, hiddenAtEnd: notice.el.hidden };
  }
  return out;
}"""


def test_the_diagnosis_names_who_can_fix_it(live_station: Any, pages: Pages) -> None:
    page = pages.open(live_station.base_url + "/")
    expect(page.get_by_test_id("ask-invitation")).to_be_visible()
    assert page.evaluate(DIAGNOSE) == {
        # no TURN server: blamed only when the candidates show one was needed (issue 27)
        "nothingConfigured": "direct",
        "nothingConfiguredBlocked": "no-relay",
        "nothingConfiguredOneNetwork": "direct",
        "nothingConfiguredAnswered": "direct",
        "nothingConfiguredNoCandidates": "direct",
        "nothingConfiguredRelayThere": "direct",
        "stunOnly": "no-relay",
        # private /24 or the same address; not public neighbours, mDNS names, IPv6
        "oneNetwork": [True, False, True, False, False, True],
        "refused": "relay-refused",
        "silent": "relay-unreachable",
        "stunErrorOnly": "network",
        "relayWorked": "network",
    }


def test_the_notice_says_it_in_both_languages_until_every_connection_is_up(
    live_station: Any, pages: Pages
) -> None:
    page = pages.open(live_station.base_url + "/")
    expect(page.get_by_test_id("ask-invitation")).to_be_visible()
    en, ru = page.evaluate(NOTICE, "en"), page.evaluate(NOTICE, "ru")
    for got in (en, ru):
        for side in ("caller", "kiosk"):
            assert got[side]["hiddenAtFirst"] is True
            assert got[side]["shown"][:2] == [False, "no-relay"]  # the latest one
            assert got[side]["afterOne"][0] == "relay-refused"
            assert got[side]["hiddenAtEnd"] is True
    assert "TURN" in en["caller"]["afterOne"][1] and "refused" in en["caller"]["afterOne"][1]
    # The kiosk says it in words and points at the log, which names the config keys.
    assert "TURN" in en["kiosk"]["afterOne"][1] and "log" in en["kiosk"]["afterOne"][1]
    assert "отклонил" in ru["caller"]["afterOne"][1]
    assert "журнале станции" in ru["kiosk"]["afterOne"][1]
    assert not any("ice." in got["kiosk"]["afterOne"][1] for got in (en, ru))
    assert en["caller"]["shown"][2] != ru["caller"]["shown"][2]
