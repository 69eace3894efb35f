// The password form (users). Guests never see it: they come in through their link.
import * as api from '../api.js';
import { h, replace } from '../dom.js';

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
    const button = h('button', { class: 'button primary wide', type: 'submit', text: 'Sign in' });
    const form = h('form', { class: 'card login-card', 'data-testid': 'login-form' },
      h('div', { class: 'brand' }, h('img', { src: 'icons/icon-192.png', alt: '', width: 56, height: 56 }),
        h('div', {}, h('h1', { text: stationName }), h('p', { class: 'muted', text: 'Video Station' }))),
      h('label', { for: 'password', text: 'Password' }), input, error, button);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      button.disabled = true;
      error.textContent = '';
      try {
        await api.login(input.value);
        resolve();
      } catch (err) {
        error.textContent = err instanceof api.ApiError && err.status === 401
          ? 'Wrong password.'
          : (err instanceof Error ? err.message : String(err));
        input.select();
      } finally {
        button.disabled = false;
      }
    });
    replace(ctx.root, h('section', { class: 'center-screen' }, form));
    input.focus();
  });
}

/**
 * The station's public info and the visitor's session, asking for the password first
 * when there is no session.
 * @param {{root: HTMLElement}} ctx
 */
export async function signIn(ctx) {
  const station = await api.station().catch(() => ({ name: 'Video Station', room_id: 'station', version: '' }));
  let who = await api.me();
  if (!who) {
    await renderLogin(ctx, station.name);
    who = await api.me();
    if (!who) throw new api.ApiError(401, 'unauthorized', 'The login did not stick: are cookies allowed?');
  }
  return { station, who };
}
