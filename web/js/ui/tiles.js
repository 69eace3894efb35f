// Remote participant tiles: one tile per participant (the station peer and the
// screen peer share one), holding a <video> that plays that participant's media.
import { h } from '../dom.js';
import * as i18n from '../i18n.js';

export class TileGrid {
  /**
   * @param {HTMLElement} el the grid container
   * @param {{muted?: boolean, volume?: number}} [opts]  volume: 0..1 of every tile's sound
   */
  constructor(el, opts = {}) {
    this.el = el;
    this.opts = opts;
    /** @type {Map<string, Tile>} */
    this.tiles = new Map();
    /** @type {ReturnType<typeof setInterval>|undefined} */
    this.backdropTimer = undefined;
  }

  /**
   * @param {string} participant
   * @param {string} name
   */
  ensure(participant, name) {
    let t = this.tiles.get(participant);
    if (!t) {
      const video = h('video', { class: 'tile-video', autoplay: true, playsinline: true });
      video.muted = !!this.opts.muted;
      video.volume = this.opts.volume ?? 1;
      // The whole picture is shown (contain); a tiny copy of it, blurred, fills the bars
      // around it (see paintBackdrops).
      const backdrop = h('canvas', { class: 'tile-backdrop', width: BACKDROP_WIDTH, height: 1, 'aria-hidden': 'true' });
      const label = h('span', { class: 'tile-name', text: name });
      const badges = h('span', { class: 'tile-badges' });
      const tile = h('div', { class: 'tile waiting', 'data-participant': participant },
        backdrop, video, h('div', { class: 'tile-placeholder', 'aria-hidden': 'true', text: initials(name) }), h('div', { class: 'tile-label' }, label, badges));
      // A double tap (or double click) fills the tile with the picture, cropping it; again: whole.
      // Two fingers apart fill it too, together show it whole.
      tile.addEventListener('dblclick', () => tile.classList.toggle('fill'));
      touchZoom(tile);
      t = { tile, video, backdrop, label, badges, streams: new Map() };
      this.tiles.set(participant, t);
      this.el.append(tile);
      this.layout();
      this.backdropTimer ??= setInterval(() => this.paintBackdrops(), BACKDROP_MS);
    } else if (name) {
      t.label.textContent = name;
    }
    return t;
  }

  /**
   * A peer connection of `participant` delivered `stream`.
   * @param {string} participant
   * @param {string} peerId
   * @param {MediaStream} stream
   * @param {string} name
   */
  setStream(participant, peerId, stream, name) {
    const t = this.ensure(participant, name);
    t.streams.set(peerId, stream);
    this.attach(t);
  }

  /**
   * @param {string} participant
   * @param {string} peerId
   */
  dropStream(participant, peerId) {
    const t = this.tiles.get(participant);
    if (!t) return;
    t.streams.delete(peerId);
    this.attach(t);
  }

  /** @param {Tile} t */
  attach(t) {
    // A participant may arrive over two connections (the station: its camera peer
    // and its screen peer, which sends nothing). Play every track in one element.
    const tracks = [...t.streams.values()].flatMap((s) => s.getTracks());
    const hasVideo = tracks.some((tr) => tr.kind === 'video');
    const current = /** @type {MediaStream|null} */ (t.video.srcObject);
    const same = current && current.getTracks().length === tracks.length && tracks.every((tr) => current.getTracks().includes(tr));
    if (!same) {
      t.video.srcObject = tracks.length ? new MediaStream(tracks) : null;
      if (tracks.length) t.video.play().catch(() => undefined);
      t.video.addEventListener('loadeddata', () => this.paintBackdrops(), { once: true });
    }
    t.tile.classList.toggle('waiting', !hasVideo);
  }

  /**
   * @param {string} participant
   * @param {{audio?: boolean, video?: boolean}} muted
   */
  setMuted(participant, muted) {
    const t = this.tiles.get(participant);
    if (!t) return;
    t.badges.replaceChildren(...(muted.audio ? [h('span', { class: 'badge-muted', title: i18n.t('tiles.micOff'), 'aria-label': i18n.t('tiles.micOff'), text: i18n.t('tiles.micOffShort') })] : []));
    t.tile.classList.toggle('video-muted', !!muted.video);
  }

  /**
   * The volume (0..1) of every participant's sound, now and for tiles still to come.
   * @param {number} volume
   */
  setVolume(volume) {
    this.opts.volume = volume;
    for (const t of this.tiles.values()) t.video.volume = volume;
  }

  /** @param {string} participant */
  remove(participant) {
    const t = this.tiles.get(participant);
    if (!t) return;
    t.video.srcObject = null;
    t.tile.remove();
    this.tiles.delete(participant);
    this.layout();
    if (!this.tiles.size) {
      clearInterval(this.backdropTimer);
      this.backdropTimer = undefined;
    }
  }

  clear() {
    for (const p of [...this.tiles.keys()]) this.remove(p);
  }

  /**
   * Copies each tile's current picture into its backdrop: a canvas a few dozen pixels
   * wide, blurred and darkened as it is painted, that CSS only stretches over the tile.
   * A few times a second is plenty for a blur. Both costlier ways were measured
   * (benchmark B2): a second full-rate <video> of the stream cost every frame a second
   * composite, and a CSS filter on the stretched canvas had the compositor blur the
   * whole tile again for every frame of the picture above it; either delayed the
   * picture by two to four display refreshes on a software compositor (and costs a
   * phone's or the kiosk's GPU the same work).
   */
  paintBackdrops() {
    if (document.hidden) return;
    for (const t of this.tiles.values()) {
      const { video, backdrop, tile } = t;
      if (video.readyState < 2 || !video.videoWidth || tile.classList.contains('fill')) continue;
      const height = Math.max(1, Math.round((BACKDROP_WIDTH * video.videoHeight) / video.videoWidth));
      if (backdrop.height !== height) backdrop.height = height;
      const ctx = backdrop.getContext('2d');
      if (!ctx) continue;
      // drawn a pixel past each edge, so the blur does not fade the edges to black
      ctx.filter = `blur(${BACKDROP_BLUR}px)`;
      ctx.drawImage(video, -1, -1, BACKDROP_WIDTH + 2, height + 2);
      ctx.filter = 'none';
      ctx.fillStyle = BACKDROP_SHADE;
      ctx.fillRect(0, 0, BACKDROP_WIDTH, height);
    }
  }

  /**
   * Columns for the number of tiles, fewer on a screen taller than wide: two people on
   * a portrait phone are stacked, each a whole landscape picture, not two tall strips
   * (CSS picks --cols-portrait by orientation). The tiles of the last row are marked:
   * their names sit above the call's controls.
   */
  layout() {
    const n = this.tiles.size;
    this.el.dataset.count = String(n);
    const cols = n <= 1 ? 1 : n <= 4 ? 2 : 3;
    const portrait = n <= 2 ? 1 : 2;
    this.el.style.setProperty('--cols', String(cols));
    this.el.style.setProperty('--cols-portrait', String(portrait));
    const tiles = [...this.tiles.values()].map((t) => t.tile);
    tiles.forEach((tile, i) => {
      tile.classList.toggle('last-row', i >= n - (n % cols || cols));
      tile.classList.toggle('last-row-portrait', i >= n - (n % portrait || portrait));
    });
  }
}

/**
 * @typedef {{tile: HTMLElement, video: HTMLVideoElement, backdrop: HTMLCanvasElement,
 *   label: HTMLElement, badges: HTMLElement, streams: Map<string, MediaStream>}} Tile
 */

/** The backdrop's width in pixels (its height follows the picture's shape). */
const BACKDROP_WIDTH = 32;
/** How often the backdrops follow the pictures (ms). */
const BACKDROP_MS = 500;
/** The backdrop's blur, in its own pixels (one is ~40 screen pixels on a 1280-px tile). */
const BACKDROP_BLUR = 1;
/** Laid over the backdrop: dims it, so the picture stands out. */
const BACKDROP_SHADE = 'rgb(0 0 0 / 0.45)';

/** How much two fingers must spread (or pinch) to fill (or show whole). */
const PINCH = 1.2;
/** Two taps within this many ms are a double tap. */
const DOUBLE_TAP_MS = 350;

/**
 * Pinch and double tap on a touch screen: spread fills the tile, pinch shows the
 * picture whole, a double tap toggles. Handled here (the page is not zoomed:
 * `touch-action: none` on the tiles), so one gesture toggles once.
 * @param {HTMLElement} tile
 */
function touchZoom(tile) {
  /** @param {TouchList} t */
  const spread = (t) => Math.hypot(t[0].clientX - t[1].clientX, t[0].clientY - t[1].clientY);
  let start = 0;
  let lastTap = 0;
  let multi = false; // this gesture had more than one finger: not a tap
  tile.addEventListener('touchstart', (ev) => {
    if (ev.touches.length > 1) multi = true;
    if (ev.touches.length === 2) start = spread(ev.touches);
  }, { passive: true });
  tile.addEventListener('touchmove', (ev) => {
    if (!start || ev.touches.length !== 2) return;
    const ratio = spread(ev.touches) / start;
    if (ratio > PINCH || ratio < 1 / PINCH) {
      tile.classList.toggle('fill', ratio > 1);
      start = 0; // one change per gesture
    }
  }, { passive: true });
  tile.addEventListener('touchend', (ev) => {
    if (ev.touches.length) return;
    if (multi) { multi = false; start = 0; lastTap = 0; return; } // the end of a pinch
    if (ev.timeStamp - lastTap < DOUBLE_TAP_MS) {
      ev.preventDefault(); // no synthesised click/dblclick: it would toggle back
      tile.classList.toggle('fill');
      lastTap = 0;
    } else {
      lastTap = ev.timeStamp;
    }
  });
}

/** @param {string} name */
export function initials(name) {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  return (parts.length ? parts.slice(0, 2).map((p) => p[0]).join('') : '?').toUpperCase();
}
