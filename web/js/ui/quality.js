// Connection quality: three bars from the call's getStats(), details on a tap, and a
// "weak connection" notice that is honest about it (issue 24, item 2):
// - judged on what this page actually receives (packet loss, frozen video, audio jitter,
//   the round trip), never on the bitrate a sender chose (a camera turned off, the first
//   seconds of a call, a station sending its low rung are not a weak link);
// - only while it lasts (WEAK_AFTER polls in a row; gone after CLEAR_AFTER good ones);
// - worded for who sees it: "Your connection is weak" only where the evidence points at
//   this device (what it sends is lost too); otherwise the link is named, or neutral.
//   The kiosk never tells Grandma that *her* connection is weak.
// DOM here, the judgements in the pure `grade()`, `blame()` and `Lasting`.
import { h } from '../dom.js';
import { formatNumber, formatPercent, t } from '../i18n.js';

/** How often (ms) the statistics are read. */
const POLL_MS = 2000;
/** Weak polls in a row before the notice shows (6 s), good ones before it goes (4 s). */
export const WEAK_AFTER = 3;
export const CLEAR_AFTER = 2;

/**
 * @typedef {{rtt: number|null, loss: number, frozen: number, jitter: number,
 *   kbps: number, sendLoss: number|null}} Sample
 *   rtt in seconds (null: unknown); loss 0..1 of the packets received in the last
 *   interval; frozen 0..1, the share of the interval the received video stood still
 *   (Chromium's freeze definition); jitter in seconds (received audio); kbps received
 *   (shown, never judged); sendLoss 0..1, what the far ends report losing of what this
 *   page sends (null: unknown)
 */

/**
 * 3 good, 2 fair, 1 weak: from what is received, not from the bitrate.
 * @param {Sample} s
 * @returns {1|2|3}
 */
export function grade(s) {
  const rtt = s.rtt ?? 0;
  if (rtt > 0.6 || s.loss > 0.08 || s.frozen > 0.25 || s.jitter > 0.1) return 1;
  if (rtt > 0.3 || s.loss > 0.02 || s.frozen > 0.05 || s.jitter > 0.05) return 2;
  return 3;
}

/**
 * Whose link a weak grade points at: 'mine' when what this page sends is lost as well
 * (both directions of its own link), else 'theirs' (the sender's link, or one this page
 * cannot tell from its own: it says so without blaming anyone).
 * @param {Sample} s
 * @returns {'mine'|'theirs'}
 */
export function blame(s) {
  return (s.sendLoss ?? 0) > 0.05 ? 'mine' : 'theirs';
}

/** A verdict that has to last: on after `on` weak polls in a row, off after `off` good ones. */
export class Lasting {
  constructor(on = WEAK_AFTER, off = CLEAR_AFTER) {
    this.on = on;
    this.off = off;
    this.weak = false;
    this.run = 0;
  }

  /** @param {boolean} weak  this poll's verdict @returns {boolean} whether it holds now */
  push(weak) {
    this.run = weak === this.weak ? 0 : this.run + 1;
    if (this.run >= (this.weak ? this.off : this.on)) {
      this.weak = weak;
      this.run = 0;
    }
    return this.weak;
  }
}

/**
 * @typedef {{pc: RTCPeerConnection, name: string}} Link  a connection and who is at its other end
 */

export class QualityMeter {
  /**
   * @param {() => Link[]} connections  the call's connections now
   * @param {{screen?: boolean}} [opts]  screen: the station's kiosk (never "your connection")
   */
  constructor(connections, opts = {}) {
    this.connections = connections;
    this.screen = !!opts.screen;
    /** @type {Map<RTCPeerConnection, {bytes: number, lost: number, received: number, frozen: number, sent: number, sentLost: number, at: number}>} */
    this.last = new Map();
    this.lasting = new Lasting();
    /** @type {ReturnType<typeof setInterval>|null} */
    this.timer = null;
    this.bars = [1, 2, 3].map((n) => h('span', { class: `bar bar-${n}` }));
    this.details = h('span', { class: 'quality-details', 'data-testid': 'quality-details', hidden: true });
    this.el = h('button', { class: 'quality', type: 'button', 'data-testid': 'quality', 'data-level': '0', hidden: true },
      h('span', { class: 'bars', 'aria-hidden': 'true' }, this.bars), this.details);
    this.el.addEventListener('click', (ev) => {
      ev.stopPropagation();
      this.details.hidden = !this.details.hidden;
    });
    this.weak = h('div', { class: 'weak-note', role: 'status', 'data-testid': 'weak-connection', hidden: true });
  }

  start() {
    if (this.timer) return;
    this.timer = setInterval(() => { void this.poll(); }, POLL_MS);
    void this.poll();
  }

  stop() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.last.clear();
    this.lasting = new Lasting();
    this.el.hidden = true;
    this.weak.hidden = true;
  }

  async poll() {
    const links = this.connections().filter((l) => l.pc.connectionState === 'connected');
    if (!links.length) return;
    /** @type {Sample} */
    const total = { rtt: null, loss: 0, frozen: 0, jitter: 0, kbps: 0, sendLoss: null };
    /** @type {string[]} names of the links that are weak on their own */
    const weakFrom = [];
    let lost = 0;
    let received = 0;
    for (const link of links) {
      const s = await this.measure(link.pc);
      if (!s) continue;
      if (s.rtt !== null) total.rtt = Math.max(total.rtt ?? 0, s.rtt);
      total.frozen = Math.max(total.frozen, s.frozen);
      total.jitter = Math.max(total.jitter, s.jitter);
      total.kbps += s.kbps;
      if (s.sendLoss !== null) total.sendLoss = Math.max(total.sendLoss ?? 0, s.sendLoss);
      lost += s.lostPackets;
      received += s.receivedPackets;
      if (grade(s) === 1) weakFrom.push(link.name);
    }
    total.loss = lost + received > 0 ? lost / (lost + received) : 0;
    this.show(total, weakFrom);
  }

  /**
   * One connection's sample since the last poll (null: its first poll).
   * @param {RTCPeerConnection} pc
   * @returns {Promise<(Sample & {lostPackets: number, receivedPackets: number})|null>}
   */
  async measure(pc) {
    const report = await pc.getStats();
    let bytes = 0; let lost = 0; let received = 0; let frozen = 0; let sent = 0; let sentLost = 0;
    let jitter = 0;
    /** @type {number|null} */
    let rtt = null;
    report.forEach((r) => {
      if (r.type === 'candidate-pair' && r.nominated && typeof r.currentRoundTripTime === 'number') {
        rtt = r.currentRoundTripTime;
      } else if (r.type === 'inbound-rtp') {
        bytes += r.bytesReceived || 0;
        lost += Math.max(0, r.packetsLost || 0);
        received += r.packetsReceived || 0;
        if (r.kind === 'video') frozen += r.totalFreezesDuration || 0;
        if (r.kind === 'audio') jitter = Math.max(jitter, r.jitter || 0);
      } else if (r.type === 'remote-inbound-rtp') {
        // what the far end received of what we send: its loss is our uplink's (or its downlink's)
        sentLost += Math.max(0, r.packetsLost || 0);
      } else if (r.type === 'outbound-rtp') {
        sent += r.packetsSent || 0;
      }
    });
    const now = performance.now();
    const before = this.last.get(pc);
    this.last.set(pc, { bytes, lost, received, frozen, sent, sentLost, at: now });
    if (!before) return null;
    const seconds = Math.max(0.001, (now - before.at) / 1000);
    const dLost = lost - before.lost;
    const dReceived = received - before.received;
    const dSent = sent - before.sent;
    const dSentLost = sentLost - before.sentLost;
    return {
      rtt,
      loss: dLost + dReceived > 0 ? dLost / (dLost + dReceived) : 0,
      frozen: Math.min(1, (frozen - before.frozen) / seconds),
      jitter,
      kbps: ((bytes - before.bytes) * 8) / 1000 / seconds,
      sendLoss: dSent > 0 ? Math.min(1, Math.max(0, dSentLost) / dSent) : null,
      lostPackets: dLost,
      receivedPackets: dReceived,
    };
  }

  /**
   * @param {Sample} s
   * @param {string[]} [weakFrom]  the links weak on their own (who is at their other end)
   */
  show(s, weakFrom = []) {
    const level = grade(s);
    this.el.hidden = false;
    this.el.dataset.level = String(level);
    const label = t('quality.label', { level: t(`quality.level${level}`) });
    this.el.setAttribute('aria-label', label);
    this.el.title = label;
    this.details.textContent = t('quality.details', {
      rtt: s.rtt === null ? '–' : formatNumber(Math.round(s.rtt * 1000)),
      loss: formatPercent(s.loss, 1),
      kbps: formatNumber(Math.round(s.kbps)),
    });
    const weak = this.lasting.push(level === 1);
    if (weak && this.weak.hidden) this.weak.textContent = this.wording(s, weakFrom);
    this.weak.hidden = !weak;
  }

  /**
   * What the notice says, for who sees it.
   * @param {Sample} s
   * @param {string[]} weakFrom
   */
  wording(s, weakFrom) {
    const named = weakFrom.length === 1 && weakFrom[0] ? weakFrom[0] : '';
    this.weak.dataset.blame = this.screen ? 'theirs' : blame(s);
    if (this.screen) return named ? t('quality.weakFrom', { name: named }) : t('quality.weakLink');
    return blame(s) === 'mine' ? t('quality.weak') : t('quality.weakLink');
  }
}
