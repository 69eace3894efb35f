// The station's own screen (#/kiosk?key=<key>), 1280×720, touch. It sends nothing
// (no getUserMedia): it shows the guest-link QR while idle, rings with the caller's
// name and big Answer / Decline buttons, and during a call plays the remote
// participants large, the station camera as a small preview, and a red LIVE
// indicator exactly while the station's camera and microphone are on.
import * as api from '../api.js';
import { h, icon, replace } from '../dom.js';
import { exposeClient } from '../debug.js';
import { STATION_PEER, SignalingClient } from '../protocol.js';
import { Ringtone } from '../ui/ringtone.js';
import { TileGrid } from '../ui/tiles.js';
import { renderError } from './error.js';

/**
 * @typedef {import('../app.js').Context} Context
 * @typedef {import('../protocol.js').CallInfo} CallInfo
 */

/** @param {Context} ctx */
export async function renderKiosk(ctx) {
  const key = ctx.route.params.get('key');
  if (key) {
    try {
      await api.kioskLogin(key);
    } catch (err) {
      ctx.clearHashParams();
      if (err instanceof api.ApiError && err.status > 0 && err.status < 500) {
        renderError(ctx, 'This screen is not paired', 'The kiosk key in the address is wrong. Open the address printed by "videostation kiosk-url".');
        return;
      }
      throw err;
    }
    ctx.clearHashParams();
  } else {
    const who = await api.me();
    if (!who || who.role !== 'kiosk') {
      renderError(ctx, 'This screen is not paired', 'Open the address printed by "videostation kiosk-url" on the station.');
      return;
    }
  }
  const station = await api.station();
  const kiosk = new Kiosk(ctx, station);
  kiosk.start();
  return () => kiosk.destroy();
}

class Kiosk {
  /**
   * @param {Context} ctx
   * @param {api.Station} station
   */
  constructor(ctx, station) {
    this.ctx = ctx;
    this.station = station;
    this.ringtone = new Ringtone();
    /** @type {(ReturnType<typeof setTimeout>)[]} */
    this.timeouts = [];
    /** @type {ReturnType<typeof setTimeout>|null} */
    this.qrTimer = null;
    /** @type {ReturnType<typeof setInterval>|null} */
    this.tick = null;
    /** @type {CallInfo|null} */
    this.call = null;
    /** @type {WakeLockSentinel|null} */
    this.wakeLock = null;
    this.destroyed = false;

    this.clock = h('div', { class: 'clock', 'data-testid': 'kiosk-clock' });
    this.date = h('div', { class: 'date muted' });
    this.qr = h('img', { class: 'kiosk-qr', alt: 'QR code: scan to call this station', 'data-testid': 'kiosk-qr' });
    this.qrBox = h('div', { class: 'qr-box loading' }, this.qr);
    this.idle = h('section', { class: 'kiosk-idle', 'data-testid': 'kiosk-idle' },
      h('div', { class: 'idle-info' },
        this.clock, this.date,
        h('h1', { class: 'station-name', text: station.name }),
        h('p', { class: 'idle-hint' }, 'Scan the code with your phone camera to start a video call.')),
      this.qrBox);

    this.callerName = h('div', { class: 'caller-name', 'data-testid': 'caller-name' });
    this.countdown = h('p', { class: 'countdown', 'data-testid': 'auto-answer', hidden: true });
    this.answerButton = h('button', { class: 'huge answer', type: 'button', 'data-testid': 'kiosk-answer' }, icon('phone'), 'Answer');
    this.declineButton = h('button', { class: 'huge decline', type: 'button', 'data-testid': 'kiosk-decline' }, icon('hangup'), 'Decline');
    this.ringing = h('section', { class: 'kiosk-ringing', 'data-testid': 'kiosk-ringing' },
      h('p', { class: 'eyebrow', text: 'Incoming video call' }),
      h('div', { class: 'ring-avatar pulse', 'aria-hidden': 'true' }, icon('phone')),
      this.callerName, this.countdown,
      h('div', { class: 'ring-actions' }, this.declineButton, this.answerButton));

    const grid = h('div', { class: 'tiles', 'data-testid': 'kiosk-remote' });
    this.tiles = new TileGrid(grid);
    this.preview = h('video', { class: 'mirror', autoplay: true, playsinline: true });
    this.preview.muted = true;
    this.previewBox = h('div', { class: 'self-preview', 'data-testid': 'station-preview' }, this.preview);
    this.live = h('div', { class: 'live-indicator', 'data-testid': 'live-indicator', role: 'status', hidden: true },
      h('span', { class: 'dot', 'aria-hidden': 'true', text: '●' }), ' LIVE — camera and microphone on');
    this.hangButton = h('button', { class: 'huge decline compact', type: 'button', 'data-testid': 'kiosk-hangup' }, icon('hangup'), 'Hang up');
    this.incall = h('section', { class: 'kiosk-call', 'data-testid': 'kiosk-call' },
      grid, this.previewBox, this.live, h('div', { class: 'kiosk-call-controls' }, this.hangButton));

    this.banner = h('div', { class: 'banner kiosk-banner', hidden: true, role: 'status' });
    this.root = h('div', { class: 'kiosk', 'data-state': 'idle', 'data-testid': 'kiosk' },
      this.idle, this.ringing, this.incall, this.banner);

    this.answerButton.addEventListener('click', () => this.client?.call('answer'));
    this.declineButton.addEventListener('click', () => this.client?.call('decline'));
    this.hangButton.addEventListener('click', () => this.client?.call('hangup'));

    this.client = new SignalingClient(ctx.wsUrl());
    exposeClient(this.client);
  }

  start() {
    document.title = this.station.name;
    replace(this.ctx.root, this.root);
    this.updateClock();
    this.tick = setInterval(() => { this.updateClock(); this.updateCountdown(); }, 250);
    void this.refreshQr();

    const client = this.client;
    client.onstatus = (status) => {
      this.banner.hidden = status === 'connected' || status === 'closed';
      this.banner.textContent = 'Reconnecting to the station…';
    };
    client.oncallstate = (call) => this.onCallState(call);
    client.ontrack = (peerId, participant, stream) => {
      if (peerId === STATION_PEER) {
        this.preview.srcObject = stream;
        this.preview.play().catch(() => undefined);
        this.previewBox.classList.add('has-video');
        return;
      }
      this.tiles.setStream(participant, peerId, stream, this.nameOf(peerId));
    };
    client.onpeerclosed = (peerId, participant) => {
      if (peerId === STATION_PEER) {
        this.preview.srcObject = null;
        this.previewBox.classList.remove('has-video');
        return;
      }
      this.tiles.dropStream(participant, peerId);
      this.tiles.remove(participant);
    };
    client.onpeerupdated = (peer) => this.tiles.setMuted(peer.participant || peer.id, peer.muted || {});
    client.onerror = (code, message) => console.warn('signaling:', code, message);
    client.join(this.station.room_id, 'Station screen');
  }

  /** @param {string} peerId */
  nameOf(peerId) {
    return this.client.roster.get(peerId)?.name || 'Guest';
  }

  /** @param {CallInfo|null} call */
  onCallState(call) {
    this.call = call;
    const state = call ? call.state : 'idle';
    this.root.dataset.state = state;
    if (state === 'ringing' && call) {
      const names = (call.callers || []).map((c) => c.name || 'Someone');
      this.callerName.textContent = names.length ? names.join(', ') : 'Someone';
      this.ringtone.start();
      this.updateCountdown();
    } else {
      this.ringtone.stop();
    }
    if (state === 'idle') {
      this.tiles.clear();
      this.preview.srcObject = null;
      this.previewBox.classList.remove('has-video');
    }
    this.live.hidden = !(call && call.live);
    this.root.classList.toggle('is-live', !!(call && call.live));
    void this.keepAwake(state !== 'idle');
  }

  updateCountdown() {
    const at = this.call && this.call.state === 'ringing' ? this.call.auto_answer_at : null;
    if (!at) { this.countdown.hidden = true; return; }
    const left = Math.max(0, Math.ceil(at - Date.now() / 1000));
    this.countdown.hidden = false;
    this.countdown.textContent = `Answering automatically in ${left} s`;
  }

  updateClock() {
    const now = new Date();
    const text = now.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    if (this.clock.textContent !== text) {
      this.clock.textContent = text;
      this.date.textContent = now.toLocaleDateString([], { weekday: 'long', day: 'numeric', month: 'long' });
    }
  }

  /** Fetches a fresh kiosk guest link and schedules the next one before this one expires. */
  async refreshQr() {
    if (this.qrTimer) clearTimeout(this.qrTimer);
    let delay = 15;
    try {
      const link = await api.kioskGuestLink();
      if (this.destroyed) return;
      this.qr.src = link.guest_qr_code;
      this.qr.dataset.url = link.guest_url;
      this.qrBox.classList.remove('loading');
      const remaining = link.expires_at - Date.now() / 1000;
      delay = Math.max(10, Math.min(remaining - 60, remaining * 0.8, 6 * 3600));
    } catch (err) {
      console.warn('kiosk guest link:', err);
    }
    if (!this.destroyed) this.qrTimer = setTimeout(() => { void this.refreshQr(); }, delay * 1000);
  }

  /** @param {boolean} on */
  async keepAwake(on) {
    try {
      if (on && !this.wakeLock && 'wakeLock' in navigator) {
        this.wakeLock = await navigator.wakeLock.request('screen');
      } else if (!on && this.wakeLock) {
        const lock = this.wakeLock;
        this.wakeLock = null;
        await lock.release();
      }
    } catch {
      // Not allowed (no secure context, hidden page): the compositor keeps the screen on.
    }
  }

  destroy() {
    this.destroyed = true;
    this.client.close();
    this.ringtone.stop();
    if (this.tick) clearInterval(this.tick);
    if (this.qrTimer) clearTimeout(this.qrTimer);
    void this.keepAwake(false);
  }
}
