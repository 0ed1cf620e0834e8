// @ts-check
/**
 * Who is speaking: the level of each received microphone, measured with Web Audio
 * (one AnalyserNode per remote audio track, one shared timer at 5 Hz). Nothing is
 * signalled: every page measures what it receives (docs/protocol.md).
 */

const INTERVAL_MS = 200;
/** Louder than this (dBFS, RMS over the analyser's window) counts as speech. */
const SPEAKING_DB = -50;
/** Quiet readings in a row before someone stops speaking: pauses between words do not flicker. */
const HANGOVER_READINGS = 4;
const FFT_SIZE = 512;

/**
 * @typedef {{participantId: string, source: MediaStreamAudioSourceNode, analyser: AnalyserNode,
 *            speaking: boolean, quiet: number}} Watched
 */

/** Measures received audio tracks and reports who starts and stops speaking. */
export class SpeakingDetector {
  /**
   * @param {(participantId: string, speaking: boolean) => void} onChange called only when
   *   a participant starts or stops speaking
   */
  constructor(onChange) {
    this.onChange = onChange;
    /** @type {AudioContext|null} created with the first track */
    this.context = null;
    /** @type {Map<MediaStreamTrack, Watched>} */
    this.watched = new Map();
    /** @type {ReturnType<typeof setInterval>|null} */
    this.timer = null;
    this.samples = new Float32Array(FFT_SIZE);
    this.resume = () => this.context?.resume().catch(() => {});
  }

  /**
   * Start measuring a participant's received microphone.
   * @param {string} participantId
   * @param {MediaStreamTrack} track an audio track of the subscriber connection
   */
  watch(participantId, track) {
    if (track.kind !== "audio" || this.watched.has(track) || typeof AudioContext === "undefined") return;
    if (!this.context) {
      this.context = new AudioContext();
      // Started suspended until the user interacts with the page (autoplay policy).
      this.resume();
      document.addEventListener("pointerdown", this.resume);
      document.addEventListener("keydown", this.resume);
    }
    const source = this.context.createMediaStreamSource(new MediaStream([track]));
    const analyser = this.context.createAnalyser();
    analyser.fftSize = FFT_SIZE;
    // Not connected to the destination: the tile's video element plays the sound.
    source.connect(analyser);
    this.watched.set(track, { participantId, source, analyser, speaking: false, quiet: 0 });
    this.timer ??= setInterval(() => this.#measure(), INTERVAL_MS);
  }

  /**
   * Stop measuring a track (it was removed or reassigned).
   * @param {MediaStreamTrack} track
   */
  unwatch(track) {
    const entry = this.watched.get(track);
    if (!entry) return;
    entry.source.disconnect();
    this.watched.delete(track);
    if (entry.speaking) this.onChange(entry.participantId, false);
    if (this.watched.size === 0) this.#stopTimer();
  }

  /** Stop measuring everything and release the audio context. */
  close() {
    for (const track of [...this.watched.keys()]) this.unwatch(track);
    this.#stopTimer();
    document.removeEventListener("pointerdown", this.resume);
    document.removeEventListener("keydown", this.resume);
    this.context?.close().catch(() => {});
    this.context = null;
  }

  #stopTimer() {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  #measure() {
    for (const entry of this.watched.values()) {
      entry.analyser.getFloatTimeDomainData(this.samples);
      let sum = 0;
      for (const sample of this.samples) sum += sample * sample;
      const rms = Math.sqrt(sum / this.samples.length);
      const loud = rms > 0 && 20 * Math.log10(rms) > SPEAKING_DB;
      entry.quiet = loud ? 0 : entry.quiet + 1;
      const speaking = loud || (entry.speaking && entry.quiet < HANGOVER_READINGS);
      if (speaking !== entry.speaking) {
        entry.speaking = speaking;
        this.onChange(entry.participantId, speaking);
      }
    }
  }
}
