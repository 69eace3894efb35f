// The lobby before a call (#/room/<id>, views/room.js shows it first): the room's
// name, the caller's name, a preview of their camera, microphone and camera toggles
// and a level meter that shows the microphone is heard. The choices carry into the
// call; the name is remembered for the next one.
import { h, icon, replace } from '../dom.js';
import { t } from '../i18n.js';
import { enterFullscreen, isMobile } from '../ui/fullscreen.js';
import { languageSwitch } from '../ui/language.js';
import { mediaToggle, showToggle } from '../ui/media-toggle.js';

/**
 * @typedef {import('../app.js').Context} Context
 * @typedef {import('../ui/media-toggle.js').Kind} Kind
 * @typedef {import('../ui/media-toggle.js').Muted} Muted
 */

const NAME_KEY = 'videostation.name';

export class Lobby {
  /**
   * @param {Context} ctx
   * @param {{roomName: string, isStation: boolean}} info
   * @param {Muted} muted  the microphone and camera choices so far
   */
  constructor(ctx, info, muted) {
    this.ctx = ctx;
    /** @type {((kind: Kind) => void)|null} a toggle was pressed */
    this.ontoggle = null;
    /** @type {((name: string) => void)|null} Call was pressed with this name */
    this.onstart = null;
    /** @type {(() => void)|null} stops the level meter */
    this.stopLevel = null;

    const preview = h('video', { class: 'mirror', autoplay: true, playsinline: true, 'data-testid': 'lobby-preview' });
    preview.muted = true;
    this.preview = preview;
    this.mediaNote = h('p', { class: 'muted small', role: 'status' });
    const nameInput = h('input', {
      id: 'name', name: 'name', autocomplete: 'nickname', maxlength: 40, required: true,
      placeholder: t('room.yourName'), value: localStorage.getItem(NAME_KEY) || '',
    });
    this.nameInput = nameInput;
    const go = h('button', { class: 'button primary wide big', type: 'submit', 'data-testid': 'start-call' },
      icon('phone'), info.isStation ? t('room.callStation', { name: info.roomName }) : t('room.join'));
    // Before joining: microphone and camera on or off (pressed = off), and a level meter
    // that shows the microphone is heard. The choices carry into the call.
    this.meter = h('div', { class: 'lobby-meter', role: 'meter', 'aria-label': t('room.micLevel'), 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': 0, 'data-testid': 'mic-level' }, h('span'));
    this.micToggle = mediaToggle('audio', 'lobby-mic', muted, () => this.ontoggle?.('audio'));
    this.camToggle = mediaToggle('video', 'lobby-cam', muted, () => this.ontoggle?.('video'));
    this.form = h('form', { class: 'card lobby-card', 'data-testid': 'lobby' },
      h('div', { class: 'lobby-preview' }, preview, h('div', { class: 'preview-empty', text: t('room.cameraOff') }),
        h('div', { class: 'lobby-media' }, this.micToggle, this.meter, this.camToggle)),
      h('div', { class: 'lobby-form' },
        h('div', { class: 'lobby-top' },
          h('p', { class: 'eyebrow', text: info.isStation ? t('room.videoCall') : t('room.room') }),
          languageSwitch(() => this.ctx.navigate(location.hash))),
        h('h1', { text: info.roomName }),
        h('label', { for: 'name', text: t('room.yourName') }), nameInput, this.mediaNote, go));
    this.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const name = nameInput.value.trim().slice(0, 40);
      if (!name) { nameInput.focus(); return; }
      localStorage.setItem(NAME_KEY, name);
      // Inside the click: browsers only allow full-screen from a user gesture.
      if (isMobile()) void enterFullscreen();
      this.onstart?.(name);
    });
  }

  /** Puts the lobby on the page. */
  show() {
    replace(this.ctx.root, h('section', { class: 'center-screen lobby' }, this.form));
    if (!this.nameInput.value) this.nameInput.focus();
  }

  /**
   * The camera and microphone as they came (null: none, or refused): the preview, the
   * meter, toggles only for what there is.
   * @param {MediaStream|null} stream
   */
  showMedia(stream) {
    this.micToggle.disabled = !stream || !stream.getAudioTracks().length;
    this.camToggle.disabled = !stream || !stream.getVideoTracks().length;
    if (!stream) {
      this.mediaNote.textContent = t('room.noMedia');
      return;
    }
    this.preview.srcObject = stream;
    this.form.classList.add('has-video');
    if (!stream.getVideoTracks().length) this.mediaNote.textContent = t('room.noCamera');
    this.stopLevel = startMeter(stream, this.meter);
  }

  /** @param {boolean} off  the camera is off: the preview says so */
  showVideoMuted(off) {
    this.form.classList.toggle('video-muted', off);
  }

  /** @param {Kind} kind @param {Muted} muted */
  showToggle(kind, muted) {
    showToggle(kind === 'audio' ? this.micToggle : this.camToggle, kind, muted);
  }

  /** The preview lets go of the camera. */
  clearPreview() {
    this.preview.srcObject = null;
  }

  stopMeter() {
    this.stopLevel?.();
    this.stopLevel = null;
  }
}

/**
 * A live microphone level (Web Audio AnalyserNode) drawn into `meter`.
 * @param {MediaStream} stream
 * @param {HTMLElement} meter
 * @returns {() => void} stops it
 */
function startMeter(stream, meter) {
  if (!stream.getAudioTracks().length || typeof AudioContext !== 'function') return () => undefined;
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  ctx.createMediaStreamSource(stream).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const bar = /** @type {HTMLElement} */ (meter.firstElementChild);
  let frame = 0;
  const draw = () => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const v of samples) sum += v * v;
    // RMS in dB, -60..0 dB shown as 0..100.
    const db = 10 * Math.log10(sum / samples.length + 1e-10);
    const level = Math.round(Math.min(100, Math.max(0, (db + 60) * 100 / 60)));
    meter.setAttribute('aria-valuenow', String(level));
    bar.style.transform = `scaleX(${level / 100})`;
    frame = requestAnimationFrame(draw);
  };
  void ctx.resume().catch(() => undefined);
  draw();
  return () => { cancelAnimationFrame(frame); void ctx.close().catch(() => undefined); };
}
