// The local video as a floating 4:3 window: drag it with a finger or the mouse,
// resize it from the corner handle (the ratio stays 4:3), and it never leaves its
// container nor covers the controls bar (the bottom `reserve` pixels) or the top bar
// with the reconnecting banner and the weak-connection notice (`reserveTop`). At rest
// it always sits in a corner that leaves the `avoid` rectangles (tile labels)
// uncovered: let go after a drag or a resize, it glides to the nearest such corner
// (smaller, if it has grown too big for any); the arrow keys move it from corner to
// corner and + / − resize it, by the same rule. When the page changes under it (a
// label appears, the banner grows the top bar, the screen turns), the elements in
// `watch` tell it to look again. A tap (no drag) or Enter calls `onTap` (the call
// page swaps it with the main picture).

const RATIO = 3 / 4;
const MARGIN = 8;

/**
 * @param {HTMLElement} box       the floating element (absolutely positioned)
 * @param {HTMLElement} container the area it moves in
 * @param {{handle: HTMLElement, reserveBottom?: () => number, reserveTop?: () => number, minWidth?: number,
 *   avoid?: () => DOMRect[], watch?: Element[], onTap?: () => void}} opts
 * @returns {() => void} detaches the listeners
 */
export function makeFloating(box, container, {
  handle, reserveBottom = () => 0, reserveTop = () => 0, minWidth = 96, avoid = () => [], watch = [], onTap,
}) {
  let x = 0;
  let y = 0;
  let w = 0;
  let placed = false;
  /** Ends the corner glide under way, if any. @type {(() => void) | null} */
  let endSnap = null;
  /** the corner it rests in */
  let corner = { right: true, bottom: false };

  function bounds() {
    const r = container.getBoundingClientRect();
    const top = Math.max(MARGIN, reserveTop());
    return { width: r.width, height: Math.max(0, r.height - reserveBottom()), top };
  }

  function clampAndApply() {
    const b = bounds();
    const maxW = Math.max(minWidth, Math.min(b.width * 0.6, (b.height - b.top - MARGIN) / RATIO, 640));
    w = Math.min(Math.max(w, minWidth), maxW);
    const hgt = w * RATIO;
    x = Math.min(Math.max(x, MARGIN), Math.max(MARGIN, b.width - w - MARGIN));
    y = Math.min(Math.max(y, b.top), Math.max(b.top, b.height - hgt - MARGIN));
    box.style.width = `${Math.round(w)}px`;
    box.style.height = `${Math.round(hgt)}px`;
    box.style.transform = `translate(${Math.round(x)}px, ${Math.round(y)}px)`;
    box.classList.toggle('on-right', x + w / 2 > b.width / 2);
  }

  /**
   * The four resting places for a window `width` wide, free ones first, then nearest.
   * @param {number} width
   */
  function corners(width) {
    const b = bounds();
    const hgt = width * RATIO;
    const origin = container.getBoundingClientRect();
    const labels = avoid().filter((r) => r.width > 0 && r.height > 0);
    return [MARGIN, b.width - width - MARGIN].flatMap((cx) => [b.top, b.height - hgt - MARGIN].map((cy) => ({ cx, cy })))
      .map(({ cx, cy }) => ({
        cx, cy,
        dist: Math.hypot(cx - x, cy - y),
        covers: labels.some((r) => r.left - origin.left < cx + width && r.right - origin.left > cx
          && r.top - origin.top < cy + hgt && r.bottom - origin.top > cy),
      }))
      .sort((a, b2) => Number(a.covers) - Number(b2.covers) || a.dist - b2.dist);
  }

  /**
   * To the nearest corner that covers no `avoid` rectangle; if none is free at this
   * size, smaller until one is (down to `minWidth`). With a short glide, none when
   * motion is reduced (the stylesheet drops the transition).
   */
  function settle() {
    clampAndApply();
    let best = corners(w)[0];
    while (best.covers && w > minWidth) {
      w = Math.max(minWidth, w * 0.85);
      best = corners(w)[0];
    }
    const b = bounds();
    x = best.cx;
    y = best.cy;
    corner = { right: x + w / 2 > b.width / 2, bottom: y + (w * RATIO) / 2 > (b.height + b.top) / 2 };
    endSnap?.(); // a glide still under way ends here: its timer must not cut this one short
    box.classList.add('snapping');
    clampAndApply();
    // Until the glide has ended (a busy renderer runs it late), or a little after it
    // should have when there was none to run (reduced motion, already in the corner).
    const ended = (/** @type {TransitionEvent} */ e) => {
      if (e.target === box && e.propertyName === 'transform') done();
    };
    const done = () => {
      clearTimeout(timer);
      box.classList.remove('snapping');
      box.removeEventListener('transitionend', ended);
      endSnap = null;
    };
    box.addEventListener('transitionend', ended);
    const timer = setTimeout(done, 1000);
    endSnap = done;
  }

  /** The page changed under it: back to its corner, and away from anything it now covers. */
  function place() {
    const b = bounds();
    if (!b.width || box.classList.contains('dragging')) return;
    if (!placed) {
      // Top-right corner, about a quarter of the width (smaller on phones held upright).
      w = Math.max(minWidth, Math.min(b.width * (b.width < 600 ? 0.32 : 0.22), 320));
      placed = true;
    }
    x = corner.right ? b.width : 0;
    y = corner.bottom ? b.height : 0;
    clampAndApply();
    const here = corners(w).find((c) => Math.abs(c.cx - x) < 1 && Math.abs(c.cy - y) < 1);
    if (!here || here.covers) settle();
  }

  /**
   * @param {PointerEvent} down
   * @param {(dx: number, dy: number, start: {x: number, y: number, w: number}) => void} move
   * @param {boolean} [tap] a press that does not move is a tap
   */
  function track(down, move, tap = false) {
    down.preventDefault();
    down.stopPropagation();
    const target = /** @type {Element} */ (down.currentTarget);
    target.setPointerCapture(down.pointerId);
    const start = { x, y, w };
    box.classList.add('dragging');
    let far = 0;
    /** @param {PointerEvent} ev */
    const gotMove = (ev) => {
      if (ev.pointerId !== down.pointerId) return;
      far = Math.max(far, Math.hypot(ev.clientX - down.clientX, ev.clientY - down.clientY));
      if (tap && far < 10) return; // a finger wobbles on a tap
      move(ev.clientX - down.clientX, ev.clientY - down.clientY, start);
      clampAndApply();
    };
    let done = false;
    /** @param {PointerEvent} ev */
    const gotUp = (ev) => {
      if (ev.pointerId !== down.pointerId || done) return;
      done = true;
      box.classList.remove('dragging');
      const moved = x !== start.x || y !== start.y || w !== start.w;
      if (!tap || far >= 10 || moved) settle();
      else if (ev.type === 'pointerup') onTap?.();
      target.removeEventListener('pointermove', /** @type {EventListener} */ (gotMove));
      target.removeEventListener('pointerup', /** @type {EventListener} */ (gotUp));
      target.removeEventListener('pointercancel', /** @type {EventListener} */ (gotUp));
      target.removeEventListener('lostpointercapture', /** @type {EventListener} */ (gotUp));
      document.removeEventListener('pointerup', /** @type {EventListener} */ (gotUp), true);
    };
    target.addEventListener('pointermove', /** @type {EventListener} */ (gotMove));
    target.addEventListener('pointerup', /** @type {EventListener} */ (gotUp));
    target.addEventListener('pointercancel', /** @type {EventListener} */ (gotUp));
    // However the drag ends (the pointer capture lost without a pointerup, or the
    // pointerup sent elsewhere), the window lands in a corner instead of staying where
    // the finger left it.
    target.addEventListener('lostpointercapture', /** @type {EventListener} */ (gotUp));
    document.addEventListener('pointerup', /** @type {EventListener} */ (gotUp), true);
  }

  /** @param {PointerEvent} ev */
  const gotDragStart = (ev) => {
    if (ev.button !== 0 || ev.target === handle) return;
    track(ev, (dx, dy, s) => { x = s.x + dx; y = s.y + dy; }, true);
  };
  /** @param {PointerEvent} ev */
  const gotResizeStart = (ev) => {
    if (ev.button !== 0) return;
    // The handle sits at the bottom-left when the box is on the right half, so dragging
    // it outward grows the box in both cases; the opposite corner stays put.
    const onRight = x + w / 2 > bounds().width / 2;
    track(ev, (dx, dy, s) => {
      const grow = Math.max(onRight ? -dx : dx, dy / RATIO);
      w = s.w + grow;
      if (onRight) x = s.x + s.w - Math.min(Math.max(w, minWidth), 640);
    });
  };
  /** @param {KeyboardEvent} ev */
  const gotKey = (ev) => {
    const b = bounds();
    const step = ev.shiftKey ? 40 : 10;
    if (ev.key === 'ArrowLeft' || ev.key === 'ArrowRight') x = ev.key === 'ArrowRight' ? b.width : 0;
    else if (ev.key === 'ArrowUp' || ev.key === 'ArrowDown') y = ev.key === 'ArrowDown' ? b.height : 0;
    else if (ev.key === '+' || ev.key === '=') w += step;
    else if (ev.key === '-') w -= step;
    else if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); onTap?.(); return; }
    else return;
    ev.preventDefault();
    settle();
  };

  box.addEventListener('pointerdown', gotDragStart);
  handle.addEventListener('pointerdown', gotResizeStart);
  box.addEventListener('keydown', gotKey);
  // Looked at once per frame at most, however many changes arrive together.
  let pending = 0;
  const later = () => { if (!pending) pending = requestAnimationFrame(() => { pending = 0; place(); }); };
  const ro = new ResizeObserver(later);
  ro.observe(container);
  const mo = new MutationObserver(later);
  for (const el of watch) {
    ro.observe(el);
    mo.observe(el, { childList: true, subtree: true, characterData: true, attributes: true, attributeFilter: ['hidden', 'class'] });
  }
  place();
  return () => {
    ro.disconnect();
    mo.disconnect();
    if (pending) cancelAnimationFrame(pending);
    box.removeEventListener('pointerdown', gotDragStart);
    handle.removeEventListener('pointerdown', gotResizeStart);
    box.removeEventListener('keydown', gotKey);
  };
}
