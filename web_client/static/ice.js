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

/** How long a connection may stay `disconnected` before it counts as lost (it often recovers). */
export const DISCONNECTED_GRACE_MS = 3000;
/** How long a new connection may take to connect before it counts as lost. */
export const CONNECTING_TIMEOUT_MS = 15000;

/**
 * Call `onLost` once when `pc` has failed, stayed disconnected for `disconnectedMs`, or not
 * connected within `connectingMs` (UDP blocked, a network that changed): the caller replaces
 * the connection (aiortc has no ICE restart). Nothing is called after `pc` is closed.
 * @param {RTCPeerConnection} pc
 * @param {() => void} onLost
 * @param {{disconnectedMs?: number, connectingMs?: number}} [limits]
 * @returns {() => void} stops watching
 */
export function watchConnection(
  pc,
  onLost,
  { disconnectedMs = DISCONNECTED_GRACE_MS, connectingMs = CONNECTING_TIMEOUT_MS } = {},
) {
  /** @type {ReturnType<typeof setTimeout>|undefined} */
  let timer;
  let done = false;
  const lost = () => {
    if (done || pc.connectionState === "closed") return;
    stop();
    onLost();
  };
  const arm = (/** @type {number} */ ms) => {
    clearTimeout(timer);
    timer = setTimeout(lost, ms);
  };
  const onChange = () => {
    const connectionState = pc.connectionState;
    if (connectionState === "failed") lost();
    else if (connectionState === "disconnected") arm(disconnectedMs);
    else if (connectionState === "connected" || connectionState === "closed") clearTimeout(timer);
  };
  const stop = () => {
    done = true;
    clearTimeout(timer);
    pc.removeEventListener("connectionstatechange", onChange);
  };
  pc.addEventListener("connectionstatechange", onChange);
  if (pc.connectionState !== "connected") arm(connectingMs);
  return stop;
}
