// The password form (users). Guests never see it: they come in through their link,
// and a visitor without a session (an installed app, a bookmark, a guest session that
// ran out) is first asked to get a new invitation; the form is one tap further, for
// the household.
import * as api from '../api.js';
import { h, replace } from '../dom.js';
import { errorText, stationName, t } from '../i18n.js';
import { languageSwitch } from '../ui/language.js';

/**
 * Shows the login form; resolves once the password was accepted.
 * @param {{root: HTMLElement}} ctx
 * @param {string} stationName
 * @returns {Promise<void>}
 */
export function renderLogin(ctx, stationName) {
  return new Promise((resolve) => {
    const input = h('input', {
      type: 'password', name: 'password', id: 'password', autocomplete: 'current-password',
      required: true, 'aria-describedby': 'login-error',
    });
    const error = h('p', { class: 'form-error', id: 'login-error', role: 'alert' });
    const button = h('button', { class: 'button primary wide', type: 'submit', text: t('login.signIn') });
    const form = h('form', { class: 'card login-card', 'data-testid': 'login-form' },
      h('div', { class: 'brand' }, h('img', { src: 'icons/icon-192.png', alt: '', width: 56, height: 56 }),
        // An unnamed station is called by the brand ("Видеостанция"): said once, not twice.
        h('div', {}, h('h1', { text: stationName }),
          stationName === t('brand') ? null : h('p', { class: 'muted', 'data-testid': 'login-brand', text: t('brand') }))),
      h('label', { for: 'password', text: t('login.password') }), input, error, button);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      button.disabled = true;
      error.textContent = '';
      try {
        await api.login(input.value);
        resolve();
      } catch (err) {
        error.textContent = err instanceof api.ApiError && err.status === 401
          ? t('error.wrong_password')
          : errorText(err);
        input.select();
      } finally {
        button.disabled = false;
      }
    });
    const redraw = () => { void renderLogin(ctx, stationName).then(resolve); };
    replace(ctx.root, h('section', { class: 'center-screen' }, form, languageSwitch(redraw)));
    input.focus();
  });
}

/**
 * The station's public info and the visitor's session, asking for the password first
 * when there is no session.
 * @param {{root: HTMLElement}} ctx
 */
export async function signIn(ctx) {
  // both at once: one round trip less before the page shows
  const [station, first] = await Promise.all([
    api.station().catch(() => ({ name: '', room_id: 'station', version: '', language: 'auto' })),
    api.me(),
  ]);
  station.name = stationName(station.name); // unnamed: this language's default
  let who = first;
  if (!who) {
    if (!isHousehold()) await askForInvitation(ctx, station.name);
    await renderLogin(ctx, station.name);
    rememberHousehold();
    who = await api.me();
    if (!who) throw new api.ApiError(401, 'cookies', t('login.cookies'));
  }
  return { station, who };
}

/** localStorage: this browser has signed in with the password before. */
const HOUSEHOLD_KEY = 'videostation.household';

function isHousehold() {
  try { return localStorage.getItem(HOUSEHOLD_KEY) === '1'; } catch { return false; }
}

function rememberHousehold() {
  try { localStorage.setItem(HOUSEHOLD_KEY, '1'); } catch { /* asked again next time */ }
}

/**
 * What a visitor without a session sees first: guests (the usual visitors) are told to
 * ask for a new invitation; the household taps through to the password form.
 * @param {{root: HTMLElement}} ctx
 * @param {string} stationName
 * @returns {Promise<void>} resolves when "I live here" is pressed
 */
export function askForInvitation(ctx, stationName) {
  return new Promise((resolve) => {
    const draw = () => {
      const household = h('button', { class: 'button ghost', type: 'button', 'data-testid': 'household-login', text: t('invite.household') });
      household.addEventListener('click', () => resolve());
      replace(ctx.root, h('section', { class: 'center-screen', 'data-testid': 'ask-invitation' },
        h('div', { class: 'card message-card', role: 'status' },
          h('h1', { text: t('invite.askTitle') }),
          h('p', { class: 'muted', 'data-testid': 'ask-invitation-text', text: t('invite.askText', { station: stationName }) }),
          h('div', { class: 'actions' }, household)),
        languageSwitch(draw)));
    };
    draw();
  });
}
