// "Why does this call not connect?" on the caller's page and on the kiosk: a connection
// that does not come up gets the diagnosis of protocol.js (no relay server, the relay
// refused our credentials, the relay does not answer, or the network) in words that
// say who can fix it, instead of a silent black picture.
import { h } from '../dom.js';
import { t } from '../i18n.js';

/** @typedef {import('../protocol.js').Unreachable} Unreachable */

/** @type {Record<'caller'|'kiosk', Record<Unreachable, () => string>>} */
const TEXT = {
  caller: {
    'no-relay': () => t('net.noRelay'),
    'relay-refused': () => t('net.relayRefused'),
    'relay-unreachable': () => t('net.relayUnreachable'),
    network: () => t('net.network'),
  },
  kiosk: {
    'no-relay': () => t('kiosk.netNoRelay'),
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

  clear() {
    this.down.clear();
    this.render();
  }

  render() {
    const why = [...this.down.values()].at(-1);
    this.el.hidden = !why;
    this.el.dataset.why = why || '';
    this.el.textContent = why ? TEXT[this.side][why]() : '';
  }
}
