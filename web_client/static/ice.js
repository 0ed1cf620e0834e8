// @ts-check
/** ICE helpers shared by the publisher and the subscriber connections. */

const GATHERING_TIMEOUT_MS = 3000;

/**
 * Makes the peer connections: the browser's `RTCPeerConnection`, a fake one in the unit tests.
 * @typedef {(config: RTCConfiguration) => RTCPeerConnection} PeerConnectionFactory
 */

/** @type {PeerConnectionFactory} */
export const browserPeerConnection = (config) => new RTCPeerConnection(config);

/**
 * Resolve once `pc` has gathered all its ICE candidates, so that its local description
 * carries them (the server does not rely on trickle ICE). Gathering on loopback takes
 * about 150 ms; after `timeoutMs` we go on with the candidates found so far rather than hang
 * on an unreachable STUN/TURN server.
 * @param {RTCPeerConnection} pc
 * @param {number} [timeoutMs]
 * @returns {Promise<void>}
 */
export function waitForIceGatheringComplete(pc, timeoutMs = GATHERING_TIMEOUT_MS) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", onChange);
      resolve();
    };
    const onChange = () => {
      if (pc.iceGatheringState === "complete") finish();
    };
    const timer = setTimeout(finish, timeoutMs);
    pc.addEventListener("icegatheringstatechange", onChange);
  });
}
