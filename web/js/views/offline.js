// The station offline (its service stopped, the network gone): never a dead end. A page
// says so plainly, counts down to its next try and goes on by itself once the station
// answers again. app.js shows the full page (a view could not start); the call page
// shows the notice in its banner while its socket reconnects.
import * as api from '../api.js';
import { h, replace } from '../dom.js';
import { t, tn } from '../i18n.js';

/** Waits (ms) between tries of the full page: gentle growth, a low ceiling. */
const RETRY_MIN = 2000;
const RETRY_MAX = 8000;

/**
 * Is this failure the station being away (no answer, or a proxy saying it is down)
 * rather than an answer? A view's module that failed to download counts only when
 * the station does not answer either.
 * @param {unknown} err
 * @returns {Promise<boolean>}
 */
export async function stationAway(err) {
  if (err instanceof api.ApiError) return err.status === 0 || [502, 503, 504].includes(err.status);
  if (!(err instanceof TypeError)) return false; // "Failed to fetch dynamically imported module"
  try {
    await api.station();
    return false;
  } catch (probe) {
    return probe instanceof api.ApiError && probe.status === 0;
  }
}

/**
 * "The station is offline — we'll connect when it's back" and a countdown to the
 * next try, ticking each second. `show(ms)` restarts it; `hide()` stops it.
 */
export class OfflineNotice {
  /** @param {Record<string, string>} [attrs]  the element's class etc. */
  constructor(attrs = {}) {
    this.message = h('span', { class: 'offline-message', 'data-testid': 'offline-message', text: t('offline.message') });
    // Not a live region: a screen reader hears the message once, not every second.
    this.countdown = h('span', { class: 'offline-countdown', 'data-testid': 'offline-countdown' });
    this.el = h('div', { role: 'status', 'data-testid': 'station-offline', hidden: true, ...attrs },
      this.message, ' ', this.countdown);
    this.until = 0;
    /** @type {ReturnType<typeof setInterval>|null} */
    this.tick = null;
  }

  /** @param {number} ms  until the next try */
  show(ms) {
    this.until = Date.now() + ms;
    this.el.hidden = false;
    this.draw();
    if (!this.tick) this.tick = setInterval(() => this.draw(), 250);
  }

  draw() {
    const left = Math.ceil((this.until - Date.now()) / 1000);
    const text = left > 0 ? tn('offline.retryIn', left) : t('offline.trying');
    if (this.countdown.textContent !== text) this.countdown.textContent = text;
  }

  hide() {
    this.el.hidden = true;
    if (this.tick) clearInterval(this.tick);
    this.tick = null;
  }
}

/**
 * The full page while the station is away: the notice, tries with backoff (at once
 * when the browser says it is back online). Resolves once the station answers, or
 * when `stale()` says the page moved on meanwhile.
 * @param {{root: HTMLElement}} ctx
 * @param {() => boolean} stale
 * @returns {Promise<void>}
 */
export async function waitForStation(ctx, stale) {
  const notice = new OfflineNotice({ class: 'offline-notice' });
  replace(ctx.root, h('section', { class: 'center-screen', 'data-testid': 'offline-page' },
    h('div', { class: 'card message-card' }, notice.el)));
  /** @type {() => void} */
  let wake = () => undefined;
  const online = () => wake();
  window.addEventListener('online', online);
  try {
    for (let attempt = 0; ; attempt++) {
      const delay = Math.min(RETRY_MAX, RETRY_MIN * 1.6 ** attempt);
      notice.show(delay);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, delay);
        wake = () => { clearTimeout(timer); resolve(undefined); };
      });
      if (stale()) return;
      notice.show(0);
      try {
        await api.station();
        return;
      } catch (err) {
        if (stale()) return;
        if (!(err instanceof api.ApiError) || !(await stationAway(err))) return; // it answered: the view says what
      }
    }
  } finally {
    notice.hide();
    window.removeEventListener('online', online);
  }
}
