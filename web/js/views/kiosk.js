// The station's own screen (#/kiosk?key=<key>), 1280×720, touch. It sends nothing
// (no getUserMedia): it shows the guest-link QR while idle, rings with the caller's
// name and big Answer / Decline buttons, and during a call plays the remote
// participants large, the station camera as a small preview, and a red LIVE
// indicator exactly while the station's camera and microphone are on (and never while
// the connection to the service is lost). Someone who arrives during a call knocks:
// the screen asks "<name> wants to join" with Let in / Not now. Under the station
// name it lists the calls nobody took since the screen was last in a call or its
// list was cleared.
//
// Remote media plays only in a call, and only from the peers the call object names
// as in it: while ringing, after a decline, from a knocker, nothing is heard.
import * as api from '../api.js';
import { h, icon, replace } from '../dom.js';
import { formatClock, formatDuration, formatList, formatLongDate, formatWhen, setLanguage, stationName, t, tn } from '../i18n.js';
import { exposeClient } from '../debug.js';
import { STATION_PEER, SignalingClient } from '../protocol.js';
import { NoticeArea } from '../ui/notices.js';
import { QualityMeter } from '../ui/quality.js';
import { Ringtone } from '../ui/ringtone.js';
import { StationAudio } from '../ui/station-audio.js';
import { UnreachableNotice } from '../ui/unreachable.js';
import { TileGrid } from '../ui/tiles.js';
import { renderError } from './error.js';
import { tradeLinkSecret } from './link-secret.js';

/**
 * @typedef {import('../app.js').Context} Context
 * @typedef {import('../protocol.js').CallInfo} CallInfo
 * @typedef {import('../protocol.js').CallMember} CallMember
 */

/** localStorage: the start time (station clock) of the newest missed call cleared by a touch. */
const MISSED_CLEARED_KEY = 'videostation.kiosk.missedClearedAt';
/** How many missed calls the idle screen lists. */
const MISSED_SHOWN = 3;
/** Bounds (s) of the wait before the key exchange is tried again (429, station starting). */
const PAIR_RETRY_MIN = 1;
const PAIR_RETRY_MAX = 120;
/** How long a "<name> joined" notice stays (ms). */
const TOAST_MS = 6000;
/** How long "Call with … · 12 minutes" stays on the idle screen (ms): it covers nothing. */
const LAST_CALL_MS = 60_000;

/**
 * The calls to show as missed, newest first: the unanswered calls of the station's
 * room since the last answered call (the screen was in a call then) and after
 * `clearedAt`. A declined call is not missed: somebody at the station chose not to
 * take it.
 * @param {api.CallRecord[]} calls  the log, newest first
 * @param {string} roomId
 * @param {number} clearedAt  unix seconds
 * @returns {api.CallRecord[]}
 */
export function missedCalls(calls, roomId, clearedAt) {
  const missed = [];
  for (const call of calls) {
    if (call.room_id !== roomId) continue;
    if (call.outcome === 'answered' || call.started_at <= clearedAt) break;
    if (call.outcome === 'missed') missed.push(call);
  }
  return missed;
}

/**
 * Missed calls per caller, the most recent caller first: one row says "Grandma · 3
 * calls · 18:42" instead of three.
 * @param {api.CallRecord[]} missed  newest first
 * @returns {{caller: string, count: number, last: number}[]}
 */
export function groupByCaller(missed) {
  /** @type {Map<string, {caller: string, count: number, last: number}>} */
  const groups = new Map();
  for (const call of missed) {
    const key = call.caller.trim().toLowerCase();
    const group = groups.get(key);
    if (group) group.count += 1;
    else groups.set(key, { caller: call.caller, count: 1, last: call.started_at });
  }
  return [...groups.values()];
}

/** @returns {number} */
function readClearedAt() {
  try {
    return Number(localStorage.getItem(MISSED_CLEARED_KEY)) || 0;
  } catch {
    return 0; // storage disabled: the list is cleared until the next reload only
  }
}

/**
 * Trades the kiosk key for a session. A busy limiter (429) or a station still
 * starting is waited out and tried again, so a kiosk that reloads while someone
 * guesses passwords still comes up; any other answer is thrown (a refusal of the key
 * is final: "not paired", see renderKiosk).
 * @param {Context} ctx
 * @param {string} key
 */
async function pair(ctx, key) {
  for (;;) {
    try {
      await api.kioskLogin(key);
      return;
    } catch (err) {
      if (!(err instanceof api.ApiError)) throw err;
      const busy = err.status === 429 || err.status === 503 || err.status === 0;
      if (!busy) throw err;
      const wait = Math.min(PAIR_RETRY_MAX, Math.max(PAIR_RETRY_MIN, err.retryAfter ?? 5));
      const note = h('p', { class: 'muted', 'data-testid': 'pairing-retry', text: tn('kiosk.pairingRetry', wait) });
      replace(ctx.root, h('section', { class: 'center-screen', 'data-testid': 'kiosk-pairing' },
        h('div', { class: 'card message-card', role: 'status' }, h('h1', { text: t('kiosk.pairing') }), note)));
      for (let left = wait; left > 0; left--) {
        note.textContent = tn('kiosk.pairingRetry', left);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  }
}

/** @param {Context} ctx */
export async function renderKiosk(ctx) {
  const paired = await tradeLinkSecret(ctx, 'key', (key) => pair(ctx, key),
    (err) => renderError(ctx, t('kiosk.notPaired'),
      t(err.code === 'kiosk_not_local' ? 'error.kiosk_not_local' : 'kiosk.wrongKey')));
  if (paired === 'refused') return;
  if (paired === 'none') {
    const who = await api.me();
    if (!who || who.role !== 'kiosk') {
      renderError(ctx, t('kiosk.notPaired'), t('kiosk.noKey'));
      return;
    }
  }
  const station = await api.station();
  await setLanguage(station.language); // the station's configured language (`auto`: this browser's)
  const kiosk = new Kiosk(ctx, { ...station, name: stationName(station.name) });
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
    /** The household chose another language in Settings: redraw once idle. */
    this.languageDue = false;
    /** @type {api.CallRecord[]} the missed calls on screen, newest first */
    this.missed = [];
    /** Newest cleared call (see MISSED_CLEARED_KEY), also kept here in case storage fails. */
    this.clearedAt = readClearedAt();
    this.missedRequest = 0;
    this.onResize = () => { this.showMissed(); this.placeNotices(); };

    this.clock = h('div', { class: 'clock', 'data-testid': 'kiosk-clock' });
    this.date = h('div', { class: 'date muted' });
    /** The Pi has no clock battery: until network time sets the clock, the date says so. */
    this.clockUnset = false;
    /** @type {ReturnType<typeof setInterval>|null} */
    this.clockTimer = null;
    this.qr = h('img', { class: 'kiosk-qr', alt: t('kiosk.qrAlt'), 'data-testid': 'kiosk-qr' });
    // While the service is down or unreachable the code would lead nowhere: it goes,
    // and this says why; a fresh code comes back with the connection.
    this.qrOffline = h('div', { class: 'qr-offline', role: 'status', 'data-testid': 'kiosk-offline', hidden: true },
      h('p', { class: 'qr-offline-title', text: t('kiosk.offline') }),
      h('p', { class: 'qr-offline-hint', text: t('kiosk.offlineHint') }));
    this.qrBox = h('div', { class: 'qr-box loading' }, this.qr, this.qrOffline);
    /** Was the socket lost since the code on screen was made? */
    this.offline = false;
    this.missedList = h('ul', { class: 'missed-list' });
    this.missedMore = h('p', { class: 'missed-more muted', hidden: true });
    this.clearButton = h('button', { class: 'button small', type: 'button', 'data-testid': 'missed-clear' }, t('kiosk.clear'));
    // The whole panel clears on a touch; the button says so and serves the keyboard.
    this.missedPanel = h('div', { class: 'missed', 'data-testid': 'missed-calls', 'aria-live': 'polite', hidden: true },
      h('div', { class: 'missed-head' }, h('h2', { class: 'missed-title', text: t('kiosk.missedTitle') }), this.clearButton),
      this.missedList, this.missedMore);
    // Do not disturb: pressed = on (calls do not come through; they are listed as
    // missed). The button says until when. It sits in a bar of its own under the rest,
    // which shrinks around it: a long missed list never pushes it off the screen.
    this.quietState = h('span', { class: 'quiet-state', 'data-testid': 'quiet-state', text: t('kiosk.dndOff') });
    this.quietButton = h('button', { class: 'button quiet-toggle', type: 'button', 'aria-pressed': 'false',
      'data-testid': 'quiet-toggle' }, icon('moon'),
    h('span', { class: 'quiet-text' }, h('span', { class: 'quiet-label', text: t('kiosk.dnd') }), this.quietState));
    this.stationName = h('h1', { class: 'station-name', text: station.name });
    this.hint = h('p', { class: 'idle-hint' }, t('kiosk.idleHint'));
    // After a call: "Call with … · 12 minutes", a line under the name. Never over the
    // code (it was a toast there): the next person scans while it shows.
    this.lastCall = h('p', { class: 'last-call', role: 'status', 'data-testid': 'kiosk-last-call', hidden: true });
    /** @type {ReturnType<typeof setTimeout>|null} */
    this.lastCallTimer = null;
    this.idleMain = h('div', { class: 'idle-main' },
      this.clock, this.date, this.stationName, this.lastCall, this.missedPanel, this.hint);
    this.idle = h('section', { class: 'kiosk-idle', 'data-testid': 'kiosk-idle' },
      h('div', { class: 'idle-info' }, this.idleMain, h('div', { class: 'quiet-bar' }, this.quietButton)),
      this.qrBox);

    this.callerName = h('div', { class: 'caller-name', 'data-testid': 'caller-name' });
    this.countdown = h('p', { class: 'countdown', 'data-testid': 'auto-answer', hidden: true });
    this.answerButton = h('button', { class: 'huge answer', type: 'button', 'data-testid': 'kiosk-answer' }, icon('phone'), t('kiosk.answer'));
    this.declineButton = h('button', { class: 'huge decline', type: 'button', 'data-testid': 'kiosk-decline' }, icon('hangup'), t('kiosk.decline'));
    this.ringing = h('section', { class: 'kiosk-ringing', 'data-testid': 'kiosk-ringing' },
      h('p', { class: 'eyebrow', text: t('kiosk.incoming') }),
      h('div', { class: 'ring-avatar pulse', 'aria-hidden': 'true' }, icon('phone')),
      this.callerName, this.countdown,
      h('div', { class: 'ring-actions' }, this.declineButton, this.answerButton));

    const grid = h('div', { class: 'tiles', 'data-testid': 'kiosk-remote' });
    this.stationAudio = new StationAudio();
    this.tiles = new TileGrid(grid, { volume: this.stationAudio.volume });
    this.preview = h('video', { class: 'mirror', autoplay: true, playsinline: true });
    this.preview.muted = true;
    this.previewBox = h('div', { class: 'self-preview', 'data-testid': 'station-preview' }, this.preview);
    // Compact: a red dot and a camera, with the sentence for screen readers and as a tooltip.
    this.live = h('div', { class: 'live-indicator', 'data-testid': 'live-indicator', role: 'status', hidden: true,
      'aria-label': t('kiosk.live'), title: t('kiosk.live') },
    h('span', { class: 'dot', 'aria-hidden': 'true' }), icon('cam'));
    this.hangButton = h('button', { class: 'station-button wide hangup', type: 'button', 'data-testid': 'kiosk-hangup' },
      h('span', { class: 'station-icon' }, icon('hangup')), h('span', { class: 'station-label', text: t('kiosk.hangUp') }));
    this.knocks = h('div', { class: 'knocks', 'data-testid': 'knocks', 'aria-live': 'assertive' });
    this.quality = new QualityMeter(() => [...this.client.peers.values()].filter((l) => l.id !== STATION_PEER)
      .map((l) => ({ pc: l.pc, name: this.nameOf(l.id) })), { screen: true });
    // The station's own speaker volume, mic mute and level (web/js/ui/station-audio.js)
    // mount in this slot beside the hang-up button.
    this.audioSlot = h('div', { class: 'station-audio-slot', 'data-slot': 'station-audio' }, this.stationAudio.el);
    /** Says why a caller's connection does not come up (e.g. the TURN server refused). */
    this.unreachable = new UnreachableNotice('kiosk');
    this.incall = h('section', { class: 'kiosk-call', 'data-testid': 'kiosk-call' },
      grid, this.previewBox, h('div', { class: 'kiosk-status' }, this.live, this.quality.el), this.knocks, h('div', { class: 'kiosk-call-controls' }, this.audioSlot, this.hangButton));

    this.banner = h('div', { class: 'banner kiosk-banner', hidden: true, role: 'status' });
    this.toastEl = h('div', { class: 'kiosk-toast', hidden: true, role: 'status', 'data-testid': 'kiosk-toast' });
    /** @type {ReturnType<typeof setTimeout>|null} */
    this.toastTimer = null;
    // Every notice in one place, the most important alone (ui/notices.js's PRIORITY):
    // in a call just above the control row (the callers' names are at the top).
    this.notices = new NoticeArea();
    this.notices.add('reconnecting', this.banner);
    this.notices.add('unreached', this.unreachable.el);
    this.notices.add('weak', this.quality.weak);
    this.notices.add('toast', this.toastEl);
    this.root = h('div', { class: 'kiosk', 'data-state': 'idle', 'data-testid': 'kiosk' },
      this.idle, this.ringing, this.incall, this.notices.el);
    const controls = /** @type {HTMLElement} */ (this.incall.querySelector('.kiosk-call-controls'));
    /** Keeps the notice area 12 px above the control row, whatever its height. */
    this.placeNotices = () => {
      const top = controls.getBoundingClientRect().top;
      if (top > 0) this.root.style.setProperty('--notices-bottom', `${Math.round(window.innerHeight - top + 12)}px`);
    };
    this.controlsWatch = new ResizeObserver(this.placeNotices);
    this.controlsWatch.observe(controls);
    /** Is the socket to the service up? While it is not, nothing here claims LIVE. */
    this.connected = false;
    /**
     * Every remote connection's media, by peer id; played (attached to a tile) only
     * while that peer is in the call.
     * @type {Map<string, {participant: string, stream: MediaStream}>}
     */
    this.remoteStreams = new Map();
    /** When the call on screen began (ms; 0: none) and with whom, for "Call with …". */
    this.callSince = 0;
    this.callWith = '';
    /** Knock ids already on screen, so a call-state does not rebuild pressed buttons. */
    this.knockIds = '';

    // The ringtone stops at the touch, not a round trip later.
    this.answerButton.addEventListener('click', () => { this.ringtone.stop(); this.client?.call('answer'); });
    this.stationAudio.onvolume = (volume) => this.tiles.setVolume(volume);
    this.stationAudio.onmute = (audio, video) => this.client?.setStationMedia(audio, video);
    this.declineButton.addEventListener('click', () => this.client?.call('decline'));
    this.hangButton.addEventListener('click', () => this.client?.call('hangup'));
    this.missedPanel.addEventListener('click', () => this.clearMissed());
    this.quietButton.addEventListener('click', () => {
      const on = this.quietButton.getAttribute('aria-pressed') !== 'true';
      this.quietButton.disabled = true;
      api.setQuiet(on).then((r) => this.showQuiet(r.quiet, r.quiet_until))
        .catch((err) => console.warn('quiet:', err))
        .finally(() => { this.quietButton.disabled = false; });
    });

    this.client = new SignalingClient(ctx.wsUrl());
    exposeClient(this.client);
  }

  start() {
    document.title = this.station.name;
    replace(this.ctx.root, this.root);
    this.updateClock();
    this.tick = setInterval(() => { this.updateClock(); this.updateCountdown(); }, 250);
    void this.refreshClockState();
    this.clockTimer = setInterval(() => { void this.refreshClockState(); }, 60_000);
    void this.refreshQr();
    // Another size (a TV, the panel rotated): what fits of the idle screen's text.
    window.addEventListener('resize', this.onResize);

    const client = this.client;
    client.onstatus = (status) => {
      this.banner.hidden = status === 'connected' || status === 'closed';
      this.banner.textContent = t('kiosk.reconnecting');
      this.connected = status === 'connected';
      this.showOffline(status === 'reconnecting');
      // The connections are gone with the socket; so is any claim that the camera is on.
      // The call object is stale too: the next one comes with `welcome`.
      if (!this.connected) {
        this.call = null;
        this.unreachable.unreached([]);
        this.showKnocks([]);
        this.showLive();
      }
    };
    client.oncallstate = (call) => {
      this.gotCallState(call);
      if (this.languageDue && call?.state === 'idle') this.ctx.navigate(location.hash || '#/kiosk');
    };
    // Settings changed in the household's app: the name at once; another language
    // draws the screen again (now if idle, else when the call is over).
    client.onstation = (name, language) => {
      this.station = { ...this.station, name: stationName(name) };
      this.stationName.textContent = this.station.name;
      document.title = this.station.name;
      this.languageDue = language !== this.station.language;
      if (this.languageDue && (!this.call || this.call.state === 'idle')) this.ctx.navigate(location.hash || '#/kiosk');
    };
    client.ontrack = (peerId, participant, stream) => {
      if (peerId === STATION_PEER) {
        this.preview.srcObject = stream;
        this.preview.play().catch(() => undefined);
        this.previewBox.classList.add('has-video');
        return;
      }
      this.remoteStreams.set(peerId, { participant, stream });
      this.showRemotes();
    };
    // The station's own preview comes over loopback: only callers' connections count.
    client.onpeerunreachable = (peerId, why) => { if (peerId !== STATION_PEER) this.unreachable.unreachable(peerId, why); };
    client.onpeerstate = (peerId, state) => { if (state === 'connected') this.unreachable.settled(peerId); };
    client.onpeerclosed = (peerId, participant) => {
      this.unreachable.settled(peerId);
      if (peerId === STATION_PEER) {
        this.preview.srcObject = null;
        this.previewBox.classList.remove('has-video');
        return;
      }
      this.remoteStreams.delete(peerId);
      this.tiles.dropStream(participant, peerId);
      this.tiles.remove(participant);
    };
    client.onpeerupdated = (peer) => this.tiles.setMuted(peer.participant || peer.id, peer.muted || {});
    client.onmiclevel = (dbfs, muted) => this.stationAudio.showLevel(dbfs, muted);
    client.onerror = (code, message) => console.warn('signaling:', code, message);
    client.join(this.station.room_id, t('kiosk.stationScreen'));
  }

  /** @param {string} peerId */
  nameOf(peerId) {
    return this.client.roster.get(peerId)?.name || t('kiosk.guest');
  }

  /** @returns {Set<string>} the ids of the remotes in the call (empty outside a call) */
  callMembers() {
    const call = this.call;
    if (!this.connected || !call || call.state !== 'in-call') return new Set();
    return new Set((call.in_call || []).map((m) => (typeof m === 'string' ? m : m.id)));
  }

  /** Plays the media of the peers in the call; everyone else's stays detached and silent. */
  showRemotes() {
    const members = this.callMembers();
    for (const [peerId, { participant, stream }] of this.remoteStreams) {
      if (members.has(peerId)) {
        this.tiles.setStream(participant, peerId, stream, this.nameOf(peerId));
        const muted = this.client.roster.get(peerId)?.muted;
        if (muted) this.tiles.setMuted(participant, muted);
      } else {
        this.tiles.dropStream(participant, peerId);
        this.tiles.remove(participant);
      }
    }
  }

  /**
   * @param {boolean} on
   * @param {number|null} [until]  when it ends by itself (unix seconds)
   */
  showQuiet(on, until = null) {
    this.quietButton.setAttribute('aria-pressed', String(on));
    this.quietState.textContent = !on ? t('kiosk.dndOff')
      : until ? t('kiosk.dndUntil', { time: formatClock(new Date(until * 1000)) }) : t('kiosk.dndOn');
    this.root.classList.toggle('is-quiet', on);
  }

  showLive() {
    const call = this.call;
    const live = this.connected && !!(call && call.live);
    this.live.hidden = !live;
    this.root.classList.toggle('is-live', live);
    // What is sent: camera and microphone, the microphone only, the camera only, neither.
    const audio = !call?.audio_muted;
    const video = !call?.video_muted;
    const mode = audio && video ? 'live' : audio ? 'mic-only' : video ? 'camera-only' : 'muted';
    if (this.live.dataset.mode === mode) return;
    this.live.dataset.mode = mode;
    const text = t(mode === 'live' ? 'kiosk.live' : mode === 'mic-only' ? 'kiosk.liveMicOnly'
      : mode === 'camera-only' ? 'kiosk.liveCamOnly' : 'kiosk.liveMuted');
    this.live.setAttribute('aria-label', text);
    this.live.title = text;
    const icons = { live: [icon('cam')], 'mic-only': [icon('mic')], 'camera-only': [icon('cam'), icon('micOff')], muted: [icon('camOff'), icon('micOff')] }[mode];
    this.live.replaceChildren(h('span', { class: 'dot', 'aria-hidden': 'true' }), ...icons);
  }

  /** @param {CallInfo|null} call */
  gotCallState(call) {
    const before = this.call;
    this.call = call;
    const state = call ? call.state : 'idle';
    this.root.dataset.state = state;
    if (call) this.showQuiet(!!call.quiet, call.quiet_until);
    this.stationAudio.showMuted(!!call?.audio_muted, !!call?.video_muted);
    if (state !== 'in-call') this.stationAudio.showLevel(null, false);
    if (state === 'ringing' && call) {
      const names = (call.callers || []).map((c) => c.name || t('kiosk.someone'));
      this.callerName.textContent = names.length ? formatList(names) : t('kiosk.someone');
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
    if (state === 'in-call' && call && before && before.state === 'in-call') this.announceJoins(before, call);
    this.noteCallLength(before, call);
    this.showKnocks(state === 'in-call' && call ? call.knocking || [] : []);
    this.showUnreached(state === 'in-call' ? call : null);
    if (state === 'in-call') this.quality.start();
    else this.quality.stop();
    this.showRemotes();
    this.showLive();
    void this.keepAwake(state !== 'idle');
  }

  /**
   * "Maria: no picture from the station" for each caller the station's connection
   * failed to reach (the call object's `unreached`; the station offers anew meanwhile).
   * @param {CallInfo|null} call
   */
  showUnreached(call) {
    const ids = new Set(call?.unreached || []);
    const names = (call?.in_call || [])
      .map((m) => (typeof m === 'string' ? { id: m, name: '' } : m))
      .filter((m) => ids.has(m.id))
      .map((m) => m.name || this.nameOf(m.id));
    this.unreachable.unreached(names);
  }

  /**
   * "<name> joined" for everyone who came into a running call (let in, or a household
   * user who joins without knocking).
   * @param {CallInfo} before
   * @param {CallInfo} now
   */
  announceJoins(before, now) {
    const id = (/** @type {CallMember|string} */ m) => (typeof m === 'string' ? m : m.id);
    const had = new Set((before.in_call || []).map(id));
    const names = (now.in_call || [])
      .filter((m) => !had.has(id(m)))
      .map((m) => (typeof m === 'string' ? this.nameOf(m) : m.name || this.nameOf(m.id)));
    if (names.length) this.toast(names.map((name) => t('kiosk.joined', { name })).join(' · '));
  }

  /**
   * Remembers when a call began and with whom; when it ends, "Call with Grandma ·
   * 12 minutes" stays on the idle screen for a few seconds.
   * @param {CallInfo|null} before
   * @param {CallInfo|null} now
   */
  noteCallLength(before, now) {
    const inCall = (/** @type {CallInfo|null} */ c) => !!c && c.state === 'in-call';
    if (inCall(now) && now) {
      if (!this.callSince) this.callSince = Date.now();
      const names = (now.in_call || []).map((m) => (typeof m === 'string' ? this.nameOf(m) : m.name || this.nameOf(m.id)));
      if (names.length) this.callWith = formatList(names);
      return;
    }
    if (inCall(before) && this.callSince) {
      const seconds = (Date.now() - this.callSince) / 1000;
      this.showLastCall(t('kiosk.callWith', { name: this.callWith || t('kiosk.guest'), duration: formatDuration(seconds) }));
    }
    this.callSince = 0;
    this.callWith = '';
  }

  /**
   * One card per knocking guest: "<name> wants to join" with Let in / Not now.
   * @param {CallMember[]} knocking
   */
  showKnocks(knocking) {
    const ids = knocking.map((k) => k.id).join(' ');
    if (ids === this.knockIds) return;
    this.knockIds = ids;
    replace(this.knocks, knocking.map((k) => {
      const admit = h('button', { class: 'button big primary', type: 'button', 'data-testid': 'knock-admit' }, t('kiosk.letIn'));
      const refuse = h('button', { class: 'button big', type: 'button', 'data-testid': 'knock-refuse' }, t('kiosk.notNow'));
      const answer = (/** @type {'admit'|'refuse'} */ action) => {
        admit.disabled = refuse.disabled = true;
        this.client.call(action, k.id);
      };
      admit.addEventListener('click', () => answer('admit'));
      refuse.addEventListener('click', () => answer('refuse'));
      return h('div', { class: 'knock', role: 'alertdialog', 'data-testid': 'knock', 'data-peer': k.id },
        h('p', { class: 'knock-text', 'data-testid': 'knock-text', text: t('kiosk.wantsToJoin', { name: k.name || t('kiosk.guest') }) }),
        h('div', { class: 'knock-actions' }, refuse, admit));
    }));
  }

  /** @param {string} text */
  toast(text) {
    this.toastEl.textContent = text;
    this.toastEl.hidden = false;
    if (this.toastTimer) clearTimeout(this.toastTimer);
    if (this.lastCallTimer) clearTimeout(this.lastCallTimer);
    this.toastTimer = setTimeout(() => { this.toastEl.hidden = true; }, TOAST_MS);
  }

  /**
   * The idle screen's line about the call that just ended.
   * @param {string} text
   */
  showLastCall(text) {
    this.lastCall.textContent = text;
    this.lastCall.hidden = false;
    this.showMissed(); // room for the line: fewer missed rows if need be
    if (this.lastCallTimer) clearTimeout(this.lastCallTimer);
    this.lastCallTimer = setTimeout(() => { this.lastCall.hidden = true; this.showMissed(); }, LAST_CALL_MS);
  }

  updateCountdown() {
    const at = this.call && this.call.state === 'ringing' ? this.call.auto_answer_at : null;
    if (!at) { this.countdown.hidden = true; return; }
    const left = Math.max(0, Math.ceil(at - Date.now() / 1000));
    this.countdown.hidden = false;
    this.countdown.textContent = tn('kiosk.autoAnswer', left);
  }

  /** Asks the station whether network time has set its clock (health, as the kiosk). */
  async refreshClockState() {
    let unset;
    try {
      unset = (await api.health()).clock?.synchronized === false;
    } catch {
      return; // the station is away: the banner says so, the date stays as it was
    }
    this.date.dataset.clockSet = String(!unset);
    if (unset === this.clockUnset) return;
    this.clockUnset = unset;
    this.clock.textContent = ''; // redrawn on the next tick, with or without the note
  }

  updateClock() {
    const now = new Date();
    const text = formatClock(now);
    if (this.clock.textContent !== text) {
      this.clock.textContent = text;
      const date = formatLongDate(now);
      this.date.textContent = this.clockUnset ? `${date} · ${t('kiosk.clockUnset')}` : date;
      // "18:42" becomes "Mon 18:42" at midnight; a longer date may push the hint off
      // the idle column: fit it again
      this.showMissed();
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
    const groups = groupByCaller(this.missed);
    const shown = groups.slice(0, MISSED_SHOWN);
    const more = groups.length - shown.length;
    replace(this.missedList, shown.map((g) => h('li', { class: 'missed-item', 'data-testid': 'missed-item' },
      icon('phone'),
      h('span', { class: 'missed-caller', 'data-testid': 'missed-caller', text: g.caller || t('kiosk.someone') }),
      h('span', { class: 'missed-meta' },
        g.count > 1 ? h('span', { class: 'missed-count', 'data-testid': 'missed-count', text: tn('kiosk.missedCount', g.count) }) : null,
        h('span', { class: 'missed-time', text: formatWhen(g.last) })))));
    this.missedMore.hidden = more <= 0;
    this.missedMore.textContent = more > 0 ? tn('kiosk.earlier', more) : '';
    this.missedPanel.hidden = shown.length === 0;
    this.idle.classList.toggle('has-missed', shown.length > 0);
    this.fitMissed(more);
  }

  /**
   * While the idle screen's text does not fit above the do-not-disturb bar: fewer
   * missed rows (those left out join "and N more"), then, one by one, no hint, no
   * date, no station name, no "and N more", no after-call line (the clock and the household's newest
   * missed call come first; the 800x480 panel has room for little more at 1.5 m
   * sizes). The bar itself never moves (app.css .idle-info).
   * @param {number} more  callers already left out
   */
  fitMissed(more) {
    const rows = this.missedList.children;
    const overflows = () => this.idleMain.scrollHeight > this.idleMain.clientHeight + 1;
    const optional = [this.hint, this.date, this.stationName, this.missedMore, this.lastCall];
    for (const el of optional) el.classList.remove('squeezed');
    while (rows.length > 1 && overflows()) {
      rows[rows.length - 1].remove();
      more += 1;
      this.missedMore.hidden = false;
      this.missedMore.textContent = tn('kiosk.earlier', more);
    }
    for (const el of optional) {
      if (!overflows()) break;
      el.classList.add('squeezed');
    }
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

  /**
   * The service is down or unreachable (the socket reconnects): no code, a reason.
   * Back: a fresh code (the old one may belong to a service that lost its state).
   * @param {boolean} offline
   */
  showOffline(offline) {
    if (offline === this.offline) return;
    this.offline = offline;
    this.qrOffline.hidden = !offline;
    this.qrBox.classList.toggle('offline', offline);
    if (offline) {
      this.qrBox.classList.add('loading');
      this.qr.removeAttribute('src');
      delete this.qr.dataset.url;
    } else {
      void this.refreshQr();
    }
  }

  /** Fetches a fresh kiosk guest link and schedules the next one before this one expires. */
  async refreshQr() {
    if (this.qrTimer) clearTimeout(this.qrTimer);
    let delay = 15;
    try {
      const link = await api.kioskGuestLink();
      if (this.destroyed) return;
      if (this.offline) throw new Error('offline since the request'); // a code from before the outage
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
    this.quality.stop();
    this.notices.stop();
    this.controlsWatch.disconnect();
    if (this.tick) clearInterval(this.tick);
    if (this.clockTimer) clearInterval(this.clockTimer);
    if (this.qrTimer) clearTimeout(this.qrTimer);
    if (this.toastTimer) clearTimeout(this.toastTimer);
    window.removeEventListener('resize', this.onResize);
    void this.keepAwake(false);
  }
}
