// Connection quality: three bars from the call's getStats() (round-trip time, packet
// loss and the bitrate received), details on a tap, and a "Your connection is weak"
// notice while it is. DOM here, the judgement in the pure `grade()`.
import { h } from '../dom.js';
import { t } from '../i18n.js';

/** How often (ms) the statistics are read. */
const POLL_MS = 2000;

/**
 * @typedef {{rtt: number|null, loss: number, kbps: number, video: boolean}} Sample
 *   rtt in seconds (null: unknown), loss 0..1 over the last interval, kbps received
 */

/**
 * 3 good, 2 fair, 1 weak.
 * @param {Sample} s
 * @returns {1|2|3}
 */
export function grade(s) {
  const rtt = s.rtt ?? 0;
  if (rtt > 0.6 || s.loss > 0.08 || (s.video && s.kbps < 150)) return 1;
  if (rtt > 0.3 || s.loss > 0.02 || (s.video && s.kbps < 400)) return 2;
  return 3;
}

export class QualityMeter {
  /**
   * @param {() => RTCPeerConnection[]} connections  the call's connections now
   */
  constructor(connections) {
    this.connections = connections;
    /** @type {Map<RTCPeerConnection, {bytes: number, lost: number, received: number, at: number}>} */
    this.last = new Map();
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
    this.weak = h('div', { class: 'weak-note', role: 'status', 'data-testid': 'weak-connection', hidden: true, text: t('quality.weak') });
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
    this.el.hidden = true;
    this.weak.hidden = true;
  }

  async poll() {
    const pcs = this.connections().filter((pc) => pc.connectionState === 'connected');
    if (!pcs.length) return;
    /** @type {Sample} */
    const total = { rtt: null, loss: 0, kbps: 0, video: false };
    let lost = 0;
    let received = 0;
    for (const pc of pcs) {
      const report = await pc.getStats();
      let bytes = 0;
      let pcLost = 0;
      let pcReceived = 0;
      report.forEach((r) => {
        if (r.type === 'candidate-pair' && r.nominated && typeof r.currentRoundTripTime === 'number') {
          total.rtt = Math.max(total.rtt ?? 0, r.currentRoundTripTime);
        } else if (r.type === 'inbound-rtp') {
          bytes += r.bytesReceived || 0;
          pcLost += Math.max(0, r.packetsLost || 0);
          pcReceived += r.packetsReceived || 0;
          if (r.kind === 'video' && (r.framesDecoded || 0) > 0) total.video = true;
        }
      });
      const now = performance.now();
      const before = this.last.get(pc);
      this.last.set(pc, { bytes, lost: pcLost, received: pcReceived, at: now });
      if (!before) continue;
      const seconds = Math.max(0.001, (now - before.at) / 1000);
      total.kbps += ((bytes - before.bytes) * 8) / 1000 / seconds;
      lost += pcLost - before.lost;
      received += pcReceived - before.received;
    }
    total.loss = lost + received > 0 ? lost / (lost + received) : 0;
    this.show(total);
  }

  /** @param {Sample} s */
  show(s) {
    const level = grade(s);
    this.el.hidden = false;
    this.el.dataset.level = String(level);
    const label = t('quality.label', { level: t(`quality.level${level}`) });
    this.el.setAttribute('aria-label', label);
    this.el.title = label;
    this.details.textContent = t('quality.details', {
      rtt: s.rtt === null ? '–' : Math.round(s.rtt * 1000),
      loss: (s.loss * 100).toFixed(1),
      kbps: Math.round(s.kbps),
    });
    this.weak.hidden = level > 1;
  }
}
