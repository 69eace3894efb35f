// A full-page end of a call: the caller left, was not let in, or the invitation was
// withdrawn. Unlike the error page, nothing went wrong; the page says so calmly and
// holds no camera, no microphone and no connection.
import { h, replace } from '../dom.js';

/** @typedef {import('./error.js').Action} Action */

/**
 * @param {{root: HTMLElement}} ctx
 * @param {string} title
 * @param {string} message
 * @param {Action[]} [actions]
 */
export function renderFinished(ctx, title, message, actions = []) {
  replace(ctx.root, h('section', { class: 'center-screen', 'data-testid': 'finished-page' },
    h('div', { class: 'card message-card', role: 'status' },
      h('h1', { 'data-testid': 'finished-title', text: title }),
      h('p', { class: 'muted', 'data-testid': 'finished-message', text: message }),
      h('div', { class: 'actions' }, actions.map((a, i) => a.href
        ? h('a', { class: `button big${i === 0 ? ' primary' : ''}`, href: a.href, text: a.label })
        : h('button', { class: `button big${i === 0 ? ' primary' : ''}`, type: 'button', text: a.label, onclick: a.onclick }))),
    )));
}
