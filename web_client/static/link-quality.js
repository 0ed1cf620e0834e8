// @ts-check
/**
 * What the server says about weak links (docs/protocol.md, "Weak links"): each participant's
 * connection quality (`link_quality`), and whether this participant receives audio only
 * (`receive_mode`). Reads the events' payloads and says what a tile shows; touches no DOM.
 */

/** @typedef {"good"|"fair"|"poor"} Quality */
/**
 * What this participant receives: `audioOnly` with the server's reason, "weak_connection"
 * (its link cannot carry video) or "chosen" (it asked for audio only).
 * @typedef {{audioOnly: boolean, reason: "weak_connection"|"chosen"|null}} ReceiveMode
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
export const FULL_RECEIVE = Object.freeze(/** @type {ReceiveMode} */ ({ audioOnly: false, reason: null }));

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
 * The receive mode of a `receive_mode` payload; null when it is malformed.
 * @param {unknown} payload `{"audio_only": bool, "reason": "weak_connection"|"chosen"|null}`
 * @returns {ReceiveMode|null}
 */
export function parseReceiveMode(payload) {
  const { audio_only: audioOnly, reason } = /** @type {{audio_only?: unknown, reason?: unknown}} */ (payload ?? {});
  if (typeof audioOnly !== "boolean") return null;
  if (!audioOnly) return FULL_RECEIVE;
  const known = typeof reason === "string" && REASONS.has(reason);
  // An audio-only mode without a known reason is the link's doing: say the least alarming true thing.
  return { audioOnly, reason: known ? /** @type {ReceiveMode["reason"]} */ (reason) : "weak_connection" };
}

/**
 * Why a tile shows no picture, if it shows none because of a weak link or audio only.
 * @param {"local"|"camera"|"screen"} kind the tile's
 * @param {{receiveMode: ReceiveMode, audioOnly: boolean}} own what this participant receives,
 *   and whether it chose audio only (it then sends no camera either)
 * @returns {VideoPause|null}
 */
export function videoPauseOf(kind, own) {
  if (kind === "local") return own.audioOnly ? "audio_only" : null;
  if (own.receiveMode.audioOnly) return own.receiveMode.reason === "chosen" ? "audio_only" : "weak_connection";
  return own.audioOnly ? "audio_only" : null;
}
