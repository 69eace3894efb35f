// A full-page message: wrong links, missing rooms, failures. Never a blank page.
import { h, replace } from '../dom.js';

/**
 * @typedef {{label: string, href?: string, onclick?: () => void, primary?: boolean}} Action
 */

/**
 * @param {{root: HTMLElement}} ctx
 * @param {string} title
 * @param {string} message
 * @param {Action[]} [actions]
 */
export function renderError(ctx, title, message, actions = []) {
  replace(ctx.root, h('section', { class: 'center-screen', 'data-testid': 'error-page' },
    h('div', { class: 'card message-card', role: 'alert' },
      h('div', { class: 'message-icon', 'aria-hidden': 'true', text: '!' }),
      h('h1', { text: title }),
      h('p', { class: 'muted', 'data-testid': 'error-message', text: message }),
      h('div', { class: 'actions' }, actions.map((a, i) => a.href
        ? h('a', { class: `button${i === 0 ? ' primary' : ''}`, href: a.href, text: a.label })
        : h('button', { class: `button${i === 0 ? ' primary' : ''}`, type: 'button', text: a.label, onclick: a.onclick }))),
    )));
}
