// The language switch for phones and browsers (the kiosk follows the station's
// config instead): a small <select> of the languages, each named in its own words.
// The choice is remembered on this browser and the page is drawn again in it.
import { h } from '../dom.js';
import { LANGUAGES, LANGUAGE_NAMES, chooseLanguage, isLanguage, language, setLanguage, t } from '../i18n.js';

/**
 * @param {() => void} redraw  draws the page again once the new dictionary is loaded
 * @returns {HTMLSelectElement}
 */
export function languageSwitch(redraw) {
  const select = h('select', { class: 'language-switch', 'aria-label': t('app.language'), title: t('app.language'), 'data-testid': 'language-switch' },
    LANGUAGES.map((lang) => h('option', { value: lang, selected: lang === language(), lang, text: LANGUAGE_NAMES[lang] })));
  select.addEventListener('change', async () => {
    const lang = select.value;
    if (!isLanguage(lang)) return;
    chooseLanguage(lang);
    await setLanguage(lang);
    redraw();
  });
  return select;
}
