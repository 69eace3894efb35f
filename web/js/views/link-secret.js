// A link that carries a secret in its URL fragment — a guest link's token
// (#/room/<id>?guest_token=…), the kiosk's key (#/kiosk?key=…) — is traded for a
// session cookie before its view is shown. The fragment never reaches the server's
// logs or a Referer; the secret leaves the address bar before the exchange starts, so
// neither a reload nor a screenshot shows it again.
import * as api from '../api.js';

/**
 * @typedef {import('../app.js').Context} Context
 * @typedef {'none'|'traded'|'refused'} Traded
 */

/**
 * Trades the secret named `param` in the URL fragment for a session.
 *
 * `exchange(secret)` asks the station (it may wait and retry itself); a refusal
 * (an `ApiError` with a 4xx status) is handed to `refused`, which says why on the
 * page; anything else (the station unreachable, a 5xx) is thrown on.
 * @param {Context} ctx
 * @param {string} param  `guest_token`, `key`
 * @param {(secret: string) => Promise<unknown>} exchange
 * @param {(err: api.ApiError) => void} refused
 * @returns {Promise<Traded>} `none` when the fragment carries no secret
 */
export async function tradeLinkSecret(ctx, param, exchange, refused) {
  const secret = ctx.route.params.get(param);
  if (!secret) return 'none';
  ctx.clearHashParams(); // the secret leaves the address bar at once; it stays in memory
  try {
    await exchange(secret);
    return 'traded';
  } catch (err) {
    if (err instanceof api.ApiError && err.status !== 0 && err.status < 500) {
      refused(err);
      return 'refused';
    }
    throw err;
  }
}
