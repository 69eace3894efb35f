// The call page (#/room/<id>): guest-token exchange (views/link-secret.js), the
// lobby (views/lobby.js: name, preview, toggles), then the call:
// remote tiles, the floating local video, camera/mic/full-screen/hang-up controls
// and the station's call states ("Calling…", "Waiting to be let in…", "No answer",
// "Declined", "Call ended").
//
// The caller's camera and microphone are held only while calling, knocking or in a
// call: every way out of a call (hang-up, decline, no answer, room full, refused,
// withdrawn, Leave) stops every local track and clears the preview; "Call again"
// asks for them afresh. A knocker sees no preview of itself (nothing is sent before it
// is let in; the held camera's track is disabled) and may Cancel: the kiosk's
// "wants to join" card goes at once.
import * as api from '../api.js';
import { h, icon, replace } from '../dom.js';
import { errorText, formatClock, formatDuration, formatTimer, t, tn } from '../i18n.js';
import { exposeClient } from '../debug.js';
import { STATION_PEER, SignalingClient } from '../protocol.js';
import { isFullscreen, toggleFullscreen } from '../ui/fullscreen.js';
import { mediaToggle, showToggle } from '../ui/media-toggle.js';
import { NoticeArea } from '../ui/notices.js';
import { makeFloating } from '../ui/pip.js';
import { QualityMeter } from '../ui/quality.js';
import { RINGBACK, Ringtone } from '../ui/ringtone.js';
import { TileGrid, initials } from '../ui/tiles.js';
import { UnreachableNotice } from '../ui/unreachable.js';
import { renderError } from './error.js';
import { renderFinished } from './finished.js';
import { OfflineNotice } from './offline.js';
import { tradeLinkSecret } from './link-secret.js';
import { Lobby } from './lobby.js';
import { signIn } from './login.js';

/**
 * @typedef {import('../app.js').Context} Context
 * @typedef {import('../protocol.js').CallInfo} CallInfo
 * @typedef {import('../protocol.js').PeerInfo} PeerInfo
 * @typedef {import('../protocol.js').Status} Status
 * @typedef {import('../protocol.js').WelcomeMessage} WelcomeMessage
 * @typedef {'connecting'|'calling'|'knocking'|'cancelled'|'in-call'|'missed'|'quiet'|'declined'|'ended'|'ready'|'full'|'gone'} PageState
 */

/**
 * Page states in which the camera and microphone are held; also the only ones whose
 * rejoin after a lost socket rings (or knocks, or resumes): a finished card ("Call
 * ended", "You cancelled"…) rejoins silently, and only "Call again" rings.
 */
const MEDIA_STATES = new Set(['connecting', 'calling', 'knocking', 'in-call']);
/** How long (ms) the controls stay after the last touch, in a call in landscape. */
const CONTROLS_FADE_MS = 4000;
/** How often (ms) a page that keeps failing to reconnect asks whether its session still exists. */
const SESSION_CHECK_MS = 10_000;

/**
 * @param {Context} ctx
 * @param {string} roomId
 * @returns {Promise<(() => void)|void>}
 */
export async function renderRoom(ctx, roomId) {
  /** @param {api.ApiError} err */
  const unusable = (err) => renderError(ctx, t('room.linkUnusable'), `${errorText(err)} ${t('room.askForNew')}`, []);
  if (await tradeLinkSecret(ctx, 'guest_token', api.guestLogin, unusable) === 'refused') return;
  // a kiosk code that came from another site's page (the station set no cookie for it)
  if (await tradeLinkSecret(ctx, 'code', api.codeLogin, unusable) === 'refused') return;

  const { station, who } = await signIn(ctx);
  if (who.role === 'kiosk') { ctx.navigate('#/kiosk'); return; }
  if (who.role === 'guest' && who.room && who.room !== roomId) {
    renderError(ctx, t('room.wrongRoom'), t('error.wrong_room'),
      [{ label: t('room.goToMyRoom'), href: `#/room/${encodeURIComponent(who.room)}` }]);
    return;
  }
  const isStation = roomId === station.room_id;
  let roomName = isStation ? station.name : roomId;
  try {
    const room = await api.getRoom(roomId);
    // The station's room is called what the station is called (its config), not its row.
    if (!isStation) roomName = room.name || roomName;
  } catch (err) {
    if (err instanceof api.ApiError && err.status === 404) {
      renderError(ctx, t('room.roomNotFound'), t('error.room_not_found'),
        who.role === 'user' ? [{ label: t('room.allRooms'), href: '#/' }] : []);
      return;
    }
    // Guests may not be allowed to read room details: the welcome message has the name.
  }
  document.title = roomName;
  const call = new CallPage(ctx, { roomId, roomName, isStation, station, role: who.role });
  call.lobby();
  return () => call.destroy();
}

class CallPage {
  /**
   * @param {Context} ctx
   * @param {{roomId: string, roomName: string, isStation: boolean, station: api.Station, role: string}} info
   */
  constructor(ctx, info) {
    this.ctx = ctx;
    this.info = info;
    /** @type {MediaStream|null} the camera/microphone, only while calling or in a call */
    this.localStream = null;
    /** @type {SignalingClient|null} */
    this.client = null;
    this.muted = { audio: false, video: false };
    /** Were we calling or in the call since the last ring? Then an idle state is "ended". */
    this.active = false;
    /** @type {number|null} when the station's do not disturb ends (unix seconds) */
    this.quietUntil = null;
    /** @type {(() => void)[]} */
    this.disposers = [];
    /** @type {Promise<void>} resolves once the camera/microphone request is settled */
    this.mediaReady = Promise.resolve();
    /** Bumped whenever the camera is released: a request still open then is dropped. */
    this.mediaGeneration = 0;
    /** @type {Lobby|null} the name and preview before the call */
    this.lobbyView = null;
    /** @type {HTMLVideoElement|null} the floating local video in the call */
    this.localVideo = null;
    /** @type {ReturnType<typeof setTimeout>|null} */
    this.toastTimer = null;
    this.lastSessionCheck = 0;
    /** The next call state is the one inside `welcome` (see connect). */
    this.skipWelcomeState = false;
    this.destroyed = false;
    /** The caller hears it while the station rings. */
    this.ringback = new Ringtone(RINGBACK);
    /** @type {ReturnType<typeof setTimeout>|null} hides the controls (landscape, in a call) */
    this.fadeTimer = null;
    /** When the call began (ms), 0 outside a call; drives the timer. */
    this.callStart = 0;
    /** @type {ReturnType<typeof setInterval>|null} */
    this.timerTick = null;
    /** @type {HTMLElement|null} */
    this.timerEl = null;
    /** @type {QualityMeter|null} */
    this.quality = null;
    /** @type {UnreachableNotice|null} says why a connection does not come up */
    this.unreachable = null;
    /** @type {HTMLElement|null} */
    this.aloneEl = null;
    /** @type {HTMLButtonElement|null} */
    this.flipButton = null;
    /** @type {HTMLVideoElement|null} our own video as the main picture (swapped) */
    this.mainLocal = null;
    /** Is our own video the main picture and the other side's in the small window? */
    this.swapped = false;
    /** @type {HTMLElement|null} "station muted" / "station camera off" */
    this.stationNote = null;
    /** Does the station say its connection to us failed (call object `unreached`)? */
    this.stationUnreached = false;
    /** @type {NoticeArea|null} every notice, the most important shown */
    this.notices = null;
    /** @type {PageState|null} the card "Call again" / "Knock again" was pressed on: a ring the station makes wait goes back to it */
    this.againFrom = null;
    /** Was the station still in a call when we cancelled our knock ("Knock again", else "Call again")? */
    this.cancelledInCall = false;
    /** "The station is offline — we'll connect when it's back", with the countdown. */
    this.offline = new OfflineNotice({ class: 'banner offline-banner' });
  }

  // ---- lobby: name + preview (views/lobby.js) ----------------------------

  lobby() {
    const lobby = new Lobby(this.ctx, this.info, this.muted);
    this.lobbyView = lobby;
    lobby.ontoggle = (kind) => this.toggle(kind);
    lobby.onstart = (name) => { void this.startCall(name); };
    lobby.show();
    this.mediaReady = this.acquireMedia().then((stream) => {
      if (stream) this.applyMuted();
      lobby.showMedia(stream);
    });
  }

  /** Mutes the local tracks as chosen (before the call; in the call the client does it). */
  applyMuted() {
    for (const tr of this.localStream?.getAudioTracks() ?? []) tr.enabled = !this.muted.audio;
    for (const tr of this.localStream?.getVideoTracks() ?? []) tr.enabled = !this.muted.video;
    this.lobbyView?.showVideoMuted(this.muted.video);
  }

  // ---- camera and microphone ----------------------------------------------

  /**
   * Asks for the camera and microphone (once; a request under way is shared) and
   * keeps the stream in `this.localStream`, unless the page is released meanwhile.
   * @returns {Promise<MediaStream|null>}
   */
  async acquireMedia() {
    if (this.localStream) return this.localStream;
    const generation = this.mediaGeneration;
    const stream = await getLocalMedia();
    if (this.destroyed || generation !== this.mediaGeneration) {
      stopStream(stream); // released (call ended, page left) while the browser was asking
      return null;
    }
    if (this.localStream) { // a parallel request won
      stopStream(stream);
      return this.localStream;
    }
    this.localStream = stream;
    return stream;
  }

  /** The camera and microphone for a (new) call: shown in the floating video, sent to peers. */
  async useMedia() {
    const stream = this.localStream || await this.acquireMedia();
    if (this.destroyed) return;
    this.unswap();
    if (this.localVideo) this.localVideo.srcObject = stream;
    void this.showFlip();
    if (this.pip) this.pip.hidden = !stream || !stream.getVideoTracks().length;
    if (this.micButton) this.micButton.disabled = !stream || !stream.getAudioTracks().length;
    if (this.camButton) this.camButton.disabled = !stream || !stream.getVideoTracks().length;
    if (this.client && this.client.localStream !== stream) await this.client.setLocalStream(stream);
  }

  /** Stops every local track at once and clears every preview of them. */
  releaseMedia() {
    this.mediaGeneration += 1;
    const stream = this.localStream;
    this.localStream = null;
    stopStream(stream);
    this.lobbyView?.clearPreview();
    this.unswap();
    if (this.localVideo) this.localVideo.srcObject = null;
    if (this.pip) this.pip.hidden = true;
    if (this.client && this.client.localStream) void this.client.setLocalStream(null);
  }

  /**
   * Our own picture in the floating window, or none while knocking: the knocker must not
   * look "on camera" while it waits. The stream stays held (the station's offer must
   * find its tracks the moment we are let in) but its video is disabled meanwhile.
   * @param {boolean} on
   */
  showPreview(on) {
    const stream = this.localStream;
    const video = stream ? stream.getVideoTracks() : [];
    for (const tr of video) tr.enabled = on && !this.muted.video;
    if (!on) this.unswap();
    if (this.localVideo && !this.swapped) {
      const want = on ? stream : null;
      if (this.localVideo.srcObject !== want) this.localVideo.srcObject = want;
    }
    if (this.pip) this.pip.hidden = !on || !video.length;
  }

  // ---- in call ----------------------------------------------------------

  /** @param {string} name */
  async startCall(name) {
    this.name = name;
    this.lobbyView?.stopMeter();
    const grid = h('div', { class: 'tiles', 'data-testid': 'remote-tiles' });
    this.tiles = new TileGrid(grid);
    this.statusCard = h('div', { class: 'call-status', 'data-testid': 'call-status', role: 'status', 'aria-live': 'polite' });
    this.banner = h('div', { class: 'banner', hidden: true, role: 'status' });
    this.toastEl = h('div', { class: 'toast', hidden: true, role: 'alert' });
    this.unreachable = new UnreachableNotice('caller');
    this.timerEl = h('span', { class: 'call-timer', 'data-testid': 'call-timer', role: 'timer', hidden: true });
    // Alone in a plain room: say so (not a black screen), with the invitation at hand.
    this.aloneEl = h('div', { class: 'alone', 'data-testid': 'waiting-for-others', hidden: true },
      h('p', { class: 'alone-title', text: t('room.waitingForOthers') }),
      this.info.role === 'user' ? this.inviteButton() : null);
    this.quality = new QualityMeter(() => (this.client ? [...this.client.peers.values()].map((l) => ({ pc: l.pc, name: '' })) : []));

    const localVideo = h('video', { class: 'mirror', autoplay: true, playsinline: true });
    localVideo.muted = true;
    this.localVideo = localVideo;
    const mainLocal = h('video', { class: 'mirror local-main', autoplay: true, playsinline: true, 'data-testid': 'local-main' });
    mainLocal.muted = true;
    this.mainLocal = mainLocal;
    const handle = h('div', { class: 'pip-handle', 'aria-hidden': 'true' });
    this.pip = h('div', { class: 'pip', tabindex: 0, 'aria-label': t('room.yourVideo'), 'data-testid': 'local-video' },
      localVideo, h('div', { class: 'pip-off', text: t('room.cameraOff') }), handle);

    // Toggles: pressed = muted / camera off, as on the kiosk (ui/media-toggle.js).
    // Icon-only buttons carry their name as a tooltip too.
    this.micButton = mediaToggle('audio', 'toggle-mic', this.muted, () => this.toggle('audio'));
    this.camButton = mediaToggle('video', 'toggle-cam', this.muted, () => this.toggle('video'));
    // Front/back camera: shown once the device turns out to have more than one.
    this.flipButton = h('button', { class: 'round', type: 'button', hidden: true, 'aria-label': t('room.switchCamera'), title: t('room.switchCamera'), 'data-testid': 'switch-camera' }, icon('flip'));
    this.flipButton.addEventListener('click', () => { void this.switchCamera(); });
    this.fsButton = h('button', { class: 'round', type: 'button', 'aria-label': t('room.fullScreen'), title: t('room.fullScreen'), 'data-testid': 'toggle-fullscreen' }, icon('full'));
    this.hangButton = h('button', { class: 'round danger', type: 'button', 'aria-label': t('room.hangUp'), title: t('room.hangUp'), 'data-testid': 'hangup' }, icon('hangup'));
    this.fsButton.addEventListener('click', () => { void toggleFullscreen(); });
    this.hangButton.addEventListener('click', () => this.hangup());
    const fsButton = this.fsButton;
    const onFs = () => {
      fsButton.replaceChildren(icon(isFullscreen() ? 'exitFull' : 'full'));
      fsButton.setAttribute('aria-label', isFullscreen() ? t('room.exitFullScreen') : t('room.fullScreen'));
      fsButton.title = fsButton.getAttribute('aria-label') || '';
    };
    document.addEventListener('fullscreenchange', onFs);
    this.disposers.push(() => document.removeEventListener('fullscreenchange', onFs));

    // The station's microphone muted / camera off at the kiosk: said in words.
    this.stationNote = h('div', { class: 'station-note', role: 'status', 'data-testid': 'station-muted', hidden: true });
    // Every notice in one place, the most important alone (ui/notices.js's PRIORITY).
    const notices = new NoticeArea();
    this.notices = notices;
    notices.add('offline', this.offline.el);
    notices.add('reconnecting', this.banner);
    notices.add('unreached', this.unreachable.el);
    notices.add('weak', this.quality.weak);
    notices.add('station-muted', this.stationNote);
    notices.add('toast', this.toastEl);
    this.disposers.push(() => notices.stop());
    this.controls = h('div', { class: 'controls' }, this.micButton, this.camButton, this.flipButton, this.fsButton, this.hangButton);
    this.stage = h('section', { class: 'call-stage', 'data-testid': 'call-page', 'data-state': 'connecting' },
      h('header', { class: 'call-top' }, h('span', { class: 'call-title', 'data-testid': 'call-title', text: this.info.roomName }), this.timerEl, this.quality.el),
      this.aloneEl, grid, mainLocal, this.statusCard, notices.el, this.pip, this.controls);
    replace(this.ctx.root, this.stage);
    // In landscape the controls fade after a few seconds in a call; a tap brings them back.
    const wake = () => this.showControls();
    this.stage.addEventListener('pointerdown', wake);
    this.stage.addEventListener('keydown', wake);
    this.lobbyView?.clearPreview(); // gone with the lobby
    const controls = this.controls;
    const top = /** @type {HTMLElement} */ (this.stage.querySelector('.call-top'));
    const stage = this.stage;
    this.disposers.push(makeFloating(this.pip, this.stage, {
      handle,
      reserveBottom: () => controls.getBoundingClientRect().height + 16,
      // Below the top bar and the notice under it.
      reserveTop: () => Math.max(top.getBoundingClientRect().bottom, notices.el.hidden ? 0 : notices.el.getBoundingClientRect().bottom)
        - stage.getBoundingClientRect().top + 4,
      avoid: () => [...grid.querySelectorAll('.tile-label')].map((el) => el.getBoundingClientRect()),
      watch: [top, notices.el, grid],
      onTap: () => this.swap(),
    }));
    this.showState('connecting');
    // The camera may still be starting (the permission prompt is open): wait for it,
    // so the first offers already carry our tracks.
    await this.mediaReady;
    await this.useMedia();
    if (this.destroyed) return;
    this.connect();
  }

  connect() {
    const client = new SignalingClient(this.ctx.wsUrl());
    this.client = client;
    exposeClient(client);
    if (this.muted.audio || this.muted.video) client.muted = { ...this.muted };
    void client.setLocalStream(this.localStream);
    client.onwelcome = (msg) => this.gotWelcome(msg);
    client.ringOnJoin = MEDIA_STATES.has(this.stage?.dataset.state || 'connecting');
    client.onstatus = (status, detail) => this.gotStatus(status, detail, client.reachable);
    client.oncallstate = (call) => this.gotCallState(call);
    client.ontrack = (peerId, participant, stream) => this.gotTrack(client, peerId, participant, stream);
    client.onpeerunreachable = (peerId, why) => this.unreachable?.unreachable(peerId, why);
    client.onpeerstate = (peerId, state) => { if (state === 'connected') this.unreachable?.settled(peerId); };
    client.onpeerclosed = (peerId, participant) => this.gotPeerClosed(client, peerId, participant);
    client.onpeerjoined = (peer) => this.gotPeerJoined(peer);
    client.onpeerupdated = (peer) => this.tiles?.setMuted(peer.participant || peer.id, peer.muted || {});
    client.onpeerleft = (_id, peer) => this.gotPeerLeft(peer);
    client.onerror = (code, message, ref) => this.gotError(code, message, ref);
    client.onbye = (reason) => this.gotBye(reason);
    client.join(this.info.roomId, this.name || '');
  }

  // ---- what the signaling client reports ----------------------------------

  /**
   * What `participant` is called: the station by its name, others by their roster name.
   * @param {SignalingClient} client
   * @param {string} participant
   */
  nameOf(client, participant) {
    if (participant === 'station') return this.info.station.name;
    for (const p of client.roster.values()) if (p.participant === participant && p.name) return p.name;
    return t('room.guest');
  }

  /** @param {WelcomeMessage} msg */
  gotWelcome(msg) {
    // The call object in `welcome` predates our join: the station rings, resumes our
    // call or lets us knock only after it, and says so in the `call-state` that follows.
    this.skipWelcomeState = true;
    if (msg.room && msg.room.name && !this.info.isStation) this.stage?.querySelector('.call-title')?.replaceChildren(msg.room.name);
    if (!this.info.isStation) this.showState('in-call');
  }

  /**
   * @param {Status} status
   * @param {number|string} [detail]  ms until the next reconnection attempt
   * @param {boolean} [reachable]  did the last attempt reach the station?
   */
  gotStatus(status, detail, reachable = true) {
    if (!this.banner) return;
    // A socket that dropped says "reconnecting"; one that cannot reach the station at
    // all says the station is offline, counting down to the next try.
    const away = status === 'reconnecting' && !reachable;
    this.banner.hidden = status !== 'reconnecting' || away;
    if (away) this.offline.show(typeof detail === 'number' ? detail : 0);
    else this.offline.hide();
    if (status === 'reconnecting') {
      this.banner.textContent = typeof detail === 'number' ? tn('room.reconnectingIn', Math.ceil(detail / 1000)) : t('room.reconnecting');
      this.tiles?.clear();
      void this.checkSession();
    }
  }

  /**
   * @param {SignalingClient} client
   * @param {string} peerId
   * @param {string} participant
   * @param {MediaStream} stream
   */
  gotTrack(client, peerId, participant, stream) {
    this.tiles?.setStream(participant, peerId, stream, this.nameOf(client, participant));
    this.showAlone();
  }

  /**
   * @param {SignalingClient} client
   * @param {string} peerId
   * @param {string} participant
   */
  gotPeerClosed(client, peerId, participant) {
    this.unswap();
    // The station replaces a failed connection with a new offer: still not up.
    if (!(peerId === STATION_PEER && this.stationUnreached)) this.unreachable?.settled(peerId);
    this.tiles?.dropStream(participant, peerId);
    const still = [...client.peers.values()].some((l) => l.participant === participant);
    if (!still) this.tiles?.remove(participant);
    this.showAlone();
  }

  /** @param {PeerInfo} peer */
  gotPeerJoined(peer) {
    if (!this.info.isStation && peer.kind === 'remote') this.toast(t('room.joined', { name: peer.name }));
  }

  /** @param {PeerInfo|undefined} peer */
  gotPeerLeft(peer) {
    if (peer && !this.info.isStation && peer.kind === 'remote') this.toast(t('room.left', { name: peer.name }));
  }

  /**
   * @param {string} code
   * @param {string} message
   * @param {string|null} ref  the type of the message that was refused
   */
  gotError(code, message, ref) {
    const state = this.stage?.dataset.state || '';
    if (code === 'ring_wait' && ['connecting', 'calling'].includes(state)) {
      // Rung (or knocked) again too soon: back to the card we came from, told to wait.
      this.active = false;
      this.showState(this.againFrom || 'ready');
      this.toast(errorText({ code }));
      return;
    }
    if (code === 'room_full') this.showState('full');
    else if (ref === 'join' && (code === 'forbidden' || code === 'room_not_found')) {
      this.destroy();
      renderError(this.ctx, code === 'forbidden' ? t('room.notAllowed') : t('room.roomNotFound'), errorText({ code }),
        this.info.role === 'user' ? [{ label: t('room.allRooms'), href: '#/' }] : []);
    } else if (code !== 'negotiation' && code !== 'candidate') {
      this.toast(errorText({ code }));
    } else {
      console.warn(code, message);
    }
  }

  /** @param {string} reason */
  gotBye(reason) {
    if (reason === 'shutdown') return; // the service restarts: the client reconnects
    if (reason === 'room_full') this.showState('full');
    else if (reason === 'room_deleted') this.showState('gone', t('room.roomDeleted'));
    else if (reason === 'replaced') this.showState('gone', t('room.replaced'));
    else if (reason !== 'left') this.finish(reason);
  }

  /**
   * @param {boolean} audio  the station's microphone is muted
   * @param {boolean} video  the station's camera is off
   */
  showStationMuted(audio, video) {
    const note = this.stationNote;
    if (!note) return;
    const parts = [audio ? t('room.stationMuted') : '', video ? t('room.stationCamOff') : ''].filter(Boolean);
    note.textContent = parts.join(' · ');
    note.hidden = parts.length === 0;
  }

  /**
   * The station says its connection to us failed (the call object's `unreached`; it
   * offers anew meanwhile): "Could not connect to the station", with what was tried,
   * on what our side's ICE saw (protocol.js diagnoseUnreachable), often before our
   * own connection gives up.
   * @param {SignalingClient} client
   * @param {boolean} unreached
   */
  showUnreached(client, unreached) {
    const was = this.stationUnreached;
    this.stationUnreached = unreached;
    if (!unreached) {
      if (was) this.unreachable?.settled(STATION_PEER);
      return;
    }
    void client.diagnose(STATION_PEER).then((why) => {
      if (this.stationUnreached && this.client === client) this.unreachable?.unreachable(STATION_PEER, why);
    });
  }

  /** @param {CallInfo|null} call */
  gotCallState(call) {
    const client = this.client;
    if (this.skipWelcomeState) {
      this.skipWelcomeState = false;
      return;
    }
    if (!call || !client) return;
    const me = client.peerId;
    const memberId = (/** @type {string|{id: string}} */ m) => (typeof m === 'string' ? m : m.id);
    const inCall = call.state === 'in-call' && (call.in_call || []).some((m) => memberId(m) === me);
    const calling = call.state === 'ringing' && (call.callers || []).some((m) => memberId(m) === me);
    const knocking = call.state === 'in-call' && (call.knocking || []).some((m) => memberId(m) === me);
    this.showStationMuted(inCall && !!call.audio_muted, inCall && !!call.video_muted);
    this.showUnreached(client, inCall && !!me && (call.unreached || []).includes(me));
    if (inCall || calling || knocking) this.againFrom = null; // the station took the ring
    if (inCall) {
      this.active = true;
      this.showState('in-call', '', call.live);
    } else if (calling) {
      this.active = true;
      this.showState('calling');
    } else if (knocking) {
      this.active = true;
      this.showState('knocking');
    } else if (call.state === 'idle' && call.ended === 'quiet' && ['connecting', 'calling'].includes(this.stage?.dataset.state || '')) {
      this.active = false;
      this.quietUntil = call.quiet_until ?? null;
      this.showState('quiet'); // do not disturb: the station did not ring
    } else if (this.stage?.dataset.state === 'cancelled') {
      // "Knock again" while the call lasts, "Call again" once it is over.
      if ((call.state === 'in-call') !== this.cancelledInCall) this.showState('cancelled');
    } else if (this.stage?.dataset.state === 'knocking') {
      // Out of the knock list: let in (an in-call state follows), sent away (`bye`
      // `refused` follows), or the call ended and we ring (a ringing state follows).
    } else if (this.active) {
      this.active = false;
      this.showState(call.ended === 'missed' ? 'missed' : call.ended === 'declined' ? 'declined' : 'ended');
    } else if (this.stage && ['connecting', 'in-call', 'calling'].includes(this.stage.dataset.state || '')) {
      this.showState('ready');
    }
  }

  /**
   * @param {PageState} state
   * @param {string} [detail]
   * @param {boolean} [live]
   */
  showState(state, detail = '', live = false) {
    if (!this.stage || !this.statusCard) return;
    if (!MEDIA_STATES.has(state)) this.releaseMedia();
    else this.showPreview(state !== 'knocking');
    this.stage.dataset.state = state;
    if (this.client) this.client.ringOnJoin = MEDIA_STATES.has(state);
    this.stage.classList.toggle('is-live', live);
    const stationName = this.info.station.name;
    const talked = this.stopTimer(state);
    if (state === 'calling') this.ringback.start();
    else this.ringback.stop();
    if (state === 'in-call') this.quality?.start();
    else this.quality?.stop();
    this.showAlone();
    this.showControls();
    /** @type {{title: string, text?: string, again?: boolean, leave?: boolean, cancel?: boolean, pulse?: boolean}|null} */
    let card = null;
    switch (state) {
      case 'connecting': card = { title: t('room.connecting'), pulse: true }; break;
      case 'calling': card = { title: t('room.calling', { name: stationName }), text: t('room.waitingForAnswer'), pulse: true }; break;
      case 'knocking': card = { title: t('room.knocking'), text: t('room.knockingText', { name: stationName }), cancel: true, pulse: true }; break;
      case 'cancelled':
        this.cancelledInCall = this.client?.callState?.state === 'in-call';
        card = { title: t('room.knockCancelled'), text: t('room.knockCancelledText'), again: true, leave: true };
        break;
      case 'missed': card = { title: t('room.noAnswer'), text: t('room.noAnswerText'), again: true, leave: true }; break;
      // No "Call again": it would not ring either. Until when, in this phone's time.
      case 'quiet': card = { title: t('room.quiet'), leave: true,
        text: this.quietUntil ? t('room.quietText', { name: stationName, time: formatClock(new Date(this.quietUntil * 1000)) })
          : t('room.quietTextNoEnd', { name: stationName }) }; break;
      case 'declined': card = { title: t('room.declined'), text: t('room.declinedText'), again: true, leave: true }; break;
      case 'ended': card = { title: t('room.callEnded'), text: talked, again: true, leave: true }; break;
      case 'ready': card = { title: stationName, text: t('room.notInCall'), again: true, leave: true }; break;
      case 'full': card = { title: t('room.roomFull'), text: t('error.room_full'), leave: true }; break;
      case 'gone': card = { title: t('room.disconnected'), text: detail, leave: true }; break;
      case 'in-call': card = null; break;
    }
    if (!card) {
      this.statusCard.hidden = true;
      this.statusCard.replaceChildren();
      return;
    }
    const buttons = [];
    if (card.again || state === 'full') {
      const label = state === 'full' ? t('room.tryAgain')
        : state === 'cancelled' && this.cancelledInCall ? t('room.knockAgain')
          : this.info.isStation ? t('room.callAgain') : t('room.rejoin');
      const again = h('button', { class: 'button primary big', type: 'button', 'data-testid': 'call-again' }, icon('phone'), label);
      again.addEventListener('click', () => {
        again.disabled = true; // one new call per press, even while the camera starts
        void this.callAgain();
      });
      buttons.push(again);
    }
    if (card.cancel) {
      const cancel = h('button', { class: 'button big', type: 'button', 'data-testid': 'cancel-knock', text: t('room.cancelKnock') });
      cancel.addEventListener('click', () => this.cancelKnock());
      buttons.push(cancel);
    }
    if (card.leave) {
      const leave = h('button', { class: 'button ghost big', type: 'button', 'data-testid': 'leave', text: t('room.leave') });
      leave.addEventListener('click', () => this.leave());
      buttons.push(leave);
    }
    this.statusCard.hidden = false;
    replace(this.statusCard,
      h('div', { class: `avatar${card.pulse ? ' pulse' : ''}`, 'aria-hidden': 'true', text: initials(this.info.isStation ? stationName : this.info.roomName) }),
      h('h2', { 'data-testid': 'call-status-title', text: card.title }),
      card.text ? h('p', { class: 'muted', text: card.text }) : null,
      buttons.length ? h('div', { class: 'actions' }, buttons) : null);
  }

  /**
   * The call timer: runs from the first in-call state; any other state stops it.
   * @param {PageState} state
   * @returns {string} "Call with <name> · 12 minutes" when a call just stopped, else ''
   */
  stopTimer(state) {
    if (state === 'in-call') {
      if (!this.callStart) {
        this.callStart = Date.now();
        const draw = () => {
          if (!this.timerEl || !this.callStart) return;
          this.timerEl.hidden = false;
          this.timerEl.textContent = formatTimer((Date.now() - this.callStart) / 1000);
        };
        draw();
        this.timerTick = setInterval(draw, 1000);
      }
      return '';
    }
    if (this.timerTick) clearInterval(this.timerTick);
    this.timerTick = null;
    if (this.timerEl) this.timerEl.hidden = true;
    const start = this.callStart;
    this.callStart = 0;
    if (!start) return '';
    const name = this.info.isStation ? this.info.station.name : this.info.roomName;
    return t('room.callEndedAfter', { name, duration: formatDuration((Date.now() - start) / 1000) });
  }

  /** "Waiting for others" while nobody else is in a plain room's call. */
  showAlone() {
    if (!this.aloneEl || !this.stage) return;
    const alone = !this.info.isStation && this.stage.dataset.state === 'in-call' && (this.tiles?.tiles.size ?? 0) === 0;
    this.aloneEl.hidden = !alone;
  }

  /** A button that makes a guest link to this room and copies (or shares) it. */
  inviteButton() {
    const button = h('button', { class: 'button primary', type: 'button', 'data-testid': 'alone-invite', text: t('rooms.invite') });
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        const link = await api.makeGuestLink(this.info.roomId, { ttl_seconds: 86400 });
        const data = { title: t('rooms.shareTitle', { room: this.info.roomName }), url: link.guest_url };
        if (typeof navigator.share === 'function') await navigator.share(data).catch(() => undefined);
        else await navigator.clipboard.writeText(link.guest_url).catch(() => undefined);
        button.textContent = t('rooms.copied');
        button.dataset.url = link.guest_url;
      } catch (err) {
        this.toast(errorText(err));
      } finally {
        button.disabled = false;
      }
    });
    return button;
  }

  /** Shows the controls; in landscape during a call they fade again after CONTROLS_FADE_MS. */
  showControls() {
    const stage = this.stage;
    if (!stage) return;
    stage.classList.remove('controls-faded');
    if (this.fadeTimer) clearTimeout(this.fadeTimer);
    this.fadeTimer = null;
    if (stage.dataset.state !== 'in-call' || !matchMedia('(orientation: landscape)').matches) return;
    this.fadeTimer = setTimeout(() => {
      if (stage.dataset.state === 'in-call' && !stage.contains(document.activeElement === document.body ? null : document.activeElement)) {
        stage.classList.add('controls-faded');
      }
    }, CONTROLS_FADE_MS);
  }

  /** @param {'audio'|'video'} kind */
  toggle(kind) {
    this.muted = { ...this.muted, [kind]: !this.muted[kind] };
    if (this.client) this.client.setMuted(this.muted.audio, this.muted.video);
    else this.applyMuted();
    this.lobbyView?.showToggle(kind, this.muted);
    const button = kind === 'audio' ? this.micButton : this.camButton;
    if (button) showToggle(button, kind, this.muted);
    this.pip?.classList.toggle('video-muted', this.muted.video);
  }

  /** Shows the camera switch when there is more than one camera to switch between. */
  async showFlip() {
    const devices = await navigator.mediaDevices?.enumerateDevices?.().catch(() => []) ?? [];
    const cameras = devices.filter((d) => d.kind === 'videoinput');
    if (this.flipButton) this.flipButton.hidden = cameras.length < 2 || !this.localStream?.getVideoTracks().length;
    return cameras;
  }

  /**
   * The next camera (front/back on a phone): a new video track replaces the old one in
   * the preview and on every sender (replaceTrack: no renegotiation).
   */
  async switchCamera() {
    const stream = this.localStream;
    const old = stream?.getVideoTracks()[0];
    if (!stream || !old || !this.flipButton) return;
    this.flipButton.disabled = true;
    try {
      const cameras = await this.showFlip();
      const current = cameras.findIndex((c) => c.deviceId === old.getSettings().deviceId);
      const next = cameras[(current + 1) % cameras.length];
      // Phones seldom open two cameras at once: let go of this one first.
      old.stop();
      let fresh;
      try {
        fresh = await navigator.mediaDevices.getUserMedia({ video: { ...VIDEO, facingMode: undefined, deviceId: { exact: next.deviceId } } });
      } catch (err) {
        console.warn('switch camera', err);
        fresh = await navigator.mediaDevices.getUserMedia({ video: VIDEO });
      }
      const track = fresh.getVideoTracks()[0];
      if (this.destroyed || this.localStream !== stream) { track.stop(); return; }
      track.enabled = !this.muted.video;
      const swapped = new MediaStream([...stream.getAudioTracks(), track]);
      this.localStream = swapped;
      // The rear camera is not mirrored: text behind the caller reads the right way.
      const front = track.getSettings().facingMode !== 'environment';
      this.localVideo?.classList.toggle('mirror', front && !this.swapped);
      this.mainLocal?.classList.toggle('mirror', front);
      if (this.localVideo && !this.swapped) this.localVideo.srcObject = swapped;
      if (this.mainLocal && this.swapped) this.mainLocal.srcObject = swapped;
      await this.client?.setLocalStream(swapped);
    } finally {
      this.flipButton.disabled = false;
    }
  }

  hangup() {
    if (!this.client) return;
    // `active`: we rang (maybe so recently that the ringing state is still on its way)
    // or are knocking or in the call; the hang-up follows the ring on the same socket.
    if (this.info.isStation && this.active) {
      if (this.stage?.dataset.state === 'knocking') {
        this.cancelKnock();
        return;
      }
      this.client.call('hangup');
      return; // the call-state that follows shows "Call ended"
    }
    this.leave();
  }

  /** Cancel while knocking: the station forgets the knock (its card goes), the camera is let go. */
  cancelKnock() {
    const client = this.client;
    if (!client || this.stage?.dataset.state !== 'knocking') return;
    this.active = false;
    this.showState('cancelled'); // the call-state that follows no longer names us
    client.call('hangup');
  }

  async callAgain() {
    this.againFrom = /** @type {PageState|undefined} */ (this.stage?.dataset.state) || null;
    const client = this.client;
    if (!client || client.status === 'closed' || this.stage?.dataset.state === 'full') {
      client?.close();
      this.client = null;
      this.tiles?.clear();
      this.showState('connecting');
      await this.useMedia();
      if (this.destroyed) return;
      this.connect();
      return;
    }
    await this.useMedia();
    if (this.destroyed || this.client !== client) return;
    if (this.info.isStation) {
      this.active = true;
      this.showState('calling');
      client.call('ring');
    } else {
      client.close();
      this.connect();
    }
  }

  /** Leave: no connection, no camera; users go back to their rooms, guests see a finished page. */
  leave() {
    if (this.info.role === 'user') {
      this.destroy();
      this.ctx.navigate('#/');
      return;
    }
    this.finish('left');
  }

  /**
   * The end of this page's call for good: a full page saying why.
   * @param {string} reason  `left` (Leave) or the `bye` reason
   */
  finish(reason) {
    this.destroy();
    const key = ['left', 'refused', 'revoked', 'session_ended'].includes(reason) ? reason : 'other';
    const text = { title: t(`room.fin.${key}`), text: t(`room.fin.${key}Text`) };
    const room = `#/room/${encodeURIComponent(this.info.roomId)}`;
    /** @type {import('./error.js').Action[]} */
    const actions = [];
    if (reason === 'left' || reason === 'refused') {
      actions.push({ label: this.info.isStation ? t('room.callAgain') : t('room.rejoin'), onclick: () => this.ctx.navigate(room) });
    } else if (this.info.role === 'user') {
      actions.push({ label: t('room.allRooms'), href: '#/' });
    }
    renderFinished(this.ctx, text.title, text.text, actions);
  }

  /**
   * While reconnecting: is the session still there? A withdrawn link or a changed
   * password must end on a clear page, not in "reconnecting…" forever.
   */
  async checkSession() {
    const now = Date.now();
    if (now - this.lastSessionCheck < SESSION_CHECK_MS) return;
    this.lastSessionCheck = now;
    let who;
    try {
      who = await api.me();
    } catch {
      return; // the station is unreachable: keep trying
    }
    if (!who && !this.destroyed && this.client?.status === 'reconnecting') this.finish('session_ended');
  }

  /** @param {string} text */
  toast(text) {
    const el = this.toastEl;
    if (!el) return;
    el.textContent = text;
    el.hidden = false;
    if (this.toastTimer) clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => { el.hidden = true; }, 4000);
  }

  destroy() {
    if (this.destroyed) return;
    this.destroyed = true;
    this.client?.close();
    this.client = null;
    for (const d of this.disposers.splice(0)) d();
    if (this.toastTimer) clearTimeout(this.toastTimer);
    if (this.timerTick) clearInterval(this.timerTick);
    if (this.fadeTimer) clearTimeout(this.fadeTimer);
    this.ringback.stop();
    this.offline.hide();
    this.quality?.stop();
    this.lobbyView?.stopMeter();
    this.releaseMedia();
  }

  /** A tap on the small window swaps it with the main picture (the other side's), and back. */
  swap() {
    const tile = [...(this.tiles?.tiles.values() ?? [])].find((x) => x.video.srcObject);
    const remote = tile ? /** @type {MediaStream} */ (tile.video.srcObject).getVideoTracks() : [];
    const swapped = !this.swapped && remote.length > 0 && !!this.localStream;
    if (swapped === this.swapped || !this.localVideo || !this.mainLocal) return;
    this.swapped = swapped;
    this.stage?.classList.toggle('swapped', swapped);
    // The remote audio keeps playing from its tile: only pictures move.
    this.mainLocal.srcObject = swapped ? this.localStream : null;
    this.localVideo.srcObject = swapped ? new MediaStream(remote) : this.localStream;
    this.localVideo.classList.toggle('mirror', !swapped && this.mainLocal.classList.contains('mirror'));
  }

  unswap() {
    if (this.swapped) this.swap();
  }
}

/** @type {MediaTrackConstraints} the front camera, 4:3 */
const VIDEO = { width: { ideal: 640 }, height: { ideal: 480 }, aspectRatio: { ideal: 4 / 3 }, facingMode: 'user' };

/** Camera + microphone, falling back to microphone only, then to nothing. */
async function getLocalMedia() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return null;
  const video = VIDEO;
  const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  for (const constraints of [{ video, audio }, { audio }]) {
    try {
      return await navigator.mediaDevices.getUserMedia(constraints);
    } catch (err) {
      console.warn('getUserMedia', constraints, err);
    }
  }
  return null;
}

/** @param {MediaStream|null} stream */
function stopStream(stream) {
  if (stream) for (const t of stream.getTracks()) t.stop();
}
