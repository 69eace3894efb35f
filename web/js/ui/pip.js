// The local video as a floating 4:3 window: drag it with a finger or the mouse,
// resize it from the corner handle (the ratio stays 4:3), and it never leaves its
// container nor covers the controls bar (the bottom `reserve` pixels) or the top bar
// with the reconnecting banner (`reserveTop`). Let go, it glides to the nearest corner
// that leaves the `avoid` rectangles (tile labels) uncovered. A tap (no drag) or Enter
// calls `onTap` (the call page swaps it with the main picture).

const RATIO = 3 / 4;

/**
 * @param {HTMLElement} box       the floating element (absolutely positioned)
 * @param {HTMLElement} container the area it moves in
 * @param {{handle: HTMLElement, reserveBottom?: () => number, reserveTop?: () => number, minWidth?: number,
 *   avoid?: () => DOMRect[], onTap?: () => void}} opts
 * @returns {() => void} detaches the listeners
 */
export function makeFloating(box, container, { handle, reserveBottom = () => 0, reserveTop = () => 0, minWidth = 96, avoid = () => [], onTap }) {
  let x = 0;
  let y = 0;
  let w = 0;
  let placed = false;
  /** @type {{right: boolean, bottom: boolean}|null} the corner it sits in (null: moved by keys) */
  let corner = { right: true, bottom: false };

  function bounds() {
    const r = container.getBoundingClientRect();
    return { width: r.width, height: Math.max(0, r.height - reserveBottom()) };
  }

  function clampAndApply() {
    const b = bounds();
    const margin = 8;
    const maxW = Math.max(minWidth, Math.min(b.width * 0.6, (b.height - 2 * margin) / RATIO, 640));
    w = Math.min(Math.max(w, minWidth), maxW);
    const hgt = w * RATIO;
    x = Math.min(Math.max(x, margin), Math.max(margin, b.width - w - margin));
    const top = Math.max(margin, reserveTop());
    y = Math.min(Math.max(y, top), Math.max(top, b.height - hgt - margin));
    box.style.width = `${Math.round(w)}px`;
    box.style.height = `${Math.round(hgt)}px`;
    box.style.transform = `translate(${Math.round(x)}px, ${Math.round(y)}px)`;
    box.classList.toggle('on-right', x + w / 2 > b.width / 2);
  }

  function place() {
    const b = bounds();
    if (!b.width) return;
    if (!placed) {
      // Top-right corner, about a quarter of the width (smaller on phones held upright).
      w = Math.max(minWidth, Math.min(b.width * (b.width < 600 ? 0.32 : 0.22), 320));
      placed = true;
    }
    if (corner) {
      // The screen turned or resized: stay in the same corner.
      x = corner.right ? b.width : 0;
      y = corner.bottom ? b.height : 0;
    }
    clampAndApply();
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
    const onMove = (ev) => {
      if (ev.pointerId !== down.pointerId) return;
      far = Math.max(far, Math.hypot(ev.clientX - down.clientX, ev.clientY - down.clientY));
      if (tap && far < 10) return; // a finger wobbles on a tap
      move(ev.clientX - down.clientX, ev.clientY - down.clientY, start);
      clampAndApply();
    };
    /** @param {PointerEvent} ev */
    const onUp = (ev) => {
      if (ev.pointerId !== down.pointerId) return;
      box.classList.remove('dragging');
      if (!tap || far >= 10) snap();
      else if (ev.type === 'pointerup') onTap?.();
      target.removeEventListener('pointermove', /** @type {EventListener} */ (onMove));
      target.removeEventListener('pointerup', /** @type {EventListener} */ (onUp));
      target.removeEventListener('pointercancel', /** @type {EventListener} */ (onUp));
    };
    target.addEventListener('pointermove', /** @type {EventListener} */ (onMove));
    target.addEventListener('pointerup', /** @type {EventListener} */ (onUp));
    target.addEventListener('pointercancel', /** @type {EventListener} */ (onUp));
  }

  /**
   * To the nearest corner that covers no `avoid` rectangle (else the nearest), with a
   * short glide (none when motion is reduced: the stylesheet drops the transition).
   */
  function snap() {
    const b = bounds();
    const margin = 8;
    const hgt = w * RATIO;
    const top = Math.max(margin, reserveTop());
    const origin = container.getBoundingClientRect();
    const labels = avoid();
    const corners = [margin, b.width - w - margin].flatMap((cx) => [top, b.height - hgt - margin].map((cy) => ({ cx, cy })))
      .map(({ cx, cy }) => ({
        cx, cy,
        dist: Math.hypot(cx - x, cy - y),
        covers: labels.some((r) => r.width > 0 && r.left - origin.left < cx + w && r.right - origin.left > cx
          && r.top - origin.top < cy + hgt && r.bottom - origin.top > cy),
      }))
      .sort((a, b2) => Number(a.covers) - Number(b2.covers) || a.dist - b2.dist);
    x = corners[0].cx;
    y = corners[0].cy;
    corner = { right: x + w / 2 > b.width / 2, bottom: y + hgt / 2 > (b.height + top) / 2 };
    box.classList.add('snapping');
    clampAndApply();
    setTimeout(() => box.classList.remove('snapping'), 250);
  }

  /** @param {PointerEvent} ev */
  const onDragStart = (ev) => {
    if (ev.button !== 0 || ev.target === handle) return;
    track(ev, (dx, dy, s) => { x = s.x + dx; y = s.y + dy; }, true);
  };
  /** @param {PointerEvent} ev */
  const onResizeStart = (ev) => {
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
  const onKey = (ev) => {
    const step = ev.shiftKey ? 40 : 10;
    const moves = /** @type {Record<string, [number, number]>} */ ({ ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] });
    if (moves[ev.key]) { x += moves[ev.key][0]; y += moves[ev.key][1]; corner = null; }
    else if (ev.key === '+' || ev.key === '=') w += step;
    else if (ev.key === '-') w -= step;
    else if (ev.key === 'Enter' || ev.key === ' ') onTap?.();
    else return;
    ev.preventDefault();
    clampAndApply();
  };

  box.addEventListener('pointerdown', onDragStart);
  handle.addEventListener('pointerdown', onResizeStart);
  box.addEventListener('keydown', onKey);
  const ro = new ResizeObserver(() => place());
  ro.observe(container);
  place();
  return () => {
    ro.disconnect();
    box.removeEventListener('pointerdown', onDragStart);
    handle.removeEventListener('pointerdown', onResizeStart);
    box.removeEventListener('keydown', onKey);
  };
}
