// Settings (#/settings), for the household: the station's name and the kiosk's
// language, quiet hours, which invitations are answered without a touch, the master
// password, and the station's health (read-only). The service keeps what is changed
// here (docs/settings.md) and the kiosk shows a new name at once.
import * as api from '../api.js';
import { h, replace } from '../dom.js';
import { LANGUAGE_NAMES, LANGUAGES, errorText, formatNumber, stationName, t } from '../i18n.js';
import { signIn } from './login.js';

/**
 * @typedef {import('../app.js').Context} Context
 * @typedef {{jti: string, label: string, expires_at: number, auto_answer: boolean}} Member
 * @typedef {{name: string, language: string, quiet_hours: {start: string, end: string}|null,
 *   auto_answer: string[], members: Member[]}} Settings
 */

/** @param {Context} ctx */
export async function renderSettings(ctx) {
  const { station, who } = await signIn(ctx);
  if (who.role === 'kiosk') { ctx.navigate('#/kiosk'); return; }
  if (who.role === 'guest') { ctx.navigate(`#/room/${encodeURIComponent(who.room || station.room_id)}`); return; }
  /** @type {Settings} */
  const settings = await api.request('GET', '/api/settings');
  document.title = `${t('settings.title')} · ${station.name}`;
  replace(ctx.root, h('div', { class: 'page settings-page', 'data-testid': 'settings' },
    h('header', { class: 'topbar' },
      h('h1', { text: t('settings.title') }),
      h('a', { class: 'button ghost', href: '#/', 'data-testid': 'settings-back', text: t('settings.back') })),
    h('main', { class: 'content' },
      stationCard(settings), membersCard(settings), passwordCard(), healthCard())));
}

/**
 * A labelled field: the label above its control, a hint under it.
 * @param {string} id @param {string} label @param {HTMLElement} control @param {string} [hint]
 */
function row(id, label, control, hint) {
  control.id = id;
  return h('div', { class: 'settings-field' }, h('label', { for: id, text: label }), control,
    hint ? h('p', { class: 'muted small', text: hint }) : null);
}

/** @param {HTMLElement} el @param {string} text @param {boolean} [ok] */
function say(el, text, ok = true) {
  el.textContent = text;
  el.classList.toggle('form-ok', ok);
  el.classList.toggle('form-error', !ok);
}

/** Name, language and quiet hours: one form, saved together. @param {Settings} settings */
function stationCard(settings) {
  const name = h('input', { name: 'station-name', maxlength: 40, autocomplete: 'off', value: settings.name,
    placeholder: stationName(''), 'data-testid': 'settings-name' });
  const language = h('select', { name: 'language', 'data-testid': 'settings-language' },
    h('option', { value: 'auto', text: t('settings.languageAuto') }),
    ...LANGUAGES.map((lang) => h('option', { value: lang, lang, text: LANGUAGE_NAMES[lang] })));
  language.value = settings.language;
  const hours = settings.quiet_hours;
  const quiet = h('input', { type: 'checkbox', id: 'settings-quiet', name: 'quiet', 'data-testid': 'settings-quiet' });
  quiet.checked = !!hours;
  const start = h('input', { type: 'time', name: 'quiet-start', value: hours?.start || '22:00', required: true,
    'data-testid': 'settings-quiet-start' });
  const end = h('input', { type: 'time', name: 'quiet-end', value: hours?.end || '07:00', required: true,
    'data-testid': 'settings-quiet-end' });
  const times = h('div', { class: 'settings-times' }, row('quiet-start', t('settings.quietFrom'), start),
    row('quiet-end', t('settings.quietTo'), end));
  const showTimes = () => { times.hidden = !quiet.checked; };
  quiet.addEventListener('change', showTimes);
  showTimes();
  const status = h('p', { class: 'form-error', role: 'status', 'data-testid': 'settings-saved' });
  const save = h('button', { class: 'button primary', type: 'submit', 'data-testid': 'settings-save', text: t('settings.save') });
  const form = h('form', { class: 'card settings-card', 'data-testid': 'settings-station' },
    h('h2', { text: t('settings.station') }),
    row('station-name', t('settings.name'), name, t('settings.nameHint')),
    row('station-language', t('settings.language'), language, t('settings.languageHint')),
    h('div', { class: 'settings-check' }, quiet, h('label', { for: 'settings-quiet', text: t('settings.quietHours') })),
    h('p', { class: 'muted small', text: t('settings.quietHint') }),
    times, h('div', { class: 'settings-actions' }, save), status);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    save.disabled = true;
    status.textContent = '';
    try {
      await api.request('PATCH', '/api/settings', {
        name: name.value.trim(),
        language: language.value,
        quiet_hours: quiet.checked ? { start: start.value, end: end.value } : null,
      });
      say(status, t('settings.saved'));
    } catch (err) {
      say(status, errorText(err), false);
    } finally {
      save.disabled = false;
    }
  });
  return form;
}

/** Auto-answer, per invitation (its label is the family member). @param {Settings} settings */
function membersCard(settings) {
  const status = h('p', { class: 'form-error', role: 'status', 'data-testid': 'settings-auto-status' });
  const list = h('ul', { class: 'settings-members', 'data-testid': 'settings-members' });
  const chosen = new Set(settings.auto_answer);
  for (const member of settings.members) {
    const id = `auto-${member.jti}`;
    const box = h('input', { type: 'checkbox', id, 'data-testid': 'settings-auto-answer' });
    box.checked = member.auto_answer;
    box.addEventListener('change', async () => {
      if (box.checked) chosen.add(member.jti); else chosen.delete(member.jti);
      box.disabled = true;
      try {
        await api.request('PATCH', '/api/settings', { auto_answer: [...chosen] });
        say(status, t('settings.saved'));
      } catch (err) {
        box.checked = !box.checked;
        if (box.checked) chosen.add(member.jti); else chosen.delete(member.jti);
        say(status, errorText(err), false);
      } finally {
        box.disabled = false;
      }
    });
    list.append(h('li', { class: 'settings-check' }, box,
      h('label', { for: id, text: member.label || t('settings.noLabel') })));
  }
  return h('section', { class: 'card settings-card', 'data-testid': 'settings-auto' },
    h('h2', { text: t('settings.autoAnswer') }),
    h('p', { class: 'muted small', text: t('settings.autoAnswerHint') }),
    settings.members.length ? list : h('p', { class: 'muted', text: t('settings.noMembers') }), status);
}

/** The master password: the current one, the new one twice. */
function passwordCard() {
  /** @param {string} name @param {string} autocomplete */
  const field = (name, autocomplete) => h('input', { type: 'password', name, autocomplete, required: true,
    'data-testid': `settings-${name}` });
  const current = field('current-password', 'current-password');
  const fresh = field('new-password', 'new-password');
  const again = field('repeat-password', 'new-password');
  fresh.setAttribute('minlength', '8');
  const status = h('p', { class: 'form-error', role: 'status', 'data-testid': 'settings-password-status' });
  const button = h('button', { class: 'button primary', type: 'submit', 'data-testid': 'settings-password-save', text: t('settings.passwordChange') });
  const form = h('form', { class: 'card settings-card', 'data-testid': 'settings-password' },
    h('h2', { text: t('settings.password') }),
    row('current-password', t('settings.passwordCurrent'), current),
    row('new-password', t('settings.passwordNew'), fresh, t('settings.passwordRule')),
    row('repeat-password', t('settings.passwordRepeat'), again),
    h('p', { class: 'muted small', text: t('settings.passwordOthers') }),
    h('div', { class: 'settings-actions' }, button), status);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (fresh.value !== again.value) { say(status, t('settings.passwordDiffer'), false); again.focus(); return; }
    button.disabled = true;
    status.textContent = '';
    try {
      await api.request('POST', '/api/settings/password', { current_password: current.value, new_password: fresh.value });
      form.reset();
      say(status, t('settings.passwordChanged'));
    } catch (err) {
      const wrong = err instanceof api.ApiError && err.code === 'wrong_password';
      say(status, wrong ? t('settings.passwordWrong') : errorText(err), false);
      if (wrong) current.select();
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

/** The station's health, as /api/settings/health says: read-only. */
function healthCard() {
  const list = h('dl', { class: 'settings-health', 'data-testid': 'settings-health' });
  const card = h('section', { class: 'card settings-card', 'aria-busy': 'true' },
    h('h2', { text: t('settings.healthTitle') }), list);
  /** @param {string} id @param {string} label @param {boolean} ok @param {string} [detail] */
  const item = (id, label, ok, detail) => [
    h('dt', { text: label }),
    h('dd', { class: ok ? 'health-ok' : 'health-bad', 'data-testid': `health-${id}` },
      h('span', { text: t(ok ? 'settings.health.ok' : 'settings.health.problem') }),
      detail ? h('span', { class: 'muted small health-detail', text: detail }) : null),
  ];
  api.request('GET', '/api/settings/health').then((/** @type {any} */ health) => {
    const device = (/** @type {string} */ s) => !String(s).startsWith('unavailable');
    const free = health.disk?.free_bytes;
    const screen = health.kiosk_screen === 'connected';
    const reach = health.reachability || {};
    replace(list, [
      ...item('camera', t('settings.health.camera'), device(health.camera)),
      ...item('microphone', t('settings.health.microphone'), device(health.microphone)),
      ...item('screen', t('settings.health.screen'), screen, screen ? '' : t('settings.health.screenAbsent')),
      ...item('disk', t('settings.health.disk'), !!health.disk?.ok,
        typeof free === 'number' ? t('settings.health.free', { gb: formatNumber(free / 1e9, { maximumFractionDigits: 1 }) }) : ''),
      ...item('reach', t('settings.health.reach'), !!reach.public, reach.public ? reach.url : t('settings.health.localOnly')),
    ].flat());
  }).catch((err) => {
    replace(list, h('p', { class: 'form-error', text: errorText(err) }));
  }).finally(() => card.removeAttribute('aria-busy'));
  return card;
}
