// One notice area for the in-call screens (the kiosk and the caller's page; issue 24,
// item 2): every notice goes to one place and only the most important one shows, so
// none is ever drawn over another, and the area keeps clear of the names and the
// control row by where it sits (app.css .notices). Each notice stays an element of
// its own module that shows and hides itself with `hidden`; the area decides which
// of the shown ones is visible (the others get `.outranked`, and come back when the
// one above them goes).
import { h } from '../dom.js';

/**
 * The kinds of notice, most important first; the order is the whole policy.
 * - `offline`: the station cannot be reached at all (the caller's page counts down).
 * - `reconnecting`: the socket to the station dropped; every other notice is stale.
 * - `unreached`: the kiosk: a caller gets no picture from the station (its connection
 *   failed); the caller's page: it could not connect to the station (or a peer).
 * - `weak`: a weak connection, judged on what this screen receives (ui/quality.js).
 * - `station-muted`: the caller's page: the station's microphone muted / camera off.
 * - `toast`: a passing word ("Maria joined", "wait before calling again").
 * @typedef {'offline'|'reconnecting'|'unreached'|'weak'|'station-muted'|'toast'} NoticeKind
 * @type {readonly NoticeKind[]}
 */
export const PRIORITY = Object.freeze(['offline', 'reconnecting', 'unreached', 'weak', 'station-muted', 'toast']);

export class NoticeArea {
  /** @param {Record<string, string>} [attrs]  extra attributes of the area (its class) */
  constructor(attrs = {}) {
    this.el = h('div', { class: 'notices', 'data-testid': 'notices', ...attrs });
    /** @type {Map<NoticeKind, HTMLElement>} */
    this.notices = new Map();
    this.observer = new MutationObserver(() => this.render());
  }

  /**
   * Takes `el` into the area as the notice of `kind` (its `hidden` says whether it wants
   * to show). Elements are kept in PRIORITY order.
   * @param {NoticeKind} kind
   * @param {HTMLElement} el
   * @returns {HTMLElement} el
   */
  add(kind, el) {
    el.dataset.notice = kind;
    el.classList.add('notice');
    this.notices.set(kind, el);
    const order = PRIORITY.filter((k) => this.notices.has(k)).map((k) => /** @type {HTMLElement} */ (this.notices.get(k)));
    this.el.replaceChildren(...order);
    this.observer.observe(el, { attributes: true, attributeFilter: ['hidden'] });
    this.render();
    return el;
  }

  /** @returns {NoticeKind|null} the kind on screen now */
  get shown() {
    for (const kind of PRIORITY) {
      const el = this.notices.get(kind);
      if (el && !el.hidden) return kind;
    }
    return null;
  }

  /** Shows the most important notice that wants to show; outranks the rest. */
  render() {
    const top = this.shown;
    for (const [kind, el] of this.notices) el.classList.toggle('outranked', kind !== top);
    this.el.dataset.shown = top || '';
    this.el.hidden = !top;
  }

  stop() {
    this.observer.disconnect();
  }
}
