// The station's own controls during a call, on the kiosk beside Hang up: the volume of
// the callers' sound the screen plays (remembered on this screen across reloads and
// calls), the station's microphone mute and camera off (the service stops sending
// them: silence and black), and a meter of what the microphone sends (`mic-level`,
// measured by the service after echo cancelling, about 8 times a second).
//
//   const controls = new StationAudio();
//   slot.append(controls.el);
//   controls.onvolume = (v) => tiles.setVolume(v);
//   controls.onmute = (audio, video) => client.setStationMedia(audio, video);
//   controls.showLevel(-18.5, false);
import { h, icon } from '../dom.js';
import { formatPercent, t } from '../i18n.js';

/** localStorage: the volume (0..1) of the callers' sound on this screen. */
export const VOLUME_KEY = 'videostation.kiosk.volume';
/** A step of the − / + buttons. */
export const VOLUME_STEP = 0.1;
/** The volume of a screen that never set one. */
export const VOLUME_DEFAULT = 0.8;
/** The meter's range: this many dB below full scale shows as empty. */
export const METER_FLOOR_DBFS = -60;

/** @returns {number} the remembered volume, or the default */
export function readVolume() {
  try {
    const stored = localStorage.getItem(VOLUME_KEY);
    const value = stored === null ? NaN : Number(stored);
    return Number.isFinite(value) ? clampVolume(value) : VOLUME_DEFAULT;
  } catch {
    return VOLUME_DEFAULT; // storage disabled
  }
}

/** @param {number} v */
function clampVolume(v) {
  return Math.round(Math.min(1, Math.max(0, v)) * 100) / 100;
}

/**
 * How full the meter is (0..1) for a level in dBFS; null (nothing measured) is empty.
 * @param {number|null} dbfs
 */
export function meterFill(dbfs) {
  if (dbfs === null || !Number.isFinite(dbfs)) return 0;
  return Math.min(1, Math.max(0, (dbfs - METER_FLOOR_DBFS) / -METER_FLOOR_DBFS));
}

export class StationAudio {
  constructor() {
    this.volume = readVolume();
    this.audioMuted = false;
    this.videoMuted = false;
    /** @type {((volume: number) => void)|null} */ this.onvolume = null;
    /** @type {((audioMuted: boolean, videoMuted: boolean) => void)|null} */ this.onmute = null;

    this.down = h('button', { class: 'station-button', type: 'button', 'data-testid': 'volume-down',
      'aria-label': t('kiosk.volumeDown'), title: t('kiosk.volumeDown'), text: '−' });
    this.up = h('button', { class: 'station-button', type: 'button', 'data-testid': 'volume-up',
      'aria-label': t('kiosk.volumeUp'), title: t('kiosk.volumeUp'), text: '+' });
    this.value = h('output', { class: 'volume-value', 'data-testid': 'volume-value', 'aria-live': 'polite' });
    this.volumeBox = h('div', { class: 'station-volume', role: 'group', 'aria-label': t('kiosk.volume') },
      icon('volume'), this.down, this.value, this.up);

    // Toggles as the ARIA APG has them: a name that never changes ("Microphone"),
    // aria-pressed for the state (pressed = muted / camera off), the icon showing the
    // current state (slashed when off).
    this.micIcon = h('span', { class: 'station-icon' });
    this.camIcon = h('span', { class: 'station-icon' });
    this.micButton = h('button', { class: 'station-button wide', type: 'button', 'data-testid': 'station-mic',
      'aria-pressed': 'false', title: t('kiosk.stationMic') },
    this.micIcon, h('span', { class: 'station-label', text: t('kiosk.microphone') }));
    this.camButton = h('button', { class: 'station-button wide', type: 'button', 'data-testid': 'station-cam',
      'aria-pressed': 'false', title: t('kiosk.stationCam') },
    this.camIcon, h('span', { class: 'station-label', text: t('kiosk.camera') }));
    this.fill = h('span', { class: 'mic-meter-fill' });
    this.meter = h('div', { class: 'mic-meter', role: 'meter', 'data-testid': 'mic-meter', 'data-level': '0',
      'aria-label': t('kiosk.micLevel'), 'aria-valuemin': String(METER_FLOOR_DBFS), 'aria-valuemax': '0',
      'aria-valuenow': String(METER_FLOOR_DBFS) }, this.fill);
    this.el = h('div', { class: 'station-audio', 'data-testid': 'station-audio' },
      this.volumeBox, h('div', { class: 'station-mic' }, this.micButton, this.meter), this.camButton);

    this.down.addEventListener('click', () => this.setVolume(this.volume - VOLUME_STEP));
    this.up.addEventListener('click', () => this.setVolume(this.volume + VOLUME_STEP));
    this.micButton.addEventListener('click', () => this.onmute?.(!this.audioMuted, this.videoMuted));
    this.camButton.addEventListener('click', () => this.onmute?.(this.audioMuted, !this.videoMuted));
    this.showVolume();
    this.showMuted(false, false);
  }

  /** @param {number} v  0..1; remembered on this screen */
  setVolume(v) {
    this.volume = clampVolume(v);
    try {
      localStorage.setItem(VOLUME_KEY, String(this.volume));
    } catch {
      // Storage disabled: this volume holds until the next reload.
    }
    this.showVolume();
    this.onvolume?.(this.volume);
  }

  showVolume() {
    this.value.textContent = formatPercent(this.volume);
    this.down.disabled = this.volume <= 0;
    this.up.disabled = this.volume >= 1;
  }

  /**
   * What the service says (the call object): pressed = muted / camera off.
   * @param {boolean} audioMuted
   * @param {boolean} videoMuted
   */
  showMuted(audioMuted, videoMuted) {
    this.audioMuted = audioMuted;
    this.videoMuted = videoMuted;
    this.micButton.setAttribute('aria-pressed', String(audioMuted));
    this.micIcon.replaceChildren(icon(audioMuted ? 'micOff' : 'mic'));
    this.camButton.setAttribute('aria-pressed', String(videoMuted));
    this.camIcon.replaceChildren(icon(videoMuted ? 'camOff' : 'cam'));
    if (audioMuted) this.showLevel(null, true);
  }

  /**
   * @param {number|null} dbfs  the level of what the station sends; null: nothing
   * @param {boolean} muted
   */
  showLevel(dbfs, muted) {
    const fill = muted ? 0 : meterFill(dbfs);
    this.fill.style.transform = `scaleX(${fill.toFixed(3)})`;
    this.meter.dataset.level = fill.toFixed(2);
    this.meter.dataset.muted = String(muted);
    this.meter.setAttribute('aria-valuenow', String(muted || dbfs === null ? METER_FLOOR_DBFS : Math.round(dbfs)));
  }
}
