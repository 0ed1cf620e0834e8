/**
 * The publisher peer connection: the client sends its microphone and camera to the server.
 * The client always offers (`publish`), the server answers.
 */
import { waitForIceGatheringComplete } from "./ice.js";

/** The connection that carries this participant's own media to the server. */
export class Publisher {
  /**
   * @param {import("./signaling.js").Signaling} signaling
   * @param {RTCIceServer[]} iceServers from the `join` result
   * @param {{onFailed: () => void}} handlers called when the connection to the server fails
   */
  constructor(signaling, iceServers, { onFailed }) {
    this.signaling = signaling;
    /** @type {RTCPeerConnection} */
    this.pc = new RTCPeerConnection({ iceServers });
    this.pc.addEventListener("connectionstatechange", () => {
      if (this.pc.connectionState === "failed") onFailed();
    });
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
    const sent = [];
    for (const track of [...stream.getAudioTracks(), ...stream.getVideoTracks()]) {
      const transceiver = this.pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
      sent.push([transceiver, track.kind === "audio" ? "microphone" : "camera"]);
    }
    await this.pc.setLocalDescription(await this.pc.createOffer());
    // mids are known once the offer is set locally.
    const sources = Object.fromEntries(sent.map(([transceiver, source]) => [transceiver.mid, source]));
    await waitForIceGatheringComplete(this.pc);
    const answer = await this.signaling.request("publish", {
      sdp: this.pc.localDescription.sdp,
      type: "offer",
      sources,
    });
    if (this.pc.signalingState === "closed") return;
    await this.pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  }

  /** Close the connection. The local tracks are the caller's to stop. */
  close() {
    this.pc.close();
  }
}
