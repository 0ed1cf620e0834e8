// @ts-check
/**
 * Camera and microphone: open them with a fallback ladder (both, microphone only, camera only,
 * receive only), name why a step failed, pick the next camera, list the devices, measure the
 * microphone level.
 */

/**
 * What this participant sends, as the ladder settled it.
 * @typedef {"camera_and_microphone"|"microphone_only"|"camera_only"|"receive_only"} MediaMode
 */
/**
 * Why the browser refused a device: "media_insecure" (the page is not a secure context, no
 * https), "media_denied" (the user or a policy blocked it), "media_busy" (another app holds
 * it), "media_missing" (no such device), "media_unavailable" (anything else).
 * @typedef {"media_insecure"|"media_denied"|"media_busy"|"media_missing"|"media_unavailable"} MediaProblem
 */
/**
 * The ladder's outcome: the stream (null when receiving only), the mode, and why the first
 * step failed (null when it did not).
 * @typedef {{stream: MediaStream|null, mode: MediaMode, problem: MediaProblem|null}} LocalMedia
 */
/** @typedef {(constraints: MediaStreamConstraints) => Promise<MediaStream>} GetUserMedia */

/** @type {Record<string, MediaProblem>} getUserMedia's error names (old Chromium ones too) */
const PROBLEMS = {
  NotAllowedError: "media_denied",
  PermissionDeniedError: "media_denied",
  SecurityError: "media_denied",
  NotReadableError: "media_busy",
  TrackStartError: "media_busy",
  AbortError: "media_busy",
  NotFoundError: "media_missing",
  DevicesNotFoundError: "media_missing",
  OverconstrainedError: "media_missing",
};

/**
 * Why a getUserMedia call failed, in the page's words.
 * @param {unknown} err what getUserMedia threw
 * @returns {MediaProblem}
 */
export function mediaProblemOf(err) {
  const name = /** @type {{name?: string}|null|undefined} */ (err)?.name ?? "";
  return PROBLEMS[name] ?? "media_unavailable";
}

/**
 * Open what can be opened, one rung at a time: camera and microphone, else the microphone
 * alone, else the camera alone, else nothing (the participant still receives everyone).
 * @param {GetUserMedia|null} getUserMedia the browser's, bound; null where there is none
 * @param {{audio: boolean|MediaTrackConstraints, video: boolean|MediaTrackConstraints}} wanted
 * @param {boolean} secure whether the page is a secure context (getUserMedia needs https)
 * @returns {Promise<LocalMedia>}
 */
export async function openWithFallback(getUserMedia, { audio, video }, secure) {
  if (!secure || !getUserMedia) {
    return { stream: null, mode: "receive_only", problem: secure ? "media_unavailable" : "media_insecure" };
  }
  /** @type {Array<[MediaMode, MediaStreamConstraints]>} */
  const ladder = [
    ["camera_and_microphone", { audio, video }],
    ["microphone_only", { audio }],
    ["camera_only", { video }],
  ];
  /** @type {MediaProblem|null} */
  let problem = null;
  for (const [mode, constraints] of ladder) {
    try {
      return { stream: await getUserMedia(constraints), mode, problem };
    } catch (err) {
      problem ??= mediaProblemOf(err);
    }
  }
  return { stream: null, mode: "receive_only", problem };
}

/**
 * Open the microphone and camera (the chosen devices when given) with the fallback ladder.
 * @param {{cameraId?: string, microphoneId?: string}} [choice] deviceIds from `listDevices`
 * @returns {Promise<LocalMedia>}
 */
export function openLocalMedia({ cameraId, microphoneId } = {}) {
  const getUserMedia = navigator.mediaDevices?.getUserMedia
    ? (/** @type {MediaStreamConstraints} */ c) => navigator.mediaDevices.getUserMedia(c)
    : null;
  return openWithFallback(
    getUserMedia,
    {
      audio: microphoneId ? { deviceId: { exact: microphoneId } } : true,
      video: cameraId ? { deviceId: { exact: cameraId } } : true,
    },
    window.isSecureContext,
  );
}

/**
 * The constraints that open the camera after the one in use: the next camera in the list
 * when there are several, else the other side (front ↔ back) by `facingMode`.
 * @param {Array<{deviceId: string}>} cameras the videoinput devices, in the browser's order
 * @param {{deviceId?: string, facingMode?: string}} current the settings of the camera in use
 * @returns {MediaTrackConstraints}
 */
export function nextCameraConstraints(cameras, current) {
  if (cameras.length > 1) {
    const index = cameras.findIndex((camera) => camera.deviceId === current.deviceId);
    return { deviceId: { exact: cameras[(index + 1) % cameras.length].deviceId } };
  }
  return { facingMode: { exact: current.facingMode === "environment" ? "user" : "environment" } };
}

/**
 * Open one new track of `kind` (to replace an ended one, or to switch cameras).
 * @param {"audio"|"video"} kind
 * @param {boolean|MediaTrackConstraints} constraints
 * @returns {Promise<MediaStreamTrack>}
 * @throws {DOMException} what getUserMedia threw (see `mediaProblemOf`)
 */
export async function openTrack(kind, constraints) {
  const stream = await navigator.mediaDevices.getUserMedia({ [kind]: constraints });
  const [track] = kind === "audio" ? stream.getAudioTracks() : stream.getVideoTracks();
  return track;
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
