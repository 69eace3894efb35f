// Home (#/): login when needed, then the rooms list for users: create and delete
// rooms, make guest links (URL + QR + copy), list and revoke them; and the station's
// recent calls.
import * as api from '../api.js';
import { formatDuration, formatTime, formatWhen, h, replace } from '../dom.js';
import { signIn } from './login.js';

/**
 * @typedef {import('../app.js').Context} Context
 */

/** How many calls "Recent calls" lists. */
const RECENT_CALLS = 10;
/** How often the open page reads the call log again, in ms. */
const CALLS_REFRESH = 30_000;

const TTL_CHOICES = [
  { label: '1 hour', seconds: 3600 },
  { label: '1 day', seconds: 86400 },
  { label: '7 days', seconds: 7 * 86400 },
  { label: '30 days', seconds: 30 * 86400 },
];

/** @param {Context} ctx */
export async function renderHome(ctx) {
  const { station, who } = await signIn(ctx);
  document.title = station.name;
  if (who.role === 'kiosk') { ctx.navigate('#/kiosk'); return; }
  if (who.role === 'guest') { ctx.navigate(`#/room/${encodeURIComponent(who.room || station.room_id)}`); return; }
  return renderRooms(ctx, station);
}

/**
 * @param {Context} ctx
 * @param {api.Station} station
 * @returns {Promise<() => void>} stops refreshing the call log
 */
async function renderRooms(ctx, station) {
  const list = h('ul', { class: 'room-list', 'data-testid': 'room-list' });
  const nameInput = h('input', { name: 'room-name', placeholder: 'New room name', maxlength: 60, required: true, 'aria-label': 'New room name' });
  const formError = h('p', { class: 'form-error', role: 'alert' });
  const createForm = h('form', { class: 'inline-form', 'data-testid': 'create-room' },
    nameInput, h('button', { class: 'button primary', type: 'submit', text: 'Create room' }));
  createForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    formError.textContent = '';
    try {
      await api.createRoom(nameInput.value.trim());
      nameInput.value = '';
      await refresh();
    } catch (err) {
      formError.textContent = err instanceof Error ? err.message : String(err);
    }
  });

  const logoutButton = h('button', { class: 'button ghost', type: 'button', text: 'Sign out' });
  logoutButton.addEventListener('click', async () => {
    await api.logout().catch(() => undefined);
    ctx.navigate('#/');
  });

  const calls = h('ul', { class: 'call-list', 'data-testid': 'recent-calls' });

  replace(ctx.root, h('div', { class: 'page' },
    h('header', { class: 'topbar' },
      h('div', { class: 'brand' }, h('img', { src: 'icons/icon-192.png', alt: '', width: 40, height: 40 }),
        h('div', {}, h('h1', { text: station.name }), h('p', { class: 'muted small', text: 'Rooms and invitations' }))),
      logoutButton),
    h('main', { class: 'content' },
      h('section', { class: 'card' }, h('h2', { text: 'New room' }), createForm, formError),
      h('section', {}, h('h2', { class: 'section-title', text: 'Rooms' }), list),
      h('section', {}, h('h2', { class: 'section-title', text: 'Recent calls' }), h('div', { class: 'card calls-card' }, calls)),
      h('p', { class: 'muted small footer-note', text: station.version ? `Video Station ${station.version}` : '' }))));

  async function refresh() {
    const rooms = await api.listRooms();
    rooms.sort((a, b) => Number(b.is_station) - Number(a.is_station) || String(a.name).localeCompare(String(b.name)));
    replace(list, rooms.map((room) => roomItem(room, refresh)));
  }

  let callsRequest = 0;
  async function refreshCalls() {
    const request = ++callsRequest;
    try {
      const log = await api.callLog();
      if (request !== callsRequest) return;
      const recent = log.calls.filter((c) => c.room_id === station.room_id).slice(0, RECENT_CALLS);
      replace(calls, recent.length
        ? recent.map((call, i) => callItem(call, i === 0 ? log.current : null))
        : h('li', { class: 'muted small', text: 'No calls yet.' }));
    } catch (err) {
      if (request !== callsRequest) return;
      replace(calls, h('li', { class: 'form-error', text: `The call log cannot be read: ${err instanceof Error ? err.message : err}` }));
    }
  }
  const onVisible = () => { if (document.visibilityState === 'visible') void refreshCalls(); };
  document.addEventListener('visibilitychange', onVisible);
  const timer = setInterval(onVisible, CALLS_REFRESH);
  const cleanup = () => {
    callsRequest++;
    clearInterval(timer);
    document.removeEventListener('visibilitychange', onVisible);
  };
  try {
    await Promise.all([refresh(), refreshCalls()]);
  } catch (err) {
    cleanup();
    throw err;
  }
  return cleanup;
}

/**
 * One line of "Recent calls": who, when, and what became of it.
 * @param {api.CallRecord} call
 * @param {import('../protocol.js').CallInfo|null} current  the station's call now, for the newest line
 */
function callItem(call, current) {
  /** @type {[string, string]} text, pill style */
  let outcome;
  if (call.outcome === 'answered' && call.answered_at != null) {
    outcome = call.ended_at != null
      ? [`Answered · ${formatDuration(call.ended_at - call.answered_at)}`, 'ok']
      : ['In call now', 'ok'];
  } else if (call.outcome === 'declined') {
    outcome = ['Declined', 'off'];
  } else if (call.outcome === 'ringing' && call.ended_at == null && current?.state === 'ringing') {
    outcome = ['Ringing now', ''];
  } else {
    outcome = ['Missed', 'bad']; // also a ring the station never closed (it was switched off)
  }
  return h('li', { class: `call-item outcome-${call.outcome}`, 'data-call-id': call.id },
    h('div', {},
      h('strong', { class: 'call-caller', text: call.caller || 'Someone' }),
      h('span', { class: 'muted small', text: ` · ${formatWhen(call.started_at)}` })),
    h('span', { class: `pill ${outcome[1]}`, 'data-testid': 'call-outcome', text: outcome[0] }));
}

/**
 * @param {api.Room} room
 * @param {() => Promise<void>} refresh
 */
function roomItem(room, refresh) {
  const invitePanel = h('div', { class: 'invite-panel', hidden: true });
  const inviteButton = h('button', { class: 'button', type: 'button', text: 'Invite', 'aria-expanded': 'false' });
  inviteButton.addEventListener('click', async () => {
    const open = invitePanel.hidden;
    invitePanel.hidden = !open;
    inviteButton.setAttribute('aria-expanded', String(open));
    if (open) await renderInvitePanel(invitePanel, room);
  });

  /** @type {HTMLButtonElement|null} */
  let deleteButton = null;
  if (!room.is_station) {
    const del = h('button', { class: 'button danger-ghost', type: 'button', text: 'Delete' });
    let armed = false;
    del.addEventListener('click', async () => {
      // Two taps instead of confirm(): works the same on touch screens and in kiosks.
      if (!armed) {
        armed = true;
        del.textContent = 'Really delete?';
        del.classList.add('armed');
        setTimeout(() => { armed = false; del.textContent = 'Delete'; del.classList.remove('armed'); }, 4000);
        return;
      }
      del.disabled = true;
      try {
        await api.deleteRoom(room.id);
        await refresh();
      } catch (err) {
        del.disabled = false;
        del.textContent = err instanceof Error ? err.message : 'Failed';
      }
    });
    deleteButton = del;
  }

  return h('li', { class: 'card room', 'data-room-id': room.id },
    h('div', { class: 'room-head' },
      h('div', { class: 'room-title' },
        h('h3', { text: room.name }),
        room.is_station ? h('span', { class: 'badge', text: 'This station' }) : null),
      h('div', { class: 'room-actions' },
        h('a', { class: 'button primary', href: `#/room/${encodeURIComponent(room.id)}`, text: room.is_station ? 'Call' : 'Join' }),
        inviteButton, deleteButton)),
    invitePanel);
}

/**
 * @param {HTMLElement} panel
 * @param {api.Room} room
 */
async function renderInvitePanel(panel, room) {
  const label = h('input', { name: 'label', placeholder: 'Who is it for? (e.g. Grandma)', maxlength: 60, 'aria-label': 'Label' });
  const ttl = h('select', { name: 'ttl', 'aria-label': 'Valid for' },
    TTL_CHOICES.map((c, i) => h('option', { value: c.seconds, selected: i === 1, text: c.label })));
  const maxUses = h('input', { name: 'max_uses', type: 'number', min: 1, max: 1000, placeholder: 'Unlimited', 'aria-label': 'Max uses' });
  const result = h('div', { class: 'invite-result' });
  const links = h('ul', { class: 'link-list', 'data-testid': 'guest-links' });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const form = h('form', { class: 'invite-form', 'data-testid': 'invite-form' },
    h('label', {}, h('span', { text: 'Label' }), label),
    h('label', {}, h('span', { text: 'Valid for' }), ttl),
    h('label', {}, h('span', { text: 'Max uses' }), maxUses),
    h('button', { class: 'button primary', type: 'submit', text: 'Create link' }));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    /** @type {{ttl_seconds: number, label?: string, max_uses?: number}} */
    const opts = { ttl_seconds: Number(ttl.value) };
    if (label.value.trim()) opts.label = label.value.trim();
    if (maxUses.value) opts.max_uses = Number(maxUses.value);
    try {
      const link = await api.makeGuestLink(room.id, opts);
      replace(result, linkCard(link));
      await refreshLinks();
    } catch (err) {
      error.textContent = err instanceof Error ? err.message : String(err);
    }
  });

  async function refreshLinks() {
    const items = await api.listGuestLinks(room.id);
    const now = Date.now() / 1000;
    items.sort((a, b) => b.created_at - a.created_at);
    replace(links, items.length ? items.map((l) => {
      const expired = l.expires_at < now;
      const used = l.max_uses != null && l.uses >= l.max_uses;
      const status = l.revoked ? 'revoked' : expired ? 'expired' : used ? 'used up' : 'active';
      const revoke = h('button', { class: 'button small danger-ghost', type: 'button', text: 'Revoke' });
      revoke.addEventListener('click', async () => {
        revoke.disabled = true;
        await api.revokeGuestLink(room.id, l.jti).catch((err) => { error.textContent = err.message; });
        await refreshLinks();
      });
      return h('li', { class: `link-item status-${status.replace(' ', '-')}`, 'data-jti': l.jti },
        h('div', {},
          h('strong', { text: l.label || 'Guest link' }),
          h('span', { class: 'muted small', text: ` · ${l.uses}${l.max_uses != null ? `/${l.max_uses}` : ''} uses · until ${formatTime(l.expires_at)}` })),
        h('span', { class: `pill ${status === 'active' ? 'ok' : 'off'}`, 'data-testid': 'link-status', text: status }),
        status === 'active' ? revoke : null);
    }) : h('li', { class: 'muted small', text: 'No guest links yet.' }));
  }

  replace(panel, form, error, result, h('h4', { text: 'Guest links' }), links);
  await refreshLinks();
}

/** @param {api.GuestLink} link */
function linkCard(link) {
  const url = h('input', { class: 'url', readonly: true, value: link.guest_url, 'aria-label': 'Guest link', 'data-testid': 'guest-url' });
  const copy = h('button', { class: 'button', type: 'button', text: 'Copy' });
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(link.guest_url);
    } catch {
      url.select();
      document.execCommand('copy');
    }
    copy.textContent = 'Copied ✓';
    setTimeout(() => { copy.textContent = 'Copy'; }, 2000);
  });
  return h('div', { class: 'link-card', 'data-testid': 'guest-link' },
    h('img', { class: 'qr', src: link.guest_qr_code, alt: `QR code of the guest link${link.label ? ` for ${link.label}` : ''}`, 'data-testid': 'guest-qr' }),
    h('div', { class: 'link-details' },
      h('p', {}, h('strong', { text: link.label || 'Guest link' }), h('span', { class: 'muted small', text: ` · valid until ${formatTime(link.expires_at)}` })),
      h('div', { class: 'copy-row' }, url, copy),
      h('p', { class: 'muted small', text: 'Anyone with this link or QR code can join this room until it expires or you revoke it.' })));
}
