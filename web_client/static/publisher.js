// @ts-check
/**
 * The publisher peer connection: the client sends its microphone, camera and screen share
 * to the server. The client always offers (`publish`), the server answers; every change of
 * what is sent is a new offer, one at a time.
 */
import { browserPeerConnection, waitForIceGatheringComplete, watchConnection } from "./ice.js";

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
    /** Offers in flight, chained so that each waits for the previous answer. */
    this.queue = Promise.resolve();
  }

  /**
   * Send every track of `stream` (microphone first, then camera), each on a send-only
   * transceiver, and complete the offer/answer with the server. The offer names the source
   * of each media section (`sources`, mid → "microphone" | "camera").
   * @param {MediaStream} stream the local media
   * @returns {Promise<void>}
   * @throws {import("./signaling.js").SignalingError} when the server refuses the offer
   */
  async publish(stream) {
    for (const track of [...stream.getAudioTracks(), ...stream.getVideoTracks()]) {
      const transceiver = this.pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
      this.sources.set(transceiver, track.kind === "audio" ? "microphone" : "camera");
    }
    await this.#negotiate();
  }

  /**
   * Send `track` instead of the current microphone or camera track, on the same sender:
   * no new offer, so the others' receivers go on without a renegotiation.
   * @param {"microphone"|"camera"} source
   * @param {MediaStreamTrack} track a new track of the same kind
   * @returns {Promise<boolean>} false when nothing of that source is published yet
   */
  async replaceTrack(source, track) {
    for (const [transceiver, published] of this.sources) {
      if (published === source) {
        await transceiver.sender.replaceTrack(track);
        return true;
      }
    }
    return false;
  }

  /**
   * Send a screen share on its own send-only video transceiver (reused after a stop).
   * @param {MediaStreamTrack} track the captured screen
   * @returns {Promise<void>}
   * @throws {import("./signaling.js").SignalingError} when the server refuses the offer
   */
  async shareScreen(track) {
    const screen = this.#screenTransceiver();
    if (screen) {
      await screen.sender.replaceTrack(track);
      screen.direction = "sendonly";
    } else {
      this.sources.set(this.pc.addTransceiver(track, { direction: "sendonly" }), "screen");
    }
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
    for (const [transceiver, source] of this.sources) {
      if (transceiver.mid !== null) sources[transceiver.mid] = source;
    }
    await waitForIceGatheringComplete(this.pc);
    /** @type {{sdp: string|undefined, type: "offer", sources: typeof sources, restart?: true}} */
    const offer = { sdp: this.pc.localDescription?.sdp, type: "offer", sources };
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
