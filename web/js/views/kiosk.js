// The station's own screen (#/kiosk?key=<key>), 1280×720, touch. It sends nothing
// (no getUserMedia): it shows the guest-link QR while idle, rings with the caller's
// name and big Answer / Decline buttons, and during a call plays the remote
// participants large, the station camera as a small preview, and a red LIVE
// indicator exactly while the station's camera and microphone are on. Under the
// station name it lists the calls nobody took since the screen was last in a call or
// its list was cleared.
import * as api from '../api.js';
import { formatWhen, h, icon, replace } from '../dom.js';
import { exposeClient } from '../debug.js';
import { STATION_PEER, SignalingClient } from '../protocol.js';
import { Ringtone } from '../ui/ringtone.js';
import { TileGrid } from '../ui/tiles.js';
import { renderError } from './error.js';

/**
 * @typedef {import('../app.js').Context} Context
 * @typedef {import('../protocol.js').CallInfo} CallInfo
 */

/** localStorage: the start time (station clock) of the newest missed call cleared by a touch. */
const MISSED_CLEARED_KEY = 'videostation.kiosk.missedClearedAt';
/** How many missed calls the idle screen lists. */
const MISSED_SHOWN = 3;

/**
 * The calls to show as missed, newest first: the unanswered and declined calls of the
 * station's room since the last answered call (the screen was in a call then) and
 * after `clearedAt`. Declined calls count: whoever declined may not be who reads the
 * screen later.
 * @param {api.CallRecord[]} calls  the log, newest first
 * @param {string} roomId
 * @param {number} clearedAt  unix seconds
 * @returns {api.CallRecord[]}
 */
function missedCalls(calls, roomId, clearedAt) {
  const missed = [];
  for (const call of calls) {
    if (call.room_id !== roomId) continue;
    if (call.outcome === 'answered' || call.started_at <= clearedAt) break;
    if (call.outcome === 'missed' || call.outcome === 'declined') missed.push(call);
  }
  return missed;
}

/** @returns {number} */
function readClearedAt() {
  try {
    return Number(localStorage.getItem(MISSED_CLEARED_KEY)) || 0;
  } catch {
    return 0; // storage disabled: the list is cleared until the next reload only
  }
}

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
    /** @type {api.CallRecord[]} the missed calls on screen, newest first */
    this.missed = [];
    /** Newest cleared call (see MISSED_CLEARED_KEY), also kept here in case storage fails. */
    this.clearedAt = readClearedAt();
    this.missedRequest = 0;

    this.clock = h('div', { class: 'clock', 'data-testid': 'kiosk-clock' });
    this.date = h('div', { class: 'date muted' });
    this.qr = h('img', { class: 'kiosk-qr', alt: 'QR code: scan to call this station', 'data-testid': 'kiosk-qr' });
    this.qrBox = h('div', { class: 'qr-box loading' }, this.qr);
    this.missedList = h('ul', { class: 'missed-list' });
    this.missedMore = h('p', { class: 'missed-more muted', hidden: true });
    this.clearButton = h('button', { class: 'button small', type: 'button', 'data-testid': 'missed-clear' }, 'Clear');
    // The whole panel clears on a touch; the button says so and serves the keyboard.
    this.missedPanel = h('div', { class: 'missed', 'data-testid': 'missed-calls', 'aria-live': 'polite', hidden: true },
      h('div', { class: 'missed-head' }, h('h2', { class: 'missed-title', text: 'Missed calls' }), this.clearButton),
      this.missedList, this.missedMore);
    this.idle = h('section', { class: 'kiosk-idle', 'data-testid': 'kiosk-idle' },
      h('div', { class: 'idle-info' },
        this.clock, this.date,
        h('h1', { class: 'station-name', text: station.name }),
        this.missedPanel,
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
    this.missedPanel.addEventListener('click', () => this.clearMissed());

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
      void this.refreshMissed();
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
      if (this.missed.length) this.showMissed(); // "18:42" becomes "Mon 18:42" at midnight
    }
  }

  /** Reads the call log again (each time the call state returns to idle). */
  async refreshMissed() {
    const request = ++this.missedRequest;
    let log;
    try {
      log = await api.callLog();
    } catch (err) {
      console.warn('call log:', err);
      return;
    }
    if (this.destroyed || request !== this.missedRequest) return;
    this.missed = missedCalls(log.calls, this.station.room_id, this.clearedAt);
    this.showMissed();
  }

  showMissed() {
    const shown = this.missed.slice(0, MISSED_SHOWN);
    const more = this.missed.length - shown.length;
    replace(this.missedList, shown.map((call) => h('li', { class: 'missed-item' },
      icon('phone'),
      h('span', { class: 'missed-caller', text: `Missed call from ${call.caller || 'someone'}` }),
      h('span', { class: 'missed-time', text: ` · ${formatWhen(call.started_at)}` }))));
    this.missedMore.hidden = more <= 0;
    this.missedMore.textContent = `and ${more} earlier`;
    this.missedPanel.hidden = shown.length === 0;
    this.idle.classList.toggle('has-missed', shown.length > 0);
  }

  /** A touch on the list: the calls are seen. */
  clearMissed() {
    if (!this.missed.length) return;
    // The station's clock, not this screen's: a skewed screen can neither hide new calls nor bring old ones back.
    this.clearedAt = Math.max(this.clearedAt, this.missed[0].started_at);
    try {
      localStorage.setItem(MISSED_CLEARED_KEY, String(this.clearedAt));
    } catch {
      // Storage disabled: cleared until the next reload.
    }
    this.missedRequest++; // a log read already under way must not bring the list back
    this.missed = [];
    this.showMissed();
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
