// Languages: every text the pages show comes from one dictionary per language
// (js/i18n/<lang>.js, the same keys in each), looked up with t('key', {name}) and,
// for counts, tn('key', n), which picks the plural form with Intl.PluralRules
// ("1 минута / 2 минуты / 5 минут"). Dates and times are formatted with Intl in the
// page's language, and <html lang> follows it; so are numbers (formatNumber: "1,5" in
// Russian) and lists of names (formatList). docs/i18n.md has the rules and the terms.
//
// Which language: the kiosk follows the station's `station.language` (`auto`: the
// browser's); everybody else the browser's, unless they chose one with the switch
// (remembered in localStorage).

/** The languages there is a dictionary for; the first is the fallback. */
export const LANGUAGES = /** @type {const} */ (['en', 'ru']);
/** @typedef {typeof LANGUAGES[number]} Language */
/** @typedef {Record<string, string|Record<string, string>>} Dictionary */

/** Each language in its own words, for the switch (the same in every dictionary). */
export const LANGUAGE_NAMES = /** @type {Record<Language, string>} */ ({ en: 'English', ru: 'Русский' });

const CHOSEN_KEY = 'videostation.lang';

/** @type {Language} */
let current = 'en';
/** @type {Dictionary} */
let dict = {};
/** @type {Intl.PluralRules} */
let plurals = new Intl.PluralRules('en');

/** @param {unknown} lang @returns {lang is Language} */
export function isLanguage(lang) {
  return typeof lang === 'string' && /** @type {readonly string[]} */ (LANGUAGES).includes(lang);
}

/** The first of the browser's languages there is a dictionary for. @returns {Language} */
export function browserLanguage() {
  const wanted = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language];
  for (const tag of wanted) {
    const base = String(tag || '').toLowerCase().split('-')[0];
    if (isLanguage(base)) return base;
  }
  return LANGUAGES[0];
}

/** The language chosen with the switch on this browser, if any. @returns {Language|null} */
export function chosenLanguage() {
  try {
    const lang = localStorage.getItem(CHOSEN_KEY);
    return isLanguage(lang) ? lang : null;
  } catch {
    return null;
  }
}

/** Remembers the switch's choice. @param {Language} lang */
export function chooseLanguage(lang) {
  try {
    localStorage.setItem(CHOSEN_KEY, lang);
  } catch {
    // storage disabled: the choice lasts until the page is reloaded
  }
}

/** @returns {Language} */
export function language() {
  return current;
}

/**
 * Loads `lang`'s dictionary and makes it the page's language.
 * @param {string} lang  a language, or anything else for the browser's
 */
export async function setLanguage(lang) {
  const next = isLanguage(lang) ? lang : browserLanguage();
  if (next === current && Object.keys(dict).length) return;
  /** @type {{default: Dictionary}} */
  const mod = next === 'ru' ? await import('./i18n/ru.js') : await import('./i18n/en.js');
  dict = mod.default;
  current = next;
  plurals = new Intl.PluralRules(next);
  document.documentElement.lang = next;
}

/**
 * @param {string} text
 * @param {Record<string, string|number>} params
 */
function fill(text, params) {
  return text.replace(/\{(\w+)\}/g, (all, name) => (name in params ? String(params[name]) : all));
}

/**
 * The text of `key` in the page's language, with `{name}` placeholders filled.
 * @param {string} key
 * @param {Record<string, string|number>} [params]
 */
export function t(key, params = {}) {
  const value = dict[key];
  if (typeof value !== 'string') {
    console.error(`i18n: no text for ${key} in ${current}`);
    return key;
  }
  return fill(value, params);
}

/**
 * The plural form of `key` for `n` ("{n} минуты"); `{n}` is the count.
 * @param {string} key
 * @param {number} n
 * @param {Record<string, string|number>} [params]
 */
export function tn(key, n, params = {}) {
  const forms = dict[key];
  if (!forms || typeof forms !== 'object') {
    console.error(`i18n: no plural forms for ${key} in ${current}`);
    return `${n}`;
  }
  const form = forms[plurals.select(n)] ?? forms.other;
  return fill(form, { ...params, n: new Intl.NumberFormat(current).format(n) });
}

/**
 * What to call the station: the name the household set, as set (never declined or
 * translated), or this language's default ("Video Station", "Видеостанция") when the
 * service says `name: ""` (nobody named it).
 * @param {string} name  `/api/station`'s `name`
 */
export function stationName(name) {
  return name || t('station.defaultName');
}

/**
 * A number for people, in the page's language: "1,234.5" / "1 234,5".
 * @param {number} n
 * @param {Intl.NumberFormatOptions} [options]
 */
export function formatNumber(n, options = {}) {
  return new Intl.NumberFormat(current, options).format(n);
}

/**
 * A share (0..1) as a percentage in the page's language: "1.5%" / "1,5 %".
 * @param {number} share
 * @param {number} [digits]  at most this many decimals
 */
export function formatPercent(share, digits = 0) {
  return formatNumber(share, { style: 'percent', maximumFractionDigits: digits });
}

/**
 * Names in a list the language's way: "Masha, Petya and Anna" / "Маша, Петя и Анна".
 * The names stay as typed: no sentence around them declines them.
 * @param {string[]} names
 */
export function formatList(names) {
  return new Intl.ListFormat(current, { style: 'long', type: 'conjunction' }).format(names);
}

/** Is there a text for `key`? @param {string} key */
export function has(key) {
  return key in dict;
}

/**
 * The message for an API error, by its stable `code` (never the server's English text).
 * @param {unknown} err
 */
export function errorText(err) {
  const code = err && typeof err === 'object' && 'code' in err ? String(err.code) : '';
  if (code && has(`error.${code}`)) return t(`error.${code}`);
  if (code) return t('error.other', { code });
  return t('error.unexpected');
}

/** A clock time: "18:42". @param {Date} at */
export function formatClock(at) {
  return at.toLocaleTimeString(current, { hour: '2-digit', minute: '2-digit' });
}

/** The kiosk's date line: "Saturday, 28 November". @param {Date} at */
export function formatLongDate(at) {
  return at.toLocaleDateString(current, { weekday: 'long', day: 'numeric', month: 'long' });
}

/** A unix time (seconds) for people. @param {number} seconds */
export function formatTime(seconds) {
  return new Date(seconds * 1000).toLocaleString(current, { dateStyle: 'medium', timeStyle: 'short' });
}

/**
 * A unix time (seconds) briefly: "18:42" today, "Mon 18:42" within the week, the date
 * and time before that.
 * @param {number} seconds
 * @param {Date} [now]
 */
export function formatWhen(seconds, now = new Date()) {
  const at = new Date(seconds * 1000);
  const time = formatClock(at);
  if (at.toDateString() === now.toDateString()) return time;
  if (now.getTime() - at.getTime() < 6 * 86400_000) {
    return `${at.toLocaleDateString(current, { weekday: 'short' })} ${time}`;
  }
  return formatTime(seconds);
}

/**
 * A length of time: "42 seconds", "3 minutes", "1 hour 20 minutes" (in whole minutes
 * past the first minute).
 * @param {number} seconds
 */
export function formatDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return tn('duration.seconds', s);
  if (s < 3600) return tn('duration.minutes', Math.floor(s / 60));
  const m = Math.floor((s % 3600) / 60);
  const hours = tn('duration.hours', Math.floor(s / 3600));
  return m ? `${hours} ${tn('duration.minutes', m)}` : hours;
}

/** A running call timer: "4:07", "1:02:33". @param {number} seconds */
export function formatTimer(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const two = (/** @type {number} */ n) => String(n).padStart(2, '0');
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}:${two(m)}:${two(s % 60)}` : `${m}:${two(s % 60)}`;
}
