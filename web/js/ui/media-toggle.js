// The round microphone and camera toggles of the lobby and the call, as the kiosk's
// (ui/station-audio.js) and the ARIA APG have them: a name that never changes
// ("Microphone", "Camera"), pressed = muted / camera off, the icon showing the current
// state (slashed when off). Icon-only, so each carries its name as a tooltip too.
import { h, icon } from '../dom.js';
import { t } from '../i18n.js';

/**
 * @typedef {'audio'|'video'} Kind
 * @typedef {{audio: boolean, video: boolean}} Muted
 */

/** @param {Kind} kind @param {Muted} muted */
function toggleIcon(kind, muted) {
  return icon(kind === 'audio' ? (muted.audio ? 'micOff' : 'mic') : (muted.video ? 'camOff' : 'cam'));
}

/**
 * A microphone or camera toggle showing `muted`; a click calls `toggle`.
 * @param {Kind} kind
 * @param {string} testid
 * @param {Muted} muted
 * @param {() => void} toggle
 * @returns {HTMLButtonElement}
 */
export function mediaToggle(kind, testid, muted, toggle) {
  const label = t(kind === 'audio' ? 'room.microphone' : 'room.camera');
  const button = h('button', { class: 'round', type: 'button', 'aria-pressed': String(muted[kind]), 'aria-label': label, title: label, 'data-testid': testid },
    toggleIcon(kind, muted));
  button.addEventListener('click', toggle);
  return button;
}

/**
 * Shows a toggle's new state.
 * @param {HTMLButtonElement} button
 * @param {Kind} kind
 * @param {Muted} muted
 */
export function showToggle(button, kind, muted) {
  button.setAttribute('aria-pressed', String(muted[kind]));
  button.replaceChildren(toggleIcon(kind, muted));
}
