// REST client for the Video Station service. DOM-free: plain fetch with the session
// cookie (HttpOnly, so this code never sees it). Every failure is an ApiError.

/**
 * @typedef {{role: 'user'|'guest'|'kiosk', room: string|null}} Me
 * @typedef {{id: string, name: string, is_station: boolean, created_at: number|string}} Room
 * @typedef {{name: string, room_id: string, version: string, language: string}} Station  `language`: the kiosk's (`auto`: the browser's)
 * @typedef {{
 *   guest_url: string, guest_qr_code: string, guest_token: string,
 *   expires_at: number, jti: string, label: string
 * }} GuestLink
 * @typedef {{
 *   kind: 'link'|'kiosk-code', jti: string, label: string, created_at: number,
 *   expires_at: number, max_uses: number|null, uses: number, revoked: boolean,
 *   sessions?: CodeSession[]
 * }} GuestLinkInfo  a guest link, or a code the kiosk showed that phones scanned
 *   (its uses are their sessions, listed in `sessions`)
 * @typedef {{
 *   id: string, issued_at: number, expires_at: number, ended: boolean,
 *   name: string|null, state: 'away'|'waiting'|'in-call'
 * }} CodeSession  one phone's session from a kiosk code: the name it joined with
 * @typedef {{
 *   id: number, room_id: string, caller: string, started_at: number,
 *   answered_at: number|null, ended_at: number|null,
 *   outcome: 'ringing'|'answered'|'missed'|'declined', attempts: number
 * }} CallRecord  one call to the station; times are unix seconds of the station's clock
 * @typedef {{
 *   current: import('./protocol.js').CallInfo, calls: CallRecord[]
 * }} CallLog  the call going on now and the log, newest first
 */

export class ApiError extends Error {
  /**
   * @param {number} status  HTTP status (0: the network failed)
   * @param {string} code    the server's error code, e.g. "token_expired"
   * @param {string} message readable text
   * @param {number|null} [retryAfter] seconds from the Retry-After header (429, 503)
   */
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/**
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<any>}
 */
export async function request(method, path, body) {
  /** @type {RequestInit} */
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' }, cache: 'no-store' };
  if (body !== undefined) {
    init.headers = { Accept: 'application/json', 'Content-Type': 'application/json' };
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, 'network', 'network failure');
  }
  /** @type {any} */
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = data && data.error ? data.error : {};
    const retry = Number.parseInt(res.headers.get('Retry-After') || '', 10);
    throw new ApiError(res.status, err.code || `http_${res.status}`, err.message || res.statusText || 'Request failed',
      Number.isFinite(retry) && retry >= 0 ? retry : null);
  }
  return data;
}

/** @returns {Promise<Me|null>} the session, or null when not logged in */
export async function me() {
  try {
    return await request('GET', '/api/auth/me');
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) return null;
    throw err;
  }
}

/** @param {string} password */
export const login = (password) => request('POST', '/api/auth/login', { password });
export const logout = () => request('POST', '/api/auth/logout');
/** @param {string} token @returns {Promise<{role: string, room: string, label?: string}>} */
export const guestLogin = (token) => request('POST', '/api/auth/guest', { guest_token: token });
/** @param {string} code  a kiosk code a page from another site sent here @returns {Promise<{role: string, room: string}>} */
export const codeLogin = (code) => request('POST', '/api/auth/code', { code });
/** @param {string} key @returns {Promise<{role: string, room: string}>} */
export const kioskLogin = (key) => request('POST', '/api/auth/kiosk', { key });
/** @returns {Promise<Station>} */
export const station = () => request('GET', '/api/station');
/**
 * The station's health; the kiosk reads whether network time has set the clock.
 * @returns {Promise<{status: string, clock?: {synchronized: boolean|null, jumps: number, last_jump_seconds: number|null}}>}
 */
export const health = () => request('GET', '/api/health');
/** @returns {Promise<Room[]>} */
export const listRooms = async () => (await request('GET', '/api/rooms')).rooms;
/** @param {string} name @returns {Promise<Room>} */
export const createRoom = (name) => request('POST', '/api/rooms', { name });
/** @param {string} id @returns {Promise<Room>} */
export const getRoom = (id) => request('GET', `/api/rooms/${encodeURIComponent(id)}`);
/** @param {string} id */
export const deleteRoom = (id) => request('DELETE', `/api/rooms/${encodeURIComponent(id)}`);
/**
 * @param {string} id
 * @param {{ttl_seconds?: number, max_uses?: number, label?: string}} opts
 * @returns {Promise<GuestLink>}
 */
export const makeGuestLink = (id, opts) => request('POST', `/api/rooms/${encodeURIComponent(id)}/generate-guest-link`, opts);
/** @param {string} id @returns {Promise<GuestLinkInfo[]>} */
export const listGuestLinks = async (id) => (await request('GET', `/api/rooms/${encodeURIComponent(id)}/guest-links`)).guest_links;
/** @param {string} id @param {string} jti */
export const revokeGuestLink = (id, jti) => request('DELETE', `/api/rooms/${encodeURIComponent(id)}/guest-links/${encodeURIComponent(jti)}`);
/** @param {string} id @param {string} jti @param {string} sid  one code session ends */
export const endCodeSession = (id, jti, sid) => request('DELETE', `/api/rooms/${encodeURIComponent(id)}/guest-links/${encodeURIComponent(jti)}/sessions/${encodeURIComponent(sid)}`);
/** @returns {Promise<GuestLink>} */
export const kioskGuestLink = () => request('POST', '/api/kiosk/guest-link');
/** @returns {Promise<CallLog>} the station's call log (users and the kiosk) */
export const callLog = () => request('GET', '/api/calls');

/**
 * The kiosk's quiet toggle (do not disturb).
 * @param {boolean} on
 * @returns {Promise<{quiet: boolean, quiet_until: number|null}>}
 */
export function setQuiet(on) {
  return request('POST', '/api/kiosk/quiet', { on });
}
