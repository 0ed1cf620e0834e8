// @ts-check
/**
 * The admission chime: a short two-tone beep made with Web Audio (no sound file) and a
 * vibration, for a patient whose phone lies on the table while they wait in the lobby.
 */

/** Two notes (Hz) of 150 ms each, a pause between them. */
const NOTES = [660, 880];
const NOTE_SECONDS = 0.15;
/** Vibrate, pause, vibrate (ms). */
const VIBRATION = [200, 100, 200];

/** A chime that is made ready by a tap and played later, when no tap is at hand. */
export class Chime {
  constructor() {
    /** @type {AudioContext|null} */
    this.context = null;
  }

  /**
   * Create (or resume) the audio context. Call it from a tap's handler (the "Join" click):
   * browsers start audio contexts created without one suspended.
   */
  prepare() {
    if (typeof AudioContext === "undefined") return;
    this.context ??= new AudioContext();
    this.context.resume().catch(() => {});
  }

  /** Beep and vibrate (each where the browser can). */
  play() {
    navigator.vibrate?.(VIBRATION);
    const context = this.context;
    if (!context) return;
    const start = context.currentTime + 0.05;
    NOTES.forEach((frequency, index) => {
      const oscillator = context.createOscillator();
      const gain = context.createGain();
      const at = start + index * NOTE_SECONDS * 1.5;
      oscillator.frequency.value = frequency;
      // A short ramp in and out: no click at the note's edges.
      gain.gain.setValueAtTime(0, at);
      gain.gain.linearRampToValueAtTime(0.3, at + 0.01);
      gain.gain.linearRampToValueAtTime(0, at + NOTE_SECONDS);
      oscillator.connect(gain).connect(context.destination);
      oscillator.start(at);
      oscillator.stop(at + NOTE_SECONDS);
    });
  }

  /** Release the audio context. */
  close() {
    this.context?.close().catch(() => {});
    this.context = null;
  }
}
