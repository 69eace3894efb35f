// "Why does this call not connect?" on the caller's page and on the kiosk: a connection
// that does not come up gets the diagnosis of protocol.js (no relay server where one
// was needed, only a direct connection tried, the relay refused our credentials, the
// relay does not answer, or the network) in words that say who can fix it, instead of
// a silent black picture. The kiosk also names the callers the station's own
// connection could not reach (the call object's `unreached`): "Maria: no picture from
// the station". It is the `unreached` notice of ui/notices.js.
import { h } from '../dom.js';
import { t } from '../i18n.js';
import { STATION_PEER } from '../protocol.js';

/** @typedef {import('../protocol.js').Unreachable} Unreachable */

/** @type {Record<'caller'|'kiosk', Record<Unreachable, (station: boolean) => string>>} */
const TEXT = {
  caller: {
    'no-relay': () => t('net.noRelay'),
    // Only a direct connection was tried, and nothing shows a relay would have helped.
    direct: (station) => t(station ? 'net.stationDirect' : 'net.direct'),
    'relay-refused': () => t('net.relayRefused'),
    'relay-unreachable': () => t('net.relayUnreachable'),
    network: (station) => t(station ? 'net.stationNetwork' : 'net.network'),
  },
  kiosk: {
    'no-relay': () => t('kiosk.netNoRelay'),
    direct: () => t('kiosk.netDirect'),
    'relay-refused': () => t('kiosk.netRelayRefused'),
    'relay-unreachable': () => t('kiosk.netRelayUnreachable'),
    network: () => t('kiosk.netNetwork'),
  },
};

export class UnreachableNotice {
  /** @param {'caller'|'kiosk'} side  whose words: the caller's page or the station's screen */
  constructor(side) {
    this.side = side;
    this.el = h('div', { class: 'net-notice', role: 'alert', 'data-testid': 'net-notice', hidden: true });
    /** @type {Map<string, Unreachable>} connections that are not up, and why */
    this.down = new Map();
    /** @type {string[]} the kiosk: the callers the station's connection does not reach */
    this.unreachedNames = [];
  }

  /** A connection is not up (SignalingClient.onpeerunreachable). */
  unreachable(/** @type {string} */ peerId, /** @type {Unreachable} */ why) {
    this.down.set(peerId, why);
    this.render();
  }

  /** A connection came up or went away: it no longer needs explaining. */
  settled(/** @type {string} */ peerId) {
    if (this.down.delete(peerId)) this.render();
  }

  /**
   * The kiosk: the callers (by name) whose connection from the station failed; an
   * empty list once every one is up again.
   * @param {string[]} names
   */
  unreached(names) {
    if (names.join('\n') === this.unreachedNames.join('\n')) return;
    this.unreachedNames = names;
    this.render();
  }

  clear() {
    this.down.clear();
    this.unreachedNames = [];
    this.render();
  }

  render() {
    const entry = [...this.down.entries()].at(-1);
    const names = this.unreachedNames;
    this.el.hidden = !entry && !names.length;
    // What the station could not send comes first: it is what Grandma can see is missing.
    if (names.length) {
      this.el.dataset.why = 'station-unreached';
      this.el.textContent = names.map((name) => t('kiosk.noPictureFromStation', { name })).join(' · ');
      return;
    }
    this.el.dataset.why = entry ? entry[1] : '';
    this.el.textContent = entry ? TEXT[this.side][entry[1]](entry[0] === STATION_PEER) : '';
  }
}
