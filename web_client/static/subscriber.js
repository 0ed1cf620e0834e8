// @ts-check
/**
 * The subscriber peer connection: the server sends everyone else's tracks.
 * The server always offers (`subscriber_offer`), the client answers (`subscriber_answer`);
 * offers are applied one at a time, in the order they arrive.
 */
import { SignalingError } from "./signaling-error.js";
import { browserPeerConnection, waitForIceGatheringComplete, watchConnection } from "./ice.js";

/**
 * Where a received track belongs.
 * @typedef {{mid: string, participantId: string, source: "camera"|"microphone"|"screen",
 *            track: MediaStreamTrack}} Placement
 */

/**
 * A `subscriber_offer`: the SDP, and which participant's source each mid carries.
 * @typedef {{sdp: string, type: "offer",
 *            tracks?: Record<string, {participant_id: string, source: Placement["source"]}>}} SubscriberOffer
 */

/** The connection that carries the other participants' media from the server. */
export class Subscriber {
  /**
   * @param {Pick<import("./signaling.js").Signaling, "request">} signaling
   * @param {RTCConfiguration} rtcConfig ICE servers and transport policy from the `join` result
   * @param {{onPlace: (p: Placement) => void, onRemove: (p: Placement) => void,
   *          onError: (err: Error & {code?: string}) => void, onFailed: () => void}} handlers
   *   `onPlace`/`onRemove` put a track into / take it out of a participant's tile;
   *   `onError` reports an offer that could not be answered; `onFailed` a lost connection
   *   (failed, or disconnected for a few seconds; see ice.js `watchConnection`).
   * @param {import("./ice.js").PeerConnectionFactory} [createPeerConnection]
   */
  constructor(signaling, rtcConfig, handlers, createPeerConnection = browserPeerConnection) {
    this.signaling = signaling;
    this.rtcConfig = rtcConfig;
    this.handlers = handlers;
    this.createPeerConnection = createPeerConnection;
    /** @type {RTCPeerConnection|null} created on the first offer */
    this.pc = null;
    /** @type {NonNullable<SubscriberOffer["tracks"]>} the offer applied last's: mid → {participant_id, source} */
    this.tracks = {};
    /** @type {Map<string, Placement>} the tracks currently shown, by mid */
    this.placements = new Map();
    this.queue = Promise.resolve();
    this.closed = false;
    this.stopWatching = () => {};
  }

  /**
   * Queue a `subscriber_offer` from the server; it is answered after the previous ones.
   * @param {SubscriberOffer} offer
   * @returns {Promise<void>} settles when this offer has been handled (errors go to `onError`)
   */
  handleOffer(offer) {
    this.queue = this.queue.then(() => this.#apply(offer)).catch((err) => {
      if (!this.closed) this.handlers.onError(err);
    });
    return this.queue;
  }

  /**
   * Close the connection and forget what it showed.
   * @param {{removeTracks?: boolean}} [options] `removeTracks`: take every shown track out of
   *   its tile (`onRemove`), as when a new connection is about to replace them
   */
  close({ removeTracks = false } = {}) {
    this.closed = true;
    this.stopWatching();
    this.pc?.close();
    if (removeTracks) for (const placement of this.placements.values()) this.handlers.onRemove(placement);
    this.placements.clear();
  }

  /** @param {SubscriberOffer} offer */
  async #apply(offer) {
    if (this.closed) return;
    const pc = (this.pc ??= this.#createPeerConnection());
    this.tracks = offer.tracks ?? {};
    try {
      await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
      this.#reconcile(pc);
      await pc.setLocalDescription(await pc.createAnswer());
    } catch (err) {
      if (this.closed) return;
      throw new SignalingError("invalid_sdp", err instanceof Error ? err.message : String(err));
    }
    await waitForIceGatheringComplete(pc);
    if (this.closed) return;
    await this.signaling.request("subscriber_answer", {
      sdp: pc.localDescription?.sdp,
      type: "answer",
    });
  }

  /** @returns {RTCPeerConnection} */
  #createPeerConnection() {
    const pc = this.createPeerConnection(this.rtcConfig);
    pc.addEventListener("track", (event) => {
      this.#place(event.transceiver.mid, event.track);
    });
    this.stopWatching = watchConnection(pc, () => {
      if (!this.closed) this.handlers.onFailed();
    });
    return pc;
  }

  /**
   * Bring the shown tracks in line with the latest `tracks` map: drop the mids it no
   * longer names, and place the ones it names (a reused mid keeps its receiver's track
   * but may now belong to someone else, and may not fire `track` again).
   * @param {RTCPeerConnection} pc
   */
  #reconcile(pc) {
    for (const [mid, placement] of this.placements) {
      if (!(mid in this.tracks)) {
        this.placements.delete(mid);
        this.handlers.onRemove(placement);
      }
    }
    for (const transceiver of pc.getTransceivers()) {
      if (transceiver.mid !== null && transceiver.mid in this.tracks) {
        this.#place(transceiver.mid, transceiver.receiver.track);
      }
    }
  }

  /**
   * @param {string|null} mid
   * @param {MediaStreamTrack} track
   */
  #place(mid, track) {
    if (mid === null) return;
    const info = this.tracks[mid];
    if (!info) return;
    const previous = this.placements.get(mid);
    if (
      previous &&
      previous.track === track &&
      previous.participantId === info.participant_id &&
      previous.source === info.source
    ) {
      return;
    }
    if (previous) this.handlers.onRemove(previous);
    const placement = { mid, participantId: info.participant_id, source: info.source, track };
    this.placements.set(mid, placement);
    this.handlers.onPlace(placement);
  }
}
