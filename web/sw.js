// Service worker: keeps the app shell available offline and installable.
// Network first for everything (a station update must reach the pages at once),
// falling back to the cached shell. /api/ and /ws/ are never cached or touched.

const sw = /** @type {ServiceWorkerGlobalScope} */ (/** @type {unknown} */ (self));
const CACHE = 'videostation-shell-v2';
const SHELL = [
  './',
  'index.html',
  'css/app.css',
  'manifest.webmanifest',
  'js/app.js',
  'js/api.js',
  'js/debug.js',
  'js/dom.js',
  'js/protocol.js',
  'js/ui/fullscreen.js',
  'js/ui/pip.js',
  'js/ui/ringtone.js',
  'js/ui/tiles.js',
  'js/views/error.js',
  'js/views/finished.js',
  'js/views/kiosk.js',
  'js/views/login.js',
  'js/views/room.js',
  'js/views/rooms.js',
  'icons/icon-192.png',
  'icons/icon-512.png',
];

sw.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => sw.skipWaiting()));
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
        (req.mode === 'navigate' ? await caches.match('index.html') : undefined);
      if (cached) return cached;
      throw err;
    }
  })());
});
