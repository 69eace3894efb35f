// Tones synthesised with WebAudio (no media file). The kiosk rings with the classic
// two-tone ring, 0.4 s on / 0.2 s off / 0.4 s on / 2 s off (its Chromium allows
// autoplay); a caller hears the ringback while the station rings: 425 Hz, 1 s on,
// 4 s off (started by the press on "Call", so phones allow it too).
//
// Levels (of the page's output, before the system volume): the ring's two tones at
// 0.16 each peak at 0.32 of full scale (-10 dBFS, about -16 dBFS RMS while on), loud
// enough across a room without the clipping a full-scale square-ish beat would have;
// the ringback at 0.12 (-18 dBFS peak) is heard at a phone's ear. `stop()` silences at
// once (the tone is disconnected before its context closes).

/**
 * @typedef {{freqs: number[], bursts: [number, number][], period: number, gain: number}} Pattern
 */

/** @type {Pattern} */
export const RING = { freqs: [440, 480], bursts: [[0, 0.4], [0.6, 1.0]], period: 3, gain: 0.16 };
/** @type {Pattern} */
export const RINGBACK = { freqs: [425], bursts: [[0, 1.0]], period: 5, gain: 0.12 };

export class Ringtone {
  /** @param {Pattern} [pattern] */
  constructor(pattern = RING) {
    this.pattern = pattern;
    /** @type {AudioContext|null} */
    this.ctx = null;
    /** @type {ReturnType<typeof setInterval>|null} */
    this.timer = null;
    this.playing = false;
    /** @type {GainNode|null} the burst sounding now */
    this.current = null;
  }

  start() {
    if (this.playing) return;
    this.playing = true;
    try {
      this.ctx = this.ctx || new AudioContext();
      void this.ctx.resume();
    } catch {
      return; // no audio output: the screen still shows the call
    }
    this.burst();
    this.timer = setInterval(() => this.burst(), this.pattern.period * 1000);
  }

  burst() {
    const ctx = this.ctx;
    if (!ctx) return;
    const t0 = ctx.currentTime + 0.02;
    const gain = ctx.createGain();
    gain.gain.value = 0;
    gain.connect(ctx.destination);
    this.current?.disconnect();
    this.current = gain;
    const { freqs, bursts, gain: level } = this.pattern;
    const end = bursts[bursts.length - 1][1];
    for (const f of freqs) {
      const osc = ctx.createOscillator();
      osc.frequency.value = f;
      osc.connect(gain);
      osc.start(t0);
      osc.stop(t0 + end + 0.1);
    }
    for (const [on, off] of bursts) {
      gain.gain.setValueAtTime(0, t0 + on);
      gain.gain.linearRampToValueAtTime(level, t0 + on + 0.02);
      gain.gain.setValueAtTime(level, t0 + off - 0.02);
      gain.gain.linearRampToValueAtTime(0, t0 + off);
    }
  }

  stop() {
    this.playing = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.current?.disconnect(); // silent now, not when the context has closed
    this.current = null;
    if (this.ctx) {
      void this.ctx.close();
      this.ctx = null;
    }
  }
}
