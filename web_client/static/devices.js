// @ts-check
/** Camera and microphone: open them, list them, measure the microphone level. */

/** A media error with a code the page can translate ("media_denied", "media_unavailable"). */
export class MediaError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = "MediaError";
    this.code = code;
  }
}

/**
 * Open the microphone and camera (the chosen devices when given). Falls back to the
 * microphone alone, then the camera alone, when one of them is missing or busy.
 * @param {{cameraId?: string, microphoneId?: string}} [choice] deviceIds from `listDevices`
 * @returns {Promise<MediaStream>}
 * @throws {MediaError} "media_denied" when the user or a policy blocked access,
 *   "media_unavailable" when no device could be opened
 */
export async function openLocalMedia({ cameraId, microphoneId } = {}) {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new MediaError("media_unavailable", "getUserMedia is not available (insecure origin?)");
  }
  const audio = microphoneId ? { deviceId: { exact: microphoneId } } : true;
  const video = cameraId ? { deviceId: { exact: cameraId } } : true;
  /** @type {Error|null} */
  let lastError = null;
  for (const constraints of [{ audio, video }, { audio }, { video }]) {
    try {
      return await navigator.mediaDevices.getUserMedia(constraints);
    } catch (caught) {
      const err = /** @type {Error} */ (caught);
      if (err.name === "NotAllowedError" || err.name === "SecurityError") {
        throw new MediaError("media_denied", err.message);
      }
      lastError = err;
    }
  }
  throw new MediaError("media_unavailable", lastError?.message ?? "no device");
}

/**
 * The cameras and microphones the browser knows. Labels are empty until media access
 * has been granted once, so call this after `openLocalMedia`.
 * @returns {Promise<{cameras: MediaDeviceInfo[], microphones: MediaDeviceInfo[]}>}
 */
export async function listDevices() {
  const devices = navigator.mediaDevices?.enumerateDevices
    ? await navigator.mediaDevices.enumerateDevices()
    : [];
  return {
    cameras: devices.filter((d) => d.kind === "videoinput"),
    microphones: devices.filter((d) => d.kind === "audioinput"),
  };
}

/**
 * Stop every track of `stream` (turns the camera light off).
 * @param {MediaStream|null} stream
 */
export function stopStream(stream) {
  for (const track of stream?.getTracks() ?? []) track.stop();
}

/**
 * Measure the level of the first audio track of `stream` with a Web Audio AnalyserNode
 * and call `onLevel(level)` about ten times a second, `level` from 0 to 100
 * (−60 dBFS … 0 dBFS). Browsers start an AudioContext suspended until the user interacts
 * with the page; it is resumed on the first click or key press.
 * @param {MediaStream} stream
 * @param {(level: number) => void} onLevel
 * @returns {() => void} stops measuring and releases the audio context
 */
export function startLevelMeter(stream, onLevel) {
  const [track] = stream.getAudioTracks();
  if (!track || typeof AudioContext === "undefined") {
    onLevel(0);
    return () => {};
  }
  const context = new AudioContext();
  const source = context.createMediaStreamSource(new MediaStream([track]));
  const analyser = context.createAnalyser();
  analyser.fftSize = 1024;
  // Not connected to the destination: measuring must not play the microphone back.
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);

  const resume = () => context.resume().catch(() => {});
  resume();
  document.addEventListener("pointerdown", resume, { once: true });
  document.addEventListener("keydown", resume, { once: true });

  const timer = setInterval(() => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const sample of samples) sum += sample * sample;
    const rms = Math.sqrt(sum / samples.length);
    const db = rms > 0 ? 20 * Math.log10(rms) : -Infinity;
    onLevel(Math.round(Math.min(100, Math.max(0, ((db + 60) / 60) * 100))));
  }, 100);

  return () => {
    clearInterval(timer);
    document.removeEventListener("pointerdown", resume);
    document.removeEventListener("keydown", resume);
    source.disconnect();
    context.close().catch(() => {});
  };
}
