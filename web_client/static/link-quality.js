// @ts-check
/**
 * What the server says about weak links (docs/protocol.md, "Weak links"): each participant's
 * connection quality (`link_quality`), and whether this participant receives audio only, or
 * which videos are paused for its link (`receive_mode`). Reads the events' payloads and says
 * what a tile shows; touches no DOM.
 */

/** @typedef {"good"|"fair"|"poor"} Quality */
/**
 * A video the server does not forward to this participant because its link cannot carry it
 * even at its lowest layer, while the others' still come; or, on audio only, a voice its link
 * cannot carry beside those of the latest speakers (source "microphone").
 * @typedef {{participantId: string, source: "camera"|"screen"|"microphone"}} PausedSource
 */
/**
 * What this participant receives: `audioOnly` with the server's reason, "weak_connection"
 * (its link cannot carry video) or "chosen" (it asked for audio only); otherwise the videos
 * `paused` for its link; on audio only, the voices paused for it.
 * @typedef {{audioOnly: boolean, reason: "weak_connection"|"chosen"|null, paused: readonly PausedSource[]}} ReceiveMode
 */
/**
 * Why a tile shows no picture: "weak_connection" (this participant's own link), "audio_only"
 * (this participant chose audio only). Another participant's choice of audio only reaches us
 * as their camera muted (`participant_updated`): their tile says "Camera is off".
 * @typedef {"weak_connection"|"audio_only"} VideoPause
 */

/** @type {ReadonlySet<string>} */
const QUALITIES = new Set(["good", "fair", "poor"]);
/** @type {ReadonlySet<string>} */
const REASONS = new Set(["weak_connection", "chosen"]);

/** Receiving everything: before the server says otherwise. */
export const FULL_RECEIVE = Object.freeze(/** @type {ReceiveMode} */ ({ audioOnly: false, reason: null, paused: Object.freeze([]) }));

/** @type {ReadonlySet<string>} */
const PAUSABLE = new Set(["camera", "screen", "microphone"]);

/**
 * The qualities of a `link_quality` payload, by participant id; entries that are not one of
 * the three qualities are left out (a newer server's, or a broken one's).
 * @param {unknown} payload `{"participants": {"<id>": {"quality": "good"|"fair"|"poor"}}}`
 * @returns {Map<string, Quality>}
 */
export function parseLinkQuality(payload) {
  /** @type {Map<string, Quality>} */
  const qualities = new Map();
  const participants = /** @type {{participants?: unknown}|null} */ (payload)?.participants;
  if (!participants || typeof participants !== "object") return qualities;
  for (const [id, entry] of Object.entries(participants)) {
    const quality = /** @type {{quality?: unknown}|null} */ (entry)?.quality;
    if (typeof quality === "string" && QUALITIES.has(quality)) qualities.set(id, /** @type {Quality} */ (quality));
  }
  return qualities;
}

/**
 * The receive mode of a `receive_mode` payload; null when it is malformed. Entries of
 * `paused` that name no participant's camera, screen or microphone are left out.
 * @param {unknown} payload `{"audio_only": bool, "reason": "weak_connection"|"chosen"|null,
 *   "paused": [{"participant_id": str, "source": "camera"|"screen"|"microphone", "reason": "weak_connection"}]}`
 * @returns {ReceiveMode|null}
 */
export function parseReceiveMode(payload) {
  const { audio_only: audioOnly, reason, paused } = /** @type {{audio_only?: unknown, reason?: unknown, paused?: unknown}} */ (payload ?? {});
  if (typeof audioOnly !== "boolean") return null;
  if (!audioOnly) {
    const videos = pausedSources(paused).filter((entry) => entry.source !== "microphone");
    return videos.length ? { audioOnly, reason: null, paused: videos } : FULL_RECEIVE;
  }
  const known = typeof reason === "string" && REASONS.has(reason);
  // An audio-only mode without a known reason is the link's doing: say the least alarming true thing.
  const voices = pausedSources(paused).filter((entry) => entry.source === "microphone");
  return { audioOnly, reason: known ? /** @type {ReceiveMode["reason"]} */ (reason) : "weak_connection", paused: voices };
}

/**
 * @param {unknown} entries a `receive_mode` payload's `paused`
 * @returns {PausedSource[]}
 */
function pausedSources(entries) {
  if (!Array.isArray(entries)) return [];
  /** @type {PausedSource[]} */
  const videos = [];
  for (const entry of entries) {
    const { participant_id: participantId, source } = /** @type {{participant_id?: unknown, source?: unknown}} */ (entry ?? {});
    if (typeof participantId === "string" && typeof source === "string" && PAUSABLE.has(source)) {
      videos.push({ participantId, source: /** @type {PausedSource["source"]} */ (source) });
    }
  }
  return videos;
}

/**
 * Why a tile shows no picture, if it shows none because of a weak link or audio only.
 * @param {"local"|"camera"|"screen"} kind the tile's
 * @param {{receiveMode: ReceiveMode, audioOnly: boolean}} own what this participant receives,
 *   and whether it chose audio only (it then sends no camera either)
 * @param {string|null} [participantId] whose video the tile shows (a remote tile's)
 * @returns {VideoPause|null}
 */
export function videoPauseOf(kind, own, participantId = null) {
  if (kind === "local") return own.audioOnly ? "audio_only" : null;
  if (own.receiveMode.audioOnly) return own.receiveMode.reason === "chosen" ? "audio_only" : "weak_connection";
  if (own.audioOnly) return "audio_only";
  const paused = own.receiveMode.paused.some((video) => video.participantId === participantId && video.source === kind);
  return paused ? "weak_connection" : null;
}

/**
 * Whether a tile's voice is not forwarded to this participant, whose link is too weak for it
 * beside the latest speakers'.
 * @param {"local"|"camera"|"screen"} kind the tile's
 * @param {{receiveMode: ReceiveMode}} own what this participant receives
 * @param {string|null} [participantId] whose tile it is (a remote tile's)
 * @returns {boolean}
 */
export function voicePausedOf(kind, own, participantId = null) {
  return kind === "camera" && own.receiveMode.paused.some((entry) => entry.participantId === participantId && entry.source === "microphone");
}
