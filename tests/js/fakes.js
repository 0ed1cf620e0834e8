// @ts-check
/**
 * Stand-ins for the browser and the server that the session engine talks to: a signaling
 * connection whose answers the test scripts, a peer connection that negotiates instantly,
 * and local media tracks.
 */

/**
 * A connection to a scripted server: each request is recorded and answered from `answers`
 * (a value, or a function of the payload; a thrown error is a refusal).
 */
export class FakeSignaling {
  /** @param {Record<string, unknown>} answers by event name */
  constructor(answers = {}) {
    this.answers = answers;
    /** @type {Array<{event: string, payload: any}>} */
    this.requests = [];
    /** @type {Map<string, Array<(payload: any) => unknown>>} */
    this.handlers = new Map();
    /** @type {(() => void)|null} */
    this.reconnectHandler = null;
    this.closed = false;
  }

  /**
   * @param {string} event
   * @param {object} [payload]
   * @returns {Promise<any>}
   */
  async request(event, payload = {}) {
    this.requests.push({ event, payload });
    const answer = this.answers[event];
    const value = typeof answer === "function" ? await answer(payload) : answer;
    return value ?? { ok: true };
  }

  /**
   * @param {string} event
   * @param {(payload: any) => unknown} handler
   */
  on(event, handler) {
    const list = this.handlers.get(event) ?? [];
    list.push(handler);
    this.handlers.set(event, list);
  }

  /** @param {() => void} handler */
  onReconnect(handler) {
    this.reconnectHandler = handler;
  }

  close() {
    this.closed = true;
  }

  /**
   * The server sends an event; resolves once every handler has run.
   * @param {string} event
   * @param {unknown} [payload]
   */
  async send(event, payload) {
    await Promise.all((this.handlers.get(event) ?? []).map((handler) => handler(payload)));
    await settle();
  }

  /**
   * The payloads of the requests sent for `event`.
   * @param {string} event
   */
  sent(event) {
    return this.requests.filter((r) => r.event === event).map((r) => r.payload);
  }
}

/**
 * Let every pending promise callback run (the engine's negotiation is a chain of them).
 * @returns {Promise<void>}
 */
export function settle() {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A local or remote media track. */
export class FakeTrack {
  /** @param {"audio"|"video"} kind */
  constructor(kind) {
    this.kind = kind;
    this.enabled = true;
    this.readyState = "live";
  }

  stop() {
    this.readyState = "ended";
  }
}

/**
 * A MediaStream of the given tracks.
 * @param {FakeTrack[]} tracks
 * @returns {MediaStream}
 */
export function fakeStream(tracks) {
  const stream = {
    getTracks: () => [...tracks],
    getAudioTracks: () => tracks.filter((t) => t.kind === "audio"),
    getVideoTracks: () => tracks.filter((t) => t.kind === "video"),
  };
  return /** @type {MediaStream} */ (/** @type {unknown} */ (stream));
}

/** The sending half of a transceiver: its track and its encoding parameters. */
export class FakeSender {
  /**
   * @param {FakeTrack|null} track
   * @param {object[]} [encodings] as given to addTransceiver
   */
  constructor(track, encodings = [{}]) {
    this.track = track;
    /** @type {{encodings: object[], degradationPreference?: string}} what getParameters gives */
    this.parameters = { encodings: encodings.map((encoding) => ({ ...encoding })) };
  }

  /** @param {FakeTrack|null} next */
  async replaceTrack(next) {
    this.track = next;
  }

  getParameters() {
    return structuredClone(this.parameters);
  }

  /** @param {{encodings: object[], degradationPreference?: string}} parameters */
  async setParameters(parameters) {
    this.parameters = structuredClone(parameters);
  }
}

/**
 * A peer connection that negotiates at once. Offers it receives are written `mids:0,1,…`
 * (the media sections they carry); its ICE gathering is always complete.
 */
export class FakePeerConnection extends EventTarget {
  /** @type {FakePeerConnection[]} every one created, oldest first */
  static created = [];
  /** Scalability modes this browser's encoders take (addTransceiver throws on another one). */
  static scalabilityModes = ["L1T3"];

  /** @param {RTCConfiguration} config */
  constructor(config) {
    super();
    this.config = config;
    /** @type {RTCSignalingState} */
    this.signalingState = "stable";
    /** @type {RTCIceGatheringState} */
    this.iceGatheringState = "complete";
    /** @type {RTCPeerConnectionState} ICE connects at once, like the negotiation */
    this.connectionState = "connected";
    /** @type {RTCSessionDescriptionInit|null} */
    this.localDescription = null;
    /** @type {RTCSessionDescriptionInit|null} */
    this.remoteDescription = null;
    /** @type {Array<{mid: string|null, direction: string, sender: FakeSender,
     *   receiver: {track: FakeTrack}, kind: string}>} */
    this.transceivers = [];
    FakePeerConnection.created.push(this);
  }

  /** @type {import("../../web_client/static/ice.js").PeerConnectionFactory} */
  static factory = (config) =>
    /** @type {RTCPeerConnection} */ (/** @type {unknown} */ (new FakePeerConnection(config)));

  /**
   * @param {FakeTrack} track
   * @param {{direction: string, sendEncodings?: Array<{scalabilityMode?: string}>}} init
   */
  addTransceiver(track, init) {
    for (const { scalabilityMode } of init.sendEncodings ?? []) {
      if (scalabilityMode && !FakePeerConnection.scalabilityModes.includes(scalabilityMode)) {
        throw new DOMException(`${scalabilityMode} is not supported`, "OperationError");
      }
    }
    const transceiver = {
      mid: /** @type {string|null} */ (null),
      direction: init.direction,
      kind: track.kind,
      sender: new FakeSender(track, init.sendEncodings),
      receiver: { track: new FakeTrack(track.kind) },
    };
    this.transceivers.push(transceiver);
    return transceiver;
  }

  async createOffer() {
    return { type: "offer", sdp: `offer with ${this.transceivers.length} sections` };
  }

  async createAnswer() {
    return { type: "answer", sdp: `answer to ${this.remoteDescription?.sdp}` };
  }

  /** @param {RTCSessionDescriptionInit} description */
  async setLocalDescription(description) {
    if (this.signalingState === "closed") throw new Error("closed");
    this.localDescription = description;
    if (description.type === "offer") {
      this.transceivers.forEach((t, index) => {
        t.mid ??= String(index);
      });
      this.signalingState = "have-local-offer";
    } else {
      this.signalingState = "stable";
    }
  }

  /** @param {RTCSessionDescriptionInit} description */
  async setRemoteDescription(description) {
    if (this.signalingState === "closed") throw new Error("closed");
    this.remoteDescription = description;
    if (description.type === "answer") {
      this.signalingState = "stable";
      return;
    }
    if (!description.sdp?.startsWith("mids:")) throw new Error(`unparsable offer: ${description.sdp}`);
    this.signalingState = "have-remote-offer";
    for (const mid of description.sdp.slice("mids:".length).split(",").filter(Boolean)) {
      if (this.transceivers.some((t) => t.mid === mid)) continue;
      const track = new FakeTrack(Number(mid) % 2 === 0 ? "audio" : "video");
      const transceiver = { mid, direction: "recvonly", kind: track.kind, sender: new FakeSender(null), receiver: { track } };
      this.transceivers.push(transceiver);
      this.dispatchEvent(Object.assign(new Event("track"), { track, transceiver }));
    }
  }

  getTransceivers() {
    return this.transceivers;
  }

  close() {
    this.signalingState = "closed";
    this.connectionState = "closed";
  }

  /**
   * The connection's state changes (e.g. "failed"), as the browser would report it.
   * @param {RTCPeerConnectionState} state
   */
  becomes(state) {
    this.connectionState = state;
    this.dispatchEvent(new Event("connectionstatechange"));
  }
}

/**
 * The real peer connection behind what the engine exposes (publisher.pc, subscriber.pc).
 * @param {RTCPeerConnection|null|undefined} pc
 * @returns {FakePeerConnection}
 */
export function fake(pc) {
  if (!(pc instanceof FakePeerConnection)) throw new Error("not a FakePeerConnection");
  return pc;
}
