// Home (#/): login when needed, then the rooms list for users: create and delete
// rooms, make guest links (URL + QR + copy), list and revoke them; and the station's
// recent calls.
import * as api from '../api.js';
import { h, replace } from '../dom.js';
import { errorText, formatDuration, formatTime, formatWhen, t, tn } from '../i18n.js';
import { languageSwitch } from '../ui/language.js';
import { signIn } from './login.js';

/**
 * @typedef {import('../app.js').Context} Context
 */

/** How many calls "Recent calls" lists. */
const RECENT_CALLS = 10;
/** How often the open page reads the call log again, in ms. */
const CALLS_REFRESH = 30_000;

const TTL_CHOICES = [
  { key: 'rooms.ttl.hour', seconds: 3600 },
  { key: 'rooms.ttl.day', seconds: 86400 },
  { key: 'rooms.ttl.week', seconds: 7 * 86400 },
  { key: 'rooms.ttl.month', seconds: 30 * 86400 },
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
  const nameInput = h('input', { name: 'room-name', placeholder: t('rooms.newRoomName'), maxlength: 60, required: true, 'aria-label': t('rooms.newRoomName') });
  const formError = h('p', { class: 'form-error', role: 'alert' });
  const createForm = h('form', { class: 'inline-form', 'data-testid': 'create-room' },
    nameInput, h('button', { class: 'button primary', type: 'submit', text: t('rooms.create') }));
  createForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    formError.textContent = '';
    try {
      await api.createRoom(nameInput.value.trim());
      nameInput.value = '';
      await refresh();
    } catch (err) {
      formError.textContent = errorText(err);
    }
  });

  const logoutButton = h('button', { class: 'button ghost', type: 'button', text: t('rooms.signOut') });
  logoutButton.addEventListener('click', async () => {
    await api.logout().catch(() => undefined);
    ctx.navigate('#/');
  });

  const calls = h('ul', { class: 'call-list', 'data-testid': 'recent-calls' });

  replace(ctx.root, h('div', { class: 'page' },
    h('header', { class: 'topbar' },
      h('div', { class: 'brand' }, h('img', { src: 'icons/icon-192.png', alt: '', width: 40, height: 40 }),
        h('div', {}, h('h1', { text: station.name }), h('p', { class: 'muted small', text: t('rooms.subtitle') }))),
      h('div', { class: 'topbar-actions' }, languageSwitch(() => ctx.navigate(location.hash || '#/')),
        h('a', { class: 'button ghost', href: '#/settings', 'data-testid': 'open-settings', text: t('settings.title') }), logoutButton)),
    h('main', { class: 'content' },
      h('section', { class: 'card' }, h('h2', { text: t('rooms.newRoom') }), createForm, formError),
      h('section', {}, h('h2', { class: 'section-title', text: t('rooms.rooms') }), list),
      h('section', {}, h('h2', { class: 'section-title', text: t('rooms.recentCalls') }), h('div', { class: 'card calls-card' }, calls)),
      h('p', { class: 'muted small footer-note', text: station.version ? t('rooms.version', { version: station.version }) : '' }))));

  async function refresh() {
    const rooms = await api.listRooms();
    rooms.sort((a, b) => Number(b.is_station) - Number(a.is_station) || String(a.name).localeCompare(String(b.name)));
    replace(list, rooms.map((room) => roomItem(room.is_station ? { ...room, name: station.name } : room, refresh)));
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
        : h('li', { class: 'muted small', text: t('rooms.noCalls') }));
    } catch (err) {
      if (request !== callsRequest) return;
      replace(calls, h('li', { class: 'form-error', text: t('rooms.callLogFailed', { error: errorText(err) }) }));
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
      ? [t('rooms.answered', { duration: formatDuration(call.ended_at - call.answered_at) }), 'ok']
      : [t('rooms.inCallNow'), 'ok'];
  } else if (call.outcome === 'declined') {
    outcome = [t('rooms.declined'), 'off'];
  } else if (call.outcome === 'ringing' && call.ended_at == null && current?.state === 'ringing') {
    outcome = [t('rooms.ringingNow'), ''];
  } else {
    outcome = [t('rooms.missed'), 'bad']; // also a ring the station never closed (it was switched off)
  }
  return h('li', { class: `call-item outcome-${call.outcome}`, 'data-call-id': call.id },
    h('div', {},
      h('strong', { class: 'call-caller', text: call.caller || t('rooms.someone') }),
      h('span', { class: 'muted small', text: ` · ${formatWhen(call.started_at)}` })),
    h('span', { class: `pill ${outcome[1]}`, 'data-testid': 'call-outcome', text: outcome[0] }));
}

/**
 * @param {api.Room} room
 * @param {() => Promise<void>} refresh
 */
function roomItem(room, refresh) {
  const invitePanel = h('div', { class: 'invite-panel', hidden: true });
  const inviteButton = h('button', { class: 'button', type: 'button', text: t('rooms.invite'), 'aria-expanded': 'false' });
  inviteButton.addEventListener('click', async () => {
    const open = invitePanel.hidden;
    invitePanel.hidden = !open;
    inviteButton.setAttribute('aria-expanded', String(open));
    if (open) await renderInvitePanel(invitePanel, room);
  });

  /** @type {HTMLButtonElement|null} */
  let deleteButton = null;
  if (!room.is_station) {
    const del = h('button', { class: 'button danger-ghost', type: 'button', text: t('rooms.delete') });
    let armed = false;
    del.addEventListener('click', async () => {
      // Two taps instead of confirm(): works the same on touch screens and in kiosks.
      if (!armed) {
        armed = true;
        del.textContent = t('rooms.reallyDelete');
        del.classList.add('armed');
        setTimeout(() => { armed = false; del.textContent = t('rooms.delete'); del.classList.remove('armed'); }, 4000);
        return;
      }
      del.disabled = true;
      try {
        await api.deleteRoom(room.id);
        await refresh();
      } catch (err) {
        del.disabled = false;
        del.textContent = errorText(err);
      }
    });
    deleteButton = del;
  }

  return h('li', { class: 'card room', 'data-room-id': room.id },
    h('div', { class: 'room-head' },
      h('div', { class: 'room-title' },
        h('h3', { text: room.name }),
        room.is_station ? h('span', { class: 'badge', text: t('rooms.thisStation') }) : null),
      h('div', { class: 'room-actions' },
        h('a', { class: 'button primary', href: `#/room/${encodeURIComponent(room.id)}`, text: room.is_station ? t('rooms.call') : t('rooms.join') }),
        inviteButton, deleteButton)),
    invitePanel);
}

/**
 * @param {HTMLElement} panel
 * @param {api.Room} room
 */
async function renderInvitePanel(panel, room) {
  const label = h('input', { name: 'label', placeholder: t('rooms.labelPlaceholder'), maxlength: 60, 'aria-label': t('rooms.label') });
  const ttl = h('select', { name: 'ttl', 'aria-label': t('rooms.validFor') },
    TTL_CHOICES.map((c, i) => h('option', { value: c.seconds, selected: i === 1, text: t(c.key) })));
  const maxUses = h('input', { name: 'max_uses', type: 'number', min: 1, max: 1000, placeholder: t('rooms.unlimited'), 'aria-label': t('rooms.maxUses') });
  const result = h('div', { class: 'invite-result' });
  const links = h('ul', { class: 'link-list', 'data-testid': 'guest-links' });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const form = h('form', { class: 'invite-form', 'data-testid': 'invite-form' },
    h('label', {}, h('span', { text: t('rooms.label') }), label),
    h('label', {}, h('span', { text: t('rooms.validFor') }), ttl),
    h('label', {}, h('span', { text: t('rooms.maxUses') }), maxUses),
    h('button', { class: 'button primary', type: 'submit', text: t('rooms.createLink') }));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    /** @type {{ttl_seconds: number, label?: string, max_uses?: number}} */
    const opts = { ttl_seconds: Number(ttl.value) };
    if (label.value.trim()) opts.label = label.value.trim();
    if (maxUses.value) opts.max_uses = Number(maxUses.value);
    try {
      const link = await api.makeGuestLink(room.id, opts);
      replace(result, linkCard(link, room.name));
      await refreshLinks();
    } catch (err) {
      error.textContent = errorText(err);
    }
  });

  const showOld = h('input', { type: 'checkbox', 'data-testid': 'show-old-links' });
  const revokeAll = h('button', { class: 'button small danger-ghost', type: 'button', 'data-testid': 'revoke-all', text: t('rooms.revokeAll') });
  revokeAll.addEventListener('click', async () => {
    revokeAll.disabled = true;
    const items = await api.listGuestLinks(room.id).catch(() => []);
    const now = Date.now() / 1000;
    for (const l of items) {
      if (linkStatus(l, now) !== 'active') continue;
      await api.revokeGuestLink(room.id, l.jti).catch((err) => { error.textContent = errorText(err); });
    }
    revokeAll.disabled = false;
    await refreshLinks();
  });
  showOld.addEventListener('change', () => { void refreshLinks(); });

  async function refreshLinks() {
    const items = await api.listGuestLinks(room.id);
    const now = Date.now() / 1000;
    items.sort((a, b) => b.created_at - a.created_at);
    // Expired, used-up and revoked links stay out of the way unless asked for.
    const shown = showOld.checked ? items : items.filter((l) => linkStatus(l, now) === 'active');
    revokeAll.hidden = !items.some((l) => linkStatus(l, now) === 'active');
    replace(links, shown.length ? shown.map((l) => {
      const status = linkStatus(l, now);
      const revoke = h('button', { class: 'button small danger-ghost', type: 'button', text: t('rooms.revoke') });
      revoke.addEventListener('click', async () => {
        revoke.disabled = true;
        await api.revokeGuestLink(room.id, l.jti).catch((err) => { error.textContent = errorText(err); });
        await refreshLinks();
      });
      const uses = l.max_uses != null ? t('rooms.usesOf', { uses: l.uses, max: tn('rooms.uses', l.max_uses) }) : tn('rooms.uses', l.uses);
      return h('li', { class: `link-item status-${status}`, 'data-jti': l.jti },
        h('div', {},
          h('strong', { text: l.label || t(l.kind === 'kiosk-code' ? 'rooms.scannedCode' : 'rooms.guestLink') }),
          h('span', { class: 'muted small', text: ` · ${uses} · ${t('rooms.until', { time: formatTime(l.expires_at) })}` })),
        h('span', { class: `pill ${status === 'active' ? 'ok' : 'off'}`, 'data-testid': 'link-status', 'data-status': status, text: t(`rooms.status.${status}`) }),
        status === 'active' ? revoke : null,
        status === 'active' ? codeSessions(l, now) : null);
    }) : h('li', { class: 'muted small', text: t('rooms.noLinks') }));
  }

  /**
   * The phones a scanned code let in, each with a button that disconnects it alone.
   * @param {api.GuestLinkInfo} l
   * @param {number} now
   */
  function codeSessions(l, now) {
    const live = (l.sessions || []).filter((s) => !s.ended && (s.expires_at > now || s.state !== 'away'));
    if (!live.length) return null;
    return h('ul', { class: 'code-sessions', 'data-testid': 'code-sessions' }, live.map((s) => {
      const end = h('button', { class: 'button small danger-ghost', type: 'button', 'data-testid': 'end-session', text: t('rooms.endSession') });
      end.addEventListener('click', async () => {
        end.disabled = true;
        await api.endCodeSession(room.id, l.jti, s.id).catch((err) => { error.textContent = errorText(err); });
        await refreshLinks();
      });
      const who = s.name ? `${s.name} · ` : '';
      return h('li', { 'data-session': s.id },
        h('span', { class: 'small', text: `${t('rooms.codeSession', { time: formatTime(s.issued_at) })} · ${who}${t(`rooms.codeSession.${s.state}`)}` }),
        end);
    }));
  }

  replace(panel, form, error, result,
    h('div', { class: 'links-head' }, h('h4', { text: t('rooms.guestLinks') }), revokeAll),
    h('label', { class: 'toggle-row' }, showOld, h('span', { text: t('rooms.showOld') })),
    links);
  await refreshLinks();
}

/**
 * @param {api.GuestLinkInfo} l
 * @param {number} now  unix seconds
 * @returns {'active'|'revoked'|'expired'|'usedUp'}
 */
function linkStatus(l, now) {
  if (l.revoked) return 'revoked';
  if (l.expires_at < now) return 'expired';
  // a scanned code's sessions live on when no phone may scan it any more
  if (l.kind !== 'kiosk-code' && l.max_uses != null && l.uses >= l.max_uses) return 'usedUp';
  return 'active';
}

/**
 * @param {api.GuestLink} link
 * @param {string} roomName
 */
function linkCard(link, roomName) {
  const url = h('input', { class: 'url', readonly: true, value: link.guest_url, 'aria-label': t('rooms.guestLink'), 'data-testid': 'guest-url' });
  const copy = h('button', { class: 'button', type: 'button', text: t('rooms.copy') });
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(link.guest_url);
    } catch {
      url.select();
      document.execCommand('copy');
    }
    copy.textContent = t('rooms.copied');
    setTimeout(() => { copy.textContent = t('rooms.copy'); }, 2000);
  });
  // Phones share the link through their own share sheet (messengers, mail); Copy stays.
  let share = null;
  const data = { title: t('rooms.shareTitle', { room: roomName }), url: link.guest_url };
  if (typeof navigator.share === 'function' && (!navigator.canShare || navigator.canShare(data))) {
    share = h('button', { class: 'button primary', type: 'button', 'data-testid': 'share-link', text: t('rooms.share') });
    share.addEventListener('click', () => { navigator.share(data).catch(() => undefined); });
  }
  return h('div', { class: 'link-card', 'data-testid': 'guest-link' },
    h('img', { class: 'qr', src: link.guest_qr_code, alt: link.label ? t('rooms.qrAltFor', { label: link.label }) : t('rooms.qrAlt'), 'data-testid': 'guest-qr' }),
    h('div', { class: 'link-details' },
      h('p', {}, h('strong', { text: link.label || t('rooms.guestLink') }), h('span', { class: 'muted small', text: ` · ${t('rooms.validUntil', { time: formatTime(link.expires_at) })}` })),
      h('div', { class: 'copy-row' }, url, copy, share),
      h('p', { class: 'muted small', text: t('rooms.linkNote') })));
}
