// Exposes the page's signaling client as `window.videostation.client`, for the
// browser tests (getStats through client.stats()) and for debugging from the console.

/** @param {import('./protocol.js').SignalingClient|null} client */
export function exposeClient(client) {
  /** @type {any} */ (window).videostation = { client };
}
