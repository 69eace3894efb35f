// Service worker: keeps the app shell available offline and installable.
// Network first for everything (a station update must reach the pages at once),
// falling back to what it cached. /api/ and /ws/ are never cached or touched.
//
// It precaches the page and what app.js imports statically (enough to start and to say
// "offline"); the views, loaded when their route is first shown, are cached as they are
// fetched. It is registered as sw.js?v=<version> (see app.js): the page's code lives
// under /v/<version>/, served immutable, so the browser already holds what it precaches
// and nothing is downloaded twice.

const sw = /** @type {ServiceWorkerGlobalScope} */ (/** @type {unknown} */ (self));
const VERSION = new URL(sw.location.href).searchParams.get('v') || '';
const CACHE = `videostation-shell-v3-${VERSION}`;
/** Files that live under the versioned prefix (everything but the page, manifest and icons). */
const VERSIONED = /^(css|js)\//;
const SHELL = [
  './',
  'manifest.webmanifest',
  'icons/icon-192.png',
  'css/app.css',
  'js/app.js',
  'js/api.js',
  'js/dom.js',
  'js/i18n.js',
  'js/views/error.js',
  'js/views/offline.js',
];

sw.addEventListener('install', (event) => {
  const urls = SHELL.map((f) => (VERSION && VERSIONED.test(f) ? `v/${VERSION}/${f}` : f));
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(urls)).then(() => sw.skipWaiting()));
});

sw.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) if (key !== CACHE) await caches.delete(key);
    await sw.clients.claim();
  })());
});

/** @param {URL} url */
function bypass(url) {
  return url.origin !== sw.location.origin || url.pathname.startsWith('/api/') || url.pathname.startsWith('/ws');
}

sw.addEventListener('fetch', (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== 'GET' || bypass(url)) return; // the browser handles it as usual
  event.respondWith((async () => {
    try {
      const res = await fetch(req);
      if (res.ok && res.type === 'basic') {
        const copy = res.clone();
        event.waitUntil(caches.open(CACHE).then((c) => c.put(req, copy)));
      }
      return res;
    } catch (err) {
      const cached = await caches.match(req, { ignoreSearch: true }) ||
        (req.mode === 'navigate' ? await caches.match('./') : undefined);
      if (cached) return cached;
      throw err;
    }
  })());
});
