// @ts-check
/**
 * The publisher peer connection: the client sends its microphone, camera and screen share
 * to the server. The client always offers (`publish`), the server answers; every change of
 * what is sent is a new offer, one at a time.
 */
import { browserPeerConnection, waitForIceGatheringComplete, watchConnection } from "./ice.js";

/**
 * How the camera is encoded: three temporal layers (L1T3: one resolution, frames of layers
 * 0, 2, 1, 2, …), so that the server can forward a third or half of the frame rate to a
 * subscriber on a weak link without decoding; capped so that one sender leaves room for the
 * others on an uplink the server shares out.
 * @type {Array<RTCRtpEncodingParameters & {scalabilityMode?: string}>} (webrtc-svc's field,
 *   not yet in TypeScript's DOM types)
 */
export const CAMERA_ENCODINGS = [{ scalabilityMode: "L1T3", maxBitrate: 1_000_000 }];

/**
 * The camera's low layer: the same camera on a second sender, at a quarter of its size (160x120
 * from 640x480) and at most 80 kbit/s, which the server forwards instead of the full camera to
 * a subscriber whose link cannot take that (aiortc receives no RID simulcast on one section, so
 * each layer has its own). With temporal layers too, so that a link that cannot take it whole
 * takes its base, 7.5 frames a second at about 40 % of its rate. No `maxFramerate`: both
 * senders share the camera's track, and Chromium runs a track at the lowest frame rate any of
 * its senders asks for, so a 15 fps low layer would halve the full camera's rate too.
 * @type {Array<RTCRtpEncodingParameters & {scalabilityMode?: string}>}
 */
export const LOW_LAYER_ENCODINGS = [{ scalabilityMode: "L1T3", scaleResolutionDownBy: 4, maxBitrate: 80_000 }];

/** The connection that carries this participant's own media to the server. */
export class Publisher {
  /**
   * @param {Pick<import("./signaling.js").Signaling, "request">} signaling
   * @param {RTCConfiguration} rtcConfig ICE servers and transport policy from the `join` result
   * @param {{onFailed: () => void}} handlers `onFailed`: the connection to the server is lost
   *   (failed, or disconnected for a few seconds; see ice.js `watchConnection`)
   * @param {import("./ice.js").PeerConnectionFactory} [createPeerConnection]
   * @param {{restart?: boolean}} [options] `restart`: this connection replaces a lost one of
   *   the same participant; its first offer asks the server to replace its side too
   */
  constructor(signaling, rtcConfig, { onFailed }, createPeerConnection = browserPeerConnection, { restart = false } = {}) {
    this.signaling = signaling;
    /** @type {RTCPeerConnection} */
    this.pc = createPeerConnection(rtcConfig);
    this.stopWatching = watchConnection(this.pc, onFailed);
    /** Whether the next offer still has to ask the server to replace the old connections. */
    this.restart = restart;
    /** @type {Map<RTCRtpTransceiver, "microphone"|"camera"|"screen">} what each one carries */
    this.sources = new Map();
    /** @type {Set<RTCRtpTransceiver>} the ones that carry a camera's low layer */
    this.lowLayers = new Set();
    /** Offers in flight, chained so that each waits for the previous answer. */
    this.queue = Promise.resolve();
  }

  /**
   * Send every track of `stream` (microphone first, then camera and its low layer), each on a
   * send-only transceiver, and complete the offer/answer with the server. The offer names the
   * source of each media section (`sources`, mid → "microphone" | "camera") and the one that
   * carries the camera's low layer (`layers`, mid → "low").
   * @param {MediaStream} stream the local media
   * @returns {Promise<void>}
   * @throws {import("./signaling.js").SignalingError} when the server refuses the offer
   */
  async publish(stream) {
    for (const track of stream.getAudioTracks()) {
      this.sources.set(this.pc.addTransceiver(track, { direction: "sendonly", streams: [stream] }), "microphone");
    }
    for (const track of stream.getVideoTracks()) {
      this.sources.set(this.#addLayered(track, stream, CAMERA_ENCODINGS), "camera");
      const low = this.#addLayered(track, stream, LOW_LAYER_ENCODINGS);
      this.sources.set(low, "camera");
      this.lowLayers.add(low);
    }
    await this.#negotiate();
  }

  /**
   * A send-only transceiver for the camera with temporal layers (CAMERA_ENCODINGS, or the low
   * layer's); a browser that refuses the scalability mode sends one layer, capped all the same.
   * @param {MediaStreamTrack} track
   * @param {MediaStream} stream
   * @param {Array<RTCRtpEncodingParameters & {scalabilityMode?: string}>} encodings
   * @returns {RTCRtpTransceiver}
   */
  #addLayered(track, stream, encodings) {
    try {
      return this.pc.addTransceiver(track, { direction: "sendonly", streams: [stream], sendEncodings: encodings });
    } catch {
      const sendEncodings = encodings.map(({ scalabilityMode, ...rest }) => rest);
      return this.pc.addTransceiver(track, { direction: "sendonly", streams: [stream], sendEncodings });
    }
  }

  /**
   * Send `track` instead of the current microphone or camera track, on the same senders (a
   * camera's low layer too): no new offer, so the others' receivers go on without a
   * renegotiation. `null` sends nothing (audio only) until a track is given again.
   * @param {"microphone"|"camera"} source
   * @param {MediaStreamTrack|null} track a new track of the same kind, or none
   * @returns {Promise<boolean>} false when nothing of that source is published yet
   */
  async replaceTrack(source, track) {
    let found = false;
    for (const [transceiver, published] of this.sources) {
      if (published === source) {
        await transceiver.sender.replaceTrack(track);
        found = true;
      }
    }
    return found;
  }

  /**
   * Send a screen share on its own send-only video transceiver (reused after a stop).
   * @param {MediaStreamTrack} track the captured screen
   * @returns {Promise<void>}
   * @throws {import("./signaling.js").SignalingError} when the server refuses the offer
   */
  async shareScreen(track) {
    let screen = this.#screenTransceiver();
    if (screen) {
      await screen.sender.replaceTrack(track);
      screen.direction = "sendonly";
    } else {
      screen = this.pc.addTransceiver(track, { direction: "sendonly" });
      this.sources.set(screen, "screen");
    }
    await preferResolution(screen.sender);
    await this.#negotiate();
  }

  /**
   * Stop sending the screen share: its transceiver goes inactive (kept for the next share).
   * @returns {Promise<void>}
   */
  async stopScreen() {
    const screen = this.#screenTransceiver();
    if (!screen || this.#closed()) return;
    await screen.sender.replaceTrack(null);
    screen.direction = "inactive";
    await this.#negotiate();
  }

  #screenTransceiver() {
    for (const [transceiver, source] of this.sources) {
      // `stopped` is gone from TypeScript's DOM types, not from Chromium.
      const stopped = /** @type {RTCRtpTransceiver & {stopped?: boolean}} */ (transceiver).stopped;
      if (source === "screen" && !stopped) return transceiver;
    }
    return null;
  }

  /**
   * Queue an offer/answer exchange after the ones in flight; settles when this one did.
   * @returns {Promise<void>}
   */
  #negotiate() {
    const run = this.queue.then(() => this.#exchange());
    this.queue = run.catch(() => {});
    return run;
  }

  /** Whether the connection was closed (a call, so that checks after an await are not narrowed away). */
  #closed() {
    return this.pc.signalingState === "closed";
  }

  async #exchange() {
    if (this.#closed()) return;
    await this.pc.setLocalDescription(await this.pc.createOffer());
    // mids are known once the offer is set locally.
    /** @type {Record<string, "microphone"|"camera"|"screen">} */
    const sources = {};
    /** @type {Record<string, "low">} */
    const layers = {};
    for (const [transceiver, source] of this.sources) {
      if (transceiver.mid === null) continue;
      sources[transceiver.mid] = source;
      if (this.lowLayers.has(transceiver)) layers[transceiver.mid] = "low";
    }
    await waitForIceGatheringComplete(this.pc);
    /** @type {{sdp: string|undefined, type: "offer", sources: typeof sources, layers: typeof layers, restart?: true}} */
    const offer = { sdp: this.pc.localDescription?.sdp, type: "offer", sources, layers };
    if (this.restart) offer.restart = true;
    const answer = await this.signaling.request("publish", offer);
    this.restart = false;
    if (this.#closed()) return;
    await this.pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  }

  /** Close the connection. The local tracks are the caller's to stop. */
  close() {
    this.stopWatching();
    this.pc.close();
  }
}

/**
 * Ask the sender to keep the resolution and drop the frame rate when the link is short: a
 * shared X-ray or lab sheet must stay legible, its motion matters little. Browsers without
 * the preference send as they would anyway.
 * @param {RTCRtpSender} sender
 * @returns {Promise<void>}
 */
async function preferResolution(sender) {
  try {
    const parameters = sender.getParameters();
    await sender.setParameters({ ...parameters, degradationPreference: "maintain-resolution" });
  } catch {
    // Not supported here (or the connection closed meanwhile): the default balance applies.
  }
}
