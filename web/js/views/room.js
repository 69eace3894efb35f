// The call page (#/room/<id>): guest-token exchange, name entry, then the call:
// remote tiles, the floating local video, camera/mic/full-screen/hang-up controls
// and the station's call states ("Calling…", "No answer", "Declined", "Call ended").
import * as api from '../api.js';
import { h, icon, replace } from '../dom.js';
import { exposeClient } from '../debug.js';
import { SignalingClient } from '../protocol.js';
import { enterFullscreen, isFullscreen, isMobile, toggleFullscreen } from '../ui/fullscreen.js';
import { makeFloating } from '../ui/pip.js';
import { TileGrid, initials } from '../ui/tiles.js';
import { renderError } from './error.js';
import { signIn } from './login.js';

/**
 * @typedef {import('../app.js').Context} Context
 * @typedef {import('../protocol.js').CallInfo} CallInfo
 */

const NAME_KEY = 'videostation.name';

/** Readable text for the guest-token errors of POST /api/auth/guest. */
const TOKEN_ERRORS = /** @type {Record<string, string>} */ ({
  token_expired: 'This invitation has expired.',
  guest_link_expired: 'This invitation has expired.',
  token_revoked: 'This invitation was withdrawn.',
  guest_link_revoked: 'This invitation was withdrawn.',
  guest_link_used_up: 'This invitation has already been used as often as allowed.',
  token_used_up: 'This invitation has already been used as often as allowed.',
});

/**
 * @param {Context} ctx
 * @param {string} roomId
 * @returns {Promise<(() => void)|void>}
 */
export async function renderRoom(ctx, roomId) {
  const token = ctx.route.params.get('guest_token');
  if (token) {
    try {
      await api.guestLogin(token);
    } catch (err) {
      ctx.clearHashParams();
      if (err instanceof api.ApiError && err.status !== 0 && err.status < 500) {
        renderError(ctx, 'This invitation link cannot be used',
          `${TOKEN_ERRORS[err.code] || 'The link is not valid or has expired.'} Ask the person who sent it for a new one.`,
          []);
        return;
      }
      throw err;
    }
    ctx.clearHashParams();
  }

  const { station, who } = await signIn(ctx);
  if (who.role === 'kiosk') { ctx.navigate('#/kiosk'); return; }
  if (who.role === 'guest' && who.room && who.room !== roomId) {
    renderError(ctx, 'Wrong room', 'Your invitation is for another room.',
      [{ label: 'Go to my room', href: `#/room/${encodeURIComponent(who.room)}` }]);
    return;
  }
  const isStation = roomId === station.room_id;
  let roomName = isStation ? station.name : roomId;
  try {
    roomName = (await api.getRoom(roomId)).name || roomName;
  } catch (err) {
    if (err instanceof api.ApiError && err.status === 404) {
      renderError(ctx, 'Room not found', 'This room does not exist (any more).',
        who.role === 'user' ? [{ label: 'All rooms', href: '#/' }] : []);
      return;
    }
    // Guests may not be allowed to read room details: the welcome message has the name.
  }
  document.title = roomName;
  const call = new CallPage(ctx, { roomId, roomName, isStation, station, role: who.role });
  await call.lobby();
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
    /** @type {MediaStream|null} */
    this.localStream = null;
    /** @type {SignalingClient|null} */
    this.client = null;
    this.muted = { audio: false, video: false };
    /** Were we calling or in the call since the last ring? Then an idle state is "ended". */
    this.active = false;
    /** @type {(() => void)[]} */
    this.disposers = [];
    /** @type {Promise<void>} resolves once the camera/microphone request is settled */
    this.mediaReady = Promise.resolve();
    /** @type {ReturnType<typeof setTimeout>|null} */
    this.toastTimer = null;
    this.destroyed = false;
  }

  // ---- lobby: name + preview ------------------------------------------

  async lobby() {
    const preview = h('video', { class: 'mirror', autoplay: true, playsinline: true });
    preview.muted = true;
    const mediaNote = h('p', { class: 'muted small', role: 'status' });
    const nameInput = h('input', {
      id: 'name', name: 'name', autocomplete: 'nickname', maxlength: 40, required: true,
      placeholder: 'Your name', value: localStorage.getItem(NAME_KEY) || '',
    });
    const go = h('button', { class: 'button primary wide big', type: 'submit', 'data-testid': 'start-call' },
      icon('phone'), this.info.isStation ? `Call ${this.info.roomName}` : 'Join');
    const form = h('form', { class: 'card lobby-card', 'data-testid': 'lobby' },
      h('div', { class: 'lobby-preview' }, preview, h('div', { class: 'preview-empty', text: 'Camera off' })),
      h('div', { class: 'lobby-form' },
        h('p', { class: 'eyebrow', text: this.info.isStation ? 'Video call' : 'Room' }),
        h('h1', { text: this.info.roomName }),
        h('label', { for: 'name', text: 'Your name' }), nameInput, mediaNote, go));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const name = nameInput.value.trim().slice(0, 40);
      if (!name) { nameInput.focus(); return; }
      localStorage.setItem(NAME_KEY, name);
      // Inside the click: browsers only allow full-screen from a user gesture.
      if (isMobile()) void enterFullscreen();
      void this.startCall(name);
    });
    replace(this.ctx.root, h('section', { class: 'center-screen lobby' }, form));
    if (!nameInput.value) nameInput.focus();

    this.mediaReady = getLocalMedia().then((stream) => {
      if (this.destroyed) { stopStream(stream); return; }
      this.localStream = stream;
      if (stream) {
        preview.srcObject = stream;
        form.classList.add('has-video');
        if (!stream.getVideoTracks().length) mediaNote.textContent = 'No camera found: the others will only hear you.';
      } else {
        mediaNote.textContent = 'Camera and microphone are blocked or missing: you can still see and hear the others.';
      }
    });
  }

  // ---- in call ----------------------------------------------------------

  /** @param {string} name */
  async startCall(name) {
    this.name = name;
    const grid = h('div', { class: 'tiles', 'data-testid': 'remote-tiles' });
    this.tiles = new TileGrid(grid);
    this.statusCard = h('div', { class: 'call-status', 'data-testid': 'call-status', role: 'status', 'aria-live': 'polite' });
    this.banner = h('div', { class: 'banner', hidden: true, role: 'status' });
    this.toastEl = h('div', { class: 'toast', hidden: true, role: 'alert' });

    const localVideo = h('video', { class: 'mirror', autoplay: true, playsinline: true });
    localVideo.muted = true;
    const handle = h('div', { class: 'pip-handle', 'aria-hidden': 'true' });
    this.pip = h('div', { class: 'pip', tabindex: 0, 'aria-label': 'Your video (drag to move, corner to resize)', 'data-testid': 'local-video' },
      localVideo, h('div', { class: 'pip-off', text: 'Camera off' }), handle);

    this.micButton = h('button', { class: 'round', type: 'button', 'aria-pressed': 'false', 'aria-label': 'Microphone', 'data-testid': 'toggle-mic' }, icon('mic'));
    this.camButton = h('button', { class: 'round', type: 'button', 'aria-pressed': 'false', 'aria-label': 'Camera', 'data-testid': 'toggle-cam' }, icon('cam'));
    this.fsButton = h('button', { class: 'round', type: 'button', 'aria-label': 'Full screen', 'data-testid': 'toggle-fullscreen' }, icon('full'));
    this.hangButton = h('button', { class: 'round danger', type: 'button', 'aria-label': 'Hang up', 'data-testid': 'hangup' }, icon('hangup'));
    this.micButton.addEventListener('click', () => this.toggle('audio'));
    this.camButton.addEventListener('click', () => this.toggle('video'));
    this.fsButton.addEventListener('click', () => { void toggleFullscreen(); });
    this.hangButton.addEventListener('click', () => this.hangup());
    const fsButton = this.fsButton;
    const onFs = () => {
      fsButton.replaceChildren(icon(isFullscreen() ? 'exitFull' : 'full'));
      fsButton.setAttribute('aria-label', isFullscreen() ? 'Exit full screen' : 'Full screen');
    };
    document.addEventListener('fullscreenchange', onFs);
    this.disposers.push(() => document.removeEventListener('fullscreenchange', onFs));

    this.controls = h('div', { class: 'controls' }, this.micButton, this.camButton, this.fsButton, this.hangButton);
    this.stage = h('section', { class: 'call-stage', 'data-testid': 'call-page', 'data-state': 'connecting' },
      h('header', { class: 'call-top' }, h('span', { class: 'call-title', text: this.info.roomName }), this.banner),
      grid, this.statusCard, this.pip, this.controls, this.toastEl);
    replace(this.ctx.root, this.stage);
    const controls = this.controls;
    this.disposers.push(makeFloating(this.pip, this.stage, { handle, reserveBottom: () => controls.getBoundingClientRect().height + 16 }));
    this.showState('connecting');
    // The camera may still be starting (the permission prompt is open): wait for it,
    // so the first offers already carry our tracks.
    await this.mediaReady;
    if (this.destroyed) return;
    const stream = this.localStream;
    localVideo.srcObject = stream;
    this.pip.hidden = !stream || !stream.getVideoTracks().length;
    this.micButton.disabled = !stream || !stream.getAudioTracks().length;
    this.camButton.disabled = !stream || !stream.getVideoTracks().length;
    this.connect();
  }

  connect() {
    const client = new SignalingClient(this.ctx.wsUrl());
    this.client = client;
    exposeClient(client);
    if (this.muted.audio || this.muted.video) client.muted = { ...this.muted };
    void client.setLocalStream(this.localStream);
    const tiles = /** @type {TileGrid} */ (this.tiles);
    /** @param {string} participant */
    const nameOf = (participant) => {
      if (participant === 'station') return this.info.station.name;
      for (const p of client.roster.values()) if (p.participant === participant && p.name) return p.name;
      return 'Guest';
    };

    client.onwelcome = (msg) => {
      if (msg.room && msg.room.name) this.stage?.querySelector('.call-title')?.replaceChildren(msg.room.name);
      if (!this.info.isStation) this.showState('in-call');
    };
    client.onstatus = (status, detail) => {
      if (!this.banner) return;
      this.banner.hidden = status !== 'reconnecting';
      if (status === 'reconnecting') {
        this.banner.textContent = `Connection lost — reconnecting${typeof detail === 'number' ? ` in ${Math.ceil(detail / 1000)} s` : ''}…`;
        tiles.clear();
      }
    };
    client.oncallstate = (call) => this.onCallState(call);
    client.ontrack = (peerId, participant, stream) => tiles.setStream(participant, peerId, stream, nameOf(participant));
    client.onpeerclosed = (peerId, participant) => {
      tiles.dropStream(participant, peerId);
      const still = [...client.peers.values()].some((l) => l.participant === participant);
      if (!still) tiles.remove(participant);
    };
    client.onpeerjoined = (peer) => {
      if (!this.info.isStation && peer.kind === 'remote') this.toast(`${peer.name} joined`);
    };
    client.onpeerupdated = (peer) => tiles.setMuted(peer.participant || peer.id, peer.muted || {});
    client.onpeerleft = (_id, peer) => {
      if (peer && !this.info.isStation && peer.kind === 'remote') this.toast(`${peer.name} left`);
    };
    client.onerror = (code, message, ref) => {
      if (code === 'room_full') this.showState('full');
      else if (ref === 'join' && (code === 'forbidden' || code === 'room_not_found')) {
        this.destroy();
        renderError(this.ctx, code === 'forbidden' ? 'Not allowed' : 'Room not found', message,
          this.info.role === 'user' ? [{ label: 'All rooms', href: '#/' }] : []);
      } else if (code !== 'negotiation' && code !== 'candidate') {
        this.toast(message);
      } else {
        console.warn(code, message);
      }
    };
    client.onbye = (reason) => {
      if (reason === 'room_full') this.showState('full');
      else if (reason === 'room_deleted') this.showState('gone', 'This room was deleted.');
      else if (reason === 'replaced') this.showState('gone', 'You joined this room from another window.');
    };
    client.join(this.info.roomId, this.name || '');
  }

  /** @param {CallInfo|null} call */
  onCallState(call) {
    const client = this.client;
    if (!call || !client) return;
    const me = client.peerId;
    const memberId = (/** @type {string|{id: string}} */ m) => (typeof m === 'string' ? m : m.id);
    const inCall = call.state === 'in-call' && (call.in_call || []).some((m) => memberId(m) === me);
    const calling = call.state === 'ringing' && (call.callers || []).some((m) => memberId(m) === me);
    if (inCall) {
      this.active = true;
      this.showState('in-call', '', call.live);
    } else if (calling) {
      this.active = true;
      this.showState('calling');
    } else if (this.active) {
      this.active = false;
      this.showState(call.ended === 'missed' ? 'missed' : call.ended === 'declined' ? 'declined' : 'ended');
    } else if (this.stage && ['connecting', 'in-call', 'calling'].includes(this.stage.dataset.state || '')) {
      this.showState('ready');
    }
  }

  /**
   * @param {'connecting'|'calling'|'in-call'|'missed'|'declined'|'ended'|'ready'|'full'|'gone'} state
   * @param {string} [detail]
   * @param {boolean} [live]
   */
  showState(state, detail = '', live = false) {
    if (!this.stage || !this.statusCard) return;
    this.stage.dataset.state = state;
    this.stage.classList.toggle('is-live', live);
    const stationName = this.info.station.name;
    /** @type {{title: string, text?: string, again?: boolean, leave?: boolean, cancel?: boolean, pulse?: boolean}|null} */
    let card = null;
    switch (state) {
      case 'connecting': card = { title: 'Connecting…', pulse: true }; break;
      case 'calling': card = { title: `Calling ${stationName}…`, text: 'Waiting for someone to answer.', cancel: true, pulse: true }; break;
      case 'missed': card = { title: 'No answer', text: 'Nobody answered the call.', again: true, leave: true }; break;
      case 'declined': card = { title: 'Declined', text: 'The call was declined.', again: true, leave: true }; break;
      case 'ended': card = { title: 'Call ended', again: true, leave: true }; break;
      case 'ready': card = { title: stationName, text: 'Not in a call.', again: true, leave: true }; break;
      case 'full': card = { title: 'This room is full', text: 'Too many people are in this call. Try again later.', leave: true }; break;
      case 'gone': card = { title: 'Disconnected', text: detail, leave: true }; break;
      case 'in-call': card = null; break;
    }
    if (!card) {
      this.statusCard.hidden = true;
      this.statusCard.replaceChildren();
      return;
    }
    const buttons = [];
    if (card.again || state === 'full') {
      const again = h('button', { class: 'button primary big', type: 'button', 'data-testid': 'call-again' }, icon('phone'),
        state === 'full' ? 'Try again' : this.info.isStation ? 'Call again' : 'Rejoin');
      again.addEventListener('click', () => this.callAgain());
      buttons.push(again);
    }
    if (card.cancel) {
      const cancel = h('button', { class: 'button danger big', type: 'button', 'data-testid': 'cancel-call' }, icon('hangup'), 'Cancel');
      cancel.addEventListener('click', () => this.hangup());
      buttons.push(cancel);
    }
    if (card.leave) {
      const leave = h('button', { class: 'button ghost big', type: 'button', 'data-testid': 'leave', text: 'Leave' });
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

  /** @param {'audio'|'video'} kind */
  toggle(kind) {
    this.muted = { ...this.muted, [kind]: !this.muted[kind] };
    this.client?.setMuted(this.muted.audio, this.muted.video);
    const button = kind === 'audio' ? this.micButton : this.camButton;
    if (button) {
      button.setAttribute('aria-pressed', String(this.muted[kind]));
      button.replaceChildren(icon(kind === 'audio' ? (this.muted.audio ? 'micOff' : 'mic') : (this.muted.video ? 'camOff' : 'cam')));
    }
    this.pip?.classList.toggle('video-muted', this.muted.video);
  }

  hangup() {
    if (!this.client) return;
    if (this.info.isStation && this.client.callState && this.client.callState.state !== 'idle' && this.active) {
      this.client.call('hangup');
      return; // the call-state that follows shows "Call ended"
    }
    this.leave();
  }

  callAgain() {
    const client = this.client;
    if (!client || client.status === 'closed' || this.stage?.dataset.state === 'full') {
      client?.close();
      this.tiles?.clear();
      this.showState('connecting');
      this.connect();
      return;
    }
    if (this.info.isStation) {
      this.active = true;
      this.showState('calling');
      client.call('ring');
    } else {
      client.close();
      this.connect();
    }
  }

  leave() {
    this.client?.close();
    this.client = null;
    if (this.info.role === 'user') {
      this.ctx.navigate('#/');
      return;
    }
    this.showState('ended');
    const leaveButton = this.statusCard?.querySelector('[data-testid="leave"]');
    leaveButton?.remove();
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
    stopStream(this.localStream);
    this.localStream = null;
  }
}

/** Camera + microphone, falling back to microphone only, then to nothing. */
async function getLocalMedia() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return null;
  const video = { width: { ideal: 640 }, height: { ideal: 480 }, aspectRatio: { ideal: 4 / 3 }, facingMode: 'user' };
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
