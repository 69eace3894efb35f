// A ringtone synthesised with WebAudio (no media file): the classic two-tone ring,
// 0.4 s on / 0.2 s off / 0.4 s on / 2 s off. The kiosk's Chromium allows autoplay.

export class Ringtone {
  constructor() {
    /** @type {AudioContext|null} */
    this.ctx = null;
    /** @type {ReturnType<typeof setInterval>|null} */
    this.timer = null;
    this.playing = false;
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
    this.timer = setInterval(() => this.burst(), 3000);
  }

  burst() {
    const ctx = this.ctx;
    if (!ctx) return;
    const t0 = ctx.currentTime + 0.02;
    const gain = ctx.createGain();
    gain.gain.value = 0;
    gain.connect(ctx.destination);
    for (const f of [440, 480]) {
      const osc = ctx.createOscillator();
      osc.frequency.value = f;
      osc.connect(gain);
      osc.start(t0);
      osc.stop(t0 + 1.1);
    }
    for (const [on, off] of [[0, 0.4], [0.6, 1.0]]) {
      gain.gain.setValueAtTime(0, t0 + on);
      gain.gain.linearRampToValueAtTime(0.25, t0 + on + 0.02);
      gain.gain.setValueAtTime(0.25, t0 + off - 0.02);
      gain.gain.linearRampToValueAtTime(0, t0 + off);
    }
  }

  stop() {
    this.playing = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.ctx) {
      void this.ctx.close();
      this.ctx = null;
    }
  }
}
