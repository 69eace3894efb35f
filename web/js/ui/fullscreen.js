// Full-screen helpers: a toggle, and "phones go full-screen when the call starts".

export function isFullscreen() {
  return !!document.fullscreenElement;
}

/** Phones and small tablets: a coarse pointer and a small screen. */
export function isMobile() {
  return matchMedia('(pointer: coarse)').matches && Math.min(screen.width, screen.height) < 820;
}

/** @param {HTMLElement} [el] */
export async function enterFullscreen(el = document.documentElement) {
  if (document.fullscreenElement || !el.requestFullscreen) return;
  try {
    await el.requestFullscreen({ navigationUI: 'hide' });
  } catch {
    // Refused (no user gesture, iOS Safari): the layout already fills the viewport.
  }
}

export async function exitFullscreen() {
  if (document.fullscreenElement) await document.exitFullscreen().catch(() => undefined);
}

export async function toggleFullscreen() {
  if (isFullscreen()) await exitFullscreen();
  else await enterFullscreen();
}
