// Entry point: the hash router. Routes:
//   #/                      login, then the rooms list (users); guests go to their room
//   #/room/<id>[?guest_token=<jwt>]   the call page
//   #/kiosk[?key=<key>]     the station's own screen
//   #/settings              the household's settings
// Each view renders into #app and returns a cleanup function for when the route changes.

import * as api from './api.js';
import { renderError } from './views/error.js';
import { stationAway, waitForStation } from './views/offline.js';
import { $, h, replace } from './dom.js';
import { browserLanguage, chosenLanguage, errorText, setLanguage, t } from './i18n.js';

// Each view is loaded when its route is first shown: a guest's phone downloads the call
// page, not the kiosk or the household's rooms list.

/**
 * @typedef {{path: string, params: URLSearchParams}} Route
 * @typedef {() => void} Cleanup
 * @typedef {{root: HTMLElement, route: Route, navigate: (hash: string) => void,
 *   clearHashParams: () => void, wsUrl: () => string}} Context
 */

/** @returns {Route} */
export function parseHash(/** @type {string} */ hash) {
  const raw = hash.replace(/^#/, '') || '/';
  const q = raw.indexOf('?');
  const path = (q >= 0 ? raw.slice(0, q) : raw) || '/';
  const params = new URLSearchParams(q >= 0 ? raw.slice(q + 1) : '');
  return { path: path.startsWith('/') ? path : `/${path}`, params };
}

const root = /** @type {HTMLElement} */ ($('#app'));
/** @type {Cleanup|null} */
let cleanup = null;
let generation = 0;

function wsUrl() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}/ws/`;
}

async function render() {
  const gen = ++generation;
  if (cleanup) {
    try { cleanup(); } catch (err) { console.error(err); }
    cleanup = null;
  }
  const route = parseHash(location.hash);
  /** @type {Context} */
  const ctx = {
    root,
    route,
    navigate: (hash) => { if (location.hash === hash) void render(); else location.hash = hash; },
    // Secrets from the fragment (guest token, kiosk key) must not stay in the address bar.
    clearHashParams: () => history.replaceState(null, '', `${location.pathname}${location.search}#${route.path}`),
    wsUrl,
  };
  document.body.dataset.view = route.path.split('/')[1] || 'home';
  replace(root, h('div', { class: 'center-screen' }, h('div', { class: 'spinner', role: 'status', 'aria-label': t('app.loading') })));
  try {
    /** @type {Cleanup|void} */
    let c = undefined;
    const m = route.path.match(/^\/room\/([^/]+)\/?$/);
    if (m) {
      const { renderRoom } = await import('./views/room.js');
      c = await renderRoom(ctx, decodeURIComponent(m[1]));
    } else if (route.path === '/kiosk') {
      const { renderKiosk } = await import('./views/kiosk.js');
      c = await renderKiosk(ctx);
    } else if (route.path === '/settings') {
      const { renderSettings } = await import('./views/settings.js');
      c = await renderSettings(ctx);
    } else if (route.path === '/') {
      const { renderHome } = await import('./views/rooms.js');
      c = await renderHome(ctx);
    } else {
      renderError(ctx, t('app.notFound'), t('app.notFoundText'), [{ label: t('app.home'), href: '#/' }]);
    }
    if (gen !== generation) { c?.(); return; }
    cleanup = c || null;
  } catch (err) {
    if (gen !== generation) return;
    if (await stationAway(err)) {
      // The station is offline: say so, count down, and start the view again once it
      // answers (a guest's lobby becomes usable; no "Something went wrong").
      console.warn('station offline:', err);
      await waitForStation(ctx, () => gen !== generation);
      if (gen === generation) void render();
      return;
    }
    if (gen !== generation) return;
    console.error(err);
    const message = err instanceof api.ApiError ? errorText(err) : t('error.unexpected');
    renderError(ctx, t('app.failed'), message, [{ label: t('app.reload'), onclick: () => location.reload() }]);
  }
}

// The first route's view starts downloading now, beside the language file: render()
// imports the same module and gets this download (a guest's call page comes ~70 ms
// sooner than when its modules waited for the language).
const firstPath = parseHash(location.hash).path;
if (/^\/room\/[^/]+\/?$/.test(firstPath)) void import('./views/room.js').catch(() => {});
else if (firstPath === '/kiosk') void import('./views/kiosk.js').catch(() => {});

window.addEventListener('hashchange', () => { void render(); });
// The browser's language, or the one chosen with the switch; the kiosk view switches
// to the station's configured language once it knows it.
void setLanguage(chosenLanguage() || browserLanguage()).catch((err) => console.error(err)).then(render);

if ('serviceWorker' in navigator && (location.protocol === 'https:' || location.hostname === 'localhost' || location.hostname === '127.0.0.1')) {
  // The page's code is served under /v/<version>/ (immutable); the worker precaches
  // that version's files, which the browser already holds, so it downloads nothing twice.
  const version = new URL(import.meta.url).pathname.match(/^\/v\/([0-9a-f]{12})\//);
  const script = version ? `sw.js?v=${version[1]}` : 'sw.js';
  navigator.serviceWorker.register(script).catch((err) => console.warn('service worker:', err));
}
