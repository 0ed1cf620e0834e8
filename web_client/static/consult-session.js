// @ts-check
/**
 * The consult session engine: join, lobby, publish and subscribe negotiation, the server's
 * events and the session's state. It touches no DOM (Node imports it in the unit tests): it
 * emits events that the page (consult.js) turns into views, tiles and announcements.
 */
import { Emitter } from "./emitter.js";
import { browserPeerConnection } from "./ice.js";
import { FULL_RECEIVE, parseLinkQuality, parseReceiveMode } from "./link-quality.js";
import { NodeRoute } from "./node-route.js";
import { Publisher } from "./publisher.js";
import { SignalingError } from "./signaling-error.js";
import { Subscriber } from "./subscriber.js";

/**
 * A participant as the server describes it (docs/protocol.md).
 * @typedef {{participant_id: string, name: string, role?: string, is_host?: boolean,
 *            status?: string, muted?: {microphone: boolean, camera: boolean}}} Participant
 */
/**
 * What this participant may do.
 * @typedef {{publish?: boolean, admit?: boolean, moderate?: boolean, end?: boolean,
 *            record?: boolean}} Grants
 */
/**
 * The `join` acknowledgement.
 * @typedef {{ok: true, status: string, participant: Participant, consult: {title?: string},
 *            grants: Grants, ice_servers?: RTCIceServer[],
 *            ice_transport_policy?: RTCIceTransportPolicy, participants?: Participant[],
 *            chat?: import("./chat.js").ChatMessage[], recording?: any,
 *            resume_token?: string}} JoinResult
 */
/**
 * A committed change to one of the consult's clinical documents (`clinical_updated`):
 * `change` is "created", "updated", "signed", "amended", "reviewed" or "delivered"
 * (docs/protocol.md, "Clinical record"); a page treats one it does not know as a change.
 * @typedef {{consult_id: string, document: "note"|"prescription", id: string,
 *            change: string}} ClinicalUpdate
 */
/** @typedef {"join"|"lobby"|"consult"|"ended"} View */
/** @typedef {"ended"|"left"|"lost"|"removed"} EndReason */
/** @typedef {"microphone"|"camera"} Source */
/**
 * What the engine needs of the Socket.IO connection (signaling.js's Signaling; a fake in tests).
 * @typedef {object} SignalingConnection
 * @property {(event: string, payload?: object) => Promise<any>} request
 * @property {(event: string, handler: (payload: any) => void) => void} on
 * @property {() => void} close
 * @property {(handler: () => void) => void} [onReconnect] the connection came back after a drop
 * @property {(handler: (err: SignalingError) => void) => void} [onReconnectRefused]
 *   the server refused to take the connection back (the seat was given up)
 * @property {boolean} [connected] whether the connection is up now
 * @property {boolean} [serverGoingAway] the server said it is restarting: its disconnect is not an end
 */
/**
 * @typedef {object} SessionState
 * @property {View} view
 * @property {string|null} consultId
 * @property {string} name display name: from the token until the server's Participant replaces it
 * @property {Participant|null} participant this participant, as the server describes it
 * @property {{title?: string}|null} consult
 * @property {Grants|null} grants
 * @property {RTCConfiguration} rtcConfig the join result's ICE servers and transport policy
 * @property {Map<string, Participant>} participants everyone the server told us about, by id
 * @property {Participant[]} waiting participants waiting in the lobby (hosts only)
 * @property {Record<Source, boolean>} muted
 * @property {boolean} audioOnly this participant chose audio only: it sends no camera, receives no video
 * @property {import("./link-quality.js").ReceiveMode} receiveMode what the server sends us
 * @property {Map<string, import("./link-quality.js").Quality>} linkQuality each participant's
 *   connection quality, as the server last rated it
 * @property {boolean} reconnecting the connection dropped and is coming back by itself
 * @property {EndReason|null} endedReason
 * @property {string|null} endedBy the host who removed this participant
 */
/**
 * The engine's events, each with its listener's arguments.
 * @typedef {object} SessionEvents
 * @property {[]} change the state changed: render again
 * @property {[View]} view a new view
 * @property {[JoinResult]} joined the `join` result, applied to the state
 * @property {[Participant]} participant someone's data changed (their tile follows)
 * @property {[Participant]} participant_joined someone else joined
 * @property {[Participant]} participant_reconnecting someone else's connection dropped: their seat waits
 * @property {[string, Participant|undefined]} participant_left someone left (id, and who it was)
 * @property {[Participant]} waiting someone new waits in the lobby (hosts only)
 * @property {[]} admitted the host admitted this participant
 * @property {[{source: Source|"screen", by: string}]} muted_by_host a host muted our source
 * @property {[]} local_media the local media's mute state changed
 * @property {[]} link_quality the server rated the participants' connections again
 * @property {[import("./link-quality.js").ReceiveMode]} receive_mode what the server sends us changed
 * @property {[import("./subscriber.js").Placement]} track_added a received track to show
 * @property {[import("./subscriber.js").Placement]} track_removed a received track to drop
 * @property {[import("./chat.js").ChatMessage]} chat_message
 * @property {[string|undefined]} error an error code to show
 * @property {[ClinicalUpdate]} clinical_updated a clinical document of this consult changed
 * @property {[]} reconnecting our connection dropped: it comes back by itself
 * @property {[]} reconnected the connection came back by itself and the seat was resumed
 * @property {[]} media_restarted new peer connections replaced lost ones
 * @property {[EndReason]} ending the session is ending: stop the page's media and timers
 * @property {[string]} node the signaling moved to another node of the cluster (its URL)
 */

/**
 * The code of an error, if it has one.
 * @param {unknown} err
 * @returns {string|undefined}
 */
function codeOf(err) {
  return /** @type {{code?: string}|null|undefined} */ (err)?.code;
}

/**
 * The node a `media_on_other_node` refusal sends the join to, if that is what `err` is.
 * @param {unknown} err
 * @returns {string|undefined}
 */
function nodeUrlOf(err) {
  if (codeOf(err) !== "media_on_other_node") return undefined;
  const details = /** @type {{details?: {node_url?: unknown}}} */ (err).details;
  return typeof details?.node_url === "string" ? details.node_url : undefined;
}

/**
 * Wait `ms` milliseconds (none: at once).
 * @param {number} ms
 * @returns {Promise<void>}
 */
function pause(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * One participant's session in one consult: device media in, events out. Its signaling
 * follows the cluster (docs/cluster.md): a join or resume sent to the consult's media node is
 * made again there, and a media node that stops answering is left for the node the page came
 * from (or another node it knows), which places the consult again; `route` decides.
 * @extends {Emitter<SessionEvents>}
 */
export class ConsultSession extends Emitter {
  /**
   * @param {object} options
   * @param {string|null} options.consultId from the join link
   * @param {string|null} options.token the join link's JWT
   * @param {string} [options.name] display name until the server's replaces it
   * @param {(token: string, resumeToken: () => string|null, nodeUrl: string) => Promise<SignalingConnection>} options.connect
   *   opens the connection to a node; its reconnections present `resumeToken()` when there is one
   * @param {NodeRoute} [options.route] which node to talk to; default: the page's own
   * @param {import("./ice.js").PeerConnectionFactory} [options.createPeerConnection]
   */
  constructor({
    consultId,
    token,
    name = "",
    connect,
    route = new NodeRoute(""),
    createPeerConnection = browserPeerConnection,
  }) {
    super();
    this.token = token;
    this.connect = connect;
    this.route = route;
    this.createPeerConnection = createPeerConnection;
    /** @type {SessionState} */
    this.state = {
      view: "join",
      consultId,
      name,
      participant: null,
      consult: null,
      grants: null,
      rtcConfig: { iceServers: [] },
      participants: new Map(),
      waiting: [],
      muted: { microphone: false, camera: false },
      audioOnly: false,
      receiveMode: FULL_RECEIVE,
      linkQuality: new Map(),
      reconnecting: false,
      endedReason: null,
      endedBy: null,
    };
    /** @type {SignalingConnection|null} */
    this.signaling = null;
    /** @type {Publisher|null} */
    this.publisher = null;
    /** @type {Subscriber|null} */
    this.subscriber = null;
    /** @type {MediaStream|null} the camera and microphone, as the device check opened them */
    this.localStream = null;
    /** Whether a join is under way. */
    this.joining = false;
    /** @type {string|null} the server's latest resume token: takes the seat back after a drop */
    this.resumeToken = null;
    /** Whether new peer connections are being set up (one restart at a time). */
    this.restartingMedia = false;
    /** Counts restarts: a newer one (after a resume) makes an older one's outcome moot. */
    this.mediaGeneration = 0;
    /** @type {Array<[string, (payload: any) => void]>} the page's own handlers of server events */
    this.serverHandlers = [];
    /** Whether the page told its user it refused to follow a redirect (since its last seat). */
    this.untrustedShown = false;
  }

  /**
   * Listen to a server event on this connection and on every one that replaces it (after the
   * signaling moved to another node).
   * @param {string} event
   * @param {(payload: any) => void} handler
   */
  onServer(event, handler) {
    this.serverHandlers.push([event, handler]);
    this.signaling?.on(event, handler);
  }

  /**
   * The media to publish on entering the consult (the device check's latest stream).
   * @param {MediaStream} stream
   */
  setLocalStream(stream) {
    this.localStream = stream;
  }

  /**
   * Connect and join; then wait in the lobby or enter the consult. A failure is reported as
   * an `error` event and leaves the session ready to try again.
   * @returns {Promise<void>}
   */
  async join() {
    const { token, state } = this;
    if (this.joining || !token) return;
    this.joining = true;
    this.emit("change");
    /** @type {SignalingConnection} */
    let signaling;
    /** @type {JoinResult} */
    let result;
    /** @type {() => void} */
    let markJoined;
    for (;;) {
      try {
        signaling = await this.connect(token, () => this.resumeToken, this.route.current);
        this.signaling = signaling;
        markJoined = this.#listen(signaling);
        result = await signaling.request("join", { consult_id: state.consultId });
        break;
      } catch (err) {
        this.signaling?.close();
        this.signaling = null;
        const nodeUrl = nodeUrlOf(err);
        const hop = nodeUrl ? this.route.redirected(nodeUrl) : null;
        if (!hop || hop.refused) {
          // Refused: the page stays where it is, ready to try again.
          this.joining = false;
          this.emit("error", hop?.refused ? "untrusted_node" : codeOf(err));
          this.emit("change");
          return;
        }
        await pause(hop.delayMs);
      }
    }
    this.route.settled();
    this.joining = false;
    state.participant = result.participant;
    state.name = result.participant.name;
    state.consult = result.consult;
    state.grants = result.grants;
    this.emit("joined", result);
    this.#applySeat(result);
    this.subscriber = this.#newSubscriber(signaling);
    markJoined();
    if (result.status === "lobby") {
      this.#setView("lobby");
    } else {
      await this.#enterConsult();
    }
  }

  /**
   * What a `join` or `resume` result says about our seat: ICE servers, everyone, the lobby.
   * @param {JoinResult} result
   */
  #applySeat(result) {
    const state = this.state;
    this.resumeToken = result.resume_token ?? null;
    state.rtcConfig = {
      iceServers: result.ice_servers ?? [],
      iceTransportPolicy: result.ice_transport_policy ?? "all",
    };
    this.#setParticipants(result.participants ?? []);
    state.waiting = (result.participants ?? []).filter((p) => p.status === "waiting");
  }

  /**
   * A subscriber connection on `signaling`; a lost one is replaced.
   * @param {SignalingConnection} signaling
   * @returns {Subscriber}
   */
  #newSubscriber(signaling) {
    return new Subscriber(
      signaling,
      this.state.rtcConfig,
      {
        onPlace: (placement) => this.emit("track_added", placement),
        onRemove: (placement) => this.emit("track_removed", placement),
        onError: (err) => this.emit("error", err.code ?? "invalid_sdp"),
        onFailed: () => this.restartMedia(),
      },
      this.createPeerConnection,
    );
  }

  /**
   * Replace both peer connections (the server replaces its side when the new publisher's first
   * offer says `restart`): after a lost ICE connection, or a resumed signaling connection. The
   * tiles stay; they get the new connection's tracks. One restart at a time, and none while
   * the signaling connection is down: its resume restarts the media with `force`, which also
   * supersedes a restart whose requests were lost with the old connection.
   * @param {{force?: boolean}} [options]
   * @returns {Promise<void>}
   */
  async restartMedia({ force = false } = {}) {
    const state = this.state;
    const signaling = this.signaling;
    if (!signaling || state.view !== "consult") return;
    if (!force && (this.restartingMedia || state.reconnecting || signaling.connected === false)) return;
    const generation = ++this.mediaGeneration;
    const current = () => generation === this.mediaGeneration;
    this.restartingMedia = true;
    try {
      this.publisher?.close();
      this.publisher = null;
      this.subscriber?.close({ removeTracks: true });
      this.subscriber = this.#newSubscriber(signaling);
      const stream = this.localStream;
      if (stream && this.#localTracks().length > 0 && state.grants?.publish !== false) {
        await this.publishLocal(stream, { restart: true });
      } else {
        // Receive-only: the server replaces its subscriber connection for this one.
        await signaling.request("subscribe", { restart: true });
      }
      if (current()) this.emit("media_restarted");
    } catch (err) {
      if (current() && this.state.view !== "ended") this.emit("error", codeOf(err) ?? "media_failed");
    } finally {
      if (current()) this.restartingMedia = false;
    }
  }

  /**
   * The connection came back after a drop: take our seat back with the resume token, tell the
   * server our mute state again (it may have restarted), and replace the peer connections.
   * @param {SignalingConnection} signaling
   * @returns {Promise<void>}
   */
  async #resume(signaling) {
    const state = this.state;
    if (state.view === "ended" || !this.resumeToken) return;
    /** @type {JoinResult} */
    let result;
    try {
      result = await signaling.request("resume", {
        consult_id: state.consultId,
        resume_token: this.resumeToken,
      });
    } catch (err) {
      const nodeUrl = nodeUrlOf(err);
      if (nodeUrl) {
        const hop = this.route.redirected(nodeUrl);
        // Not followed: the page says so once, and asks its current node again after a while.
        if (hop?.refused && !this.untrustedShown) this.emit("error", "untrusted_node");
        this.untrustedShown = Boolean(hop?.refused);
        await this.#moveTo(hop);
        return;
      }
      this.emit("error", codeOf(err) ?? "connection_lost");
      this.finish("lost");
      return;
    }
    this.route.settled();
    this.untrustedShown = false;
    state.reconnecting = false;
    state.consult = result.consult ?? state.consult;
    state.grants = result.grants ?? state.grants;
    this.#applySeat(result);
    for (const source of /** @type {const} */ (["microphone", "camera"])) {
      if (state.muted[source] && !result.participant.muted?.[source]) {
        this.request("mute", { source, muted: true }).catch(() => {});
      }
    }
    // The server may have restarted and forgotten the choice.
    if (state.audioOnly) this.request("audio_only", { enabled: true }).catch(() => {});
    this.emit("reconnected");
    this.emit("change");
    if (state.view === "consult") await this.restartMedia({ force: true });
    else if (result.status === "joined") await this.#enterConsult();
  }

  /**
   * Leave the current node for `hop`'s (after its wait), connect there with the resume token and
   * resume; a node that cannot be reached is followed by the route's next one. `null`: the
   * route gave up, the session is lost.
   * @param {import("./node-route.js").Hop|null} hop
   * @returns {Promise<void>}
   */
  async #moveTo(hop) {
    this.signaling?.close();
    this.signaling = null;
    if (this.#ended) return;
    if (!hop) {
      this.emit("error", "connection_lost");
      this.finish("lost");
      return;
    }
    await pause(hop.delayMs);
    if (this.#ended) return;
    /** @type {SignalingConnection} */
    let signaling;
    try {
      signaling = await this.connect(/** @type {string} */ (this.token), () => this.resumeToken, hop.url);
    } catch (err) {
      if (codeOf(err) !== "connection_failed") {
        this.emit("error", codeOf(err) ?? "connection_lost");
        this.finish("lost");
        return;
      }
      await this.#moveTo(this.route.unreachable());
      return;
    }
    if (this.#ended) {
      signaling.close();
      return;
    }
    this.signaling = signaling;
    this.#listen(signaling)();
    this.emit("node", hop.url);
    await this.#resume(signaling);
  }

  /** Whether the session ended (checked again after each wait). */
  get #ended() {
    return this.state.view === "ended";
  }

  /**
   * Leave `connection`'s node for another one if it has not come back after a while (it died:
   * the node the page came from places the consult again). A page that knows one node only
   * leaves the retries to Socket.IO.
   * @param {SignalingConnection} connection
   */
  #failOverIfUnreachable(connection) {
    setTimeout(() => {
      const stillDown = this.signaling === connection && this.state.reconnecting && connection.connected !== true;
      if (stillDown && !this.#ended && this.route.canFailOver) {
        this.#moveTo(this.route.unreachable());
      }
    }, this.route.timing.unreachableAfterMs);
  }

  /**
   * Handle the server's events on `connection`. Returns the function to call once the
   * `join` result is applied: consult events wait for it (they build on its snapshot of the
   * participants, subscriber offers need its ICE servers), and keep their order.
   * @param {SignalingConnection} connection
   * @returns {() => void}
   */
  #listen(connection) {
    const state = this.state;
    /** @type {() => void} */
    let markJoined = () => {};
    /** @type {Promise<void>} */
    const joined = new Promise((resolve) => {
      markJoined = resolve;
    });
    /**
     * @param {(payload: any) => void} handler
     * @returns {(payload: any) => Promise<void>}
     */
    const afterJoin = (handler) => async (payload) => {
      await joined;
      handler(payload);
    };

    connection.on(
      "lobby",
      afterJoin(({ waiting }) => {
        const before = new Set(state.waiting.map((p) => p.participant_id));
        state.waiting = waiting ?? [];
        for (const p of state.waiting) {
          if (state.grants?.admit && !before.has(p.participant_id)) this.emit("waiting", p);
        }
        this.emit("change");
      }),
    );

    connection.on(
      "admitted",
      afterJoin(({ consult, participants }) => {
        state.consult = consult ?? state.consult;
        this.#setParticipants(participants ?? []);
        this.emit("admitted");
        this.#enterConsult();
      }),
    );

    connection.on(
      "participant_joined",
      afterJoin((participant) => {
        this.#updateParticipant(participant);
        if (participant.participant_id !== state.participant?.participant_id) {
          this.emit("participant_joined", participant);
        }
      }),
    );

    connection.on(
      "participant_updated",
      afterJoin((participant) => this.#updateParticipant(participant)),
    );

    connection.on(
      "participant_reconnecting",
      afterJoin((participant) => {
        this.#updateParticipant(participant);
        this.emit("participant_reconnecting", participant);
      }),
    );

    connection.on("resume_token", ({ resume_token: token }) => {
      if (typeof token === "string" && token) this.resumeToken = token;
    });

    connection.on(
      "participant_left",
      afterJoin(({ participant_id: id }) => {
        const participant = state.participants.get(id);
        state.participants.delete(id);
        this.emit("participant_left", id, participant);
      }),
    );

    connection.on(
      "subscriber_offer",
      afterJoin((offer) => this.subscriber?.handleOffer(offer)),
    );

    connection.on(
      "chat_message",
      afterJoin((message) => this.emit("chat_message", message)),
    );

    // The server could not set up a connection of ours (its media ports were all taken).
    connection.on(
      "media_error",
      afterJoin(({ code }) => this.emit("error", typeof code === "string" ? code : "media_error")),
    );

    connection.on(
      "muted_by_host",
      afterJoin(({ source, by }) => {
        if (source !== "screen" && !state.muted[/** @type {Source} */ (source)]) {
          this.#applyMute(source, true);
        }
        this.emit("muted_by_host", { source, by });
      }),
    );

    connection.on(
      "link_quality",
      afterJoin((payload) => {
        state.linkQuality = parseLinkQuality(payload);
        this.emit("link_quality");
      }),
    );

    connection.on(
      "receive_mode",
      afterJoin((payload) => {
        const mode = parseReceiveMode(payload);
        if (!mode) return;
        state.receiveMode = mode;
        this.emit("receive_mode", mode);
        this.emit("change");
      }),
    );

    connection.on(
      "clinical_updated",
      afterJoin((update) => {
        if (update?.consult_id === state.consultId) this.emit("clinical_updated", update);
      }),
    );

    // Sent just before the server disconnects us: the disconnect then finds the view ended.
    connection.on("removed", ({ by }) => {
      state.endedBy = by;
      this.finish("removed");
    });

    connection.on("consult_ended", () => this.finish("ended"));

    // Sent just before the server closes a connection whose token expired.
    connection.on("session_expired", ({ code }) => {
      this.emit("error", code ?? "token_expired");
      this.finish("lost");
    });

    connection.on("disconnect", (reason) => {
      if (reason === "io client disconnect" || state.view === "ended") return;
      // The server closed this connection for good (another tab took the seat), unless it restarts.
      const closedByServer = reason === "io server disconnect" && !connection.serverGoingAway;
      if (this.resumeToken && !closedByServer) {
        // The connection comes back by itself (signaling.js); the seat waits for us meanwhile.
        state.reconnecting = true;
        this.emit("reconnecting");
        this.emit("error", "reconnecting");
        this.emit("change");
        this.#failOverIfUnreachable(connection);
      } else {
        this.emit("error", "connection_lost");
        this.finish("lost");
      }
    });

    connection.onReconnect?.(() => this.#resume(connection));

    for (const [event, handler] of this.serverHandlers) connection.on(event, handler);

    connection.onReconnectRefused?.((err) => {
      if (state.view === "ended") return;
      this.emit("error", err.code ?? "connection_lost");
      this.finish("lost");
    });

    return markJoined;
  }

  /** @param {Participant[]} participants the server's list */
  #setParticipants(participants) {
    const state = this.state;
    state.participants = new Map(participants.map((p) => [p.participant_id, p]));
    const me = state.participant && state.participants.get(state.participant.participant_id);
    if (me) state.participant = me;
    for (const participant of participants) this.emit("participant", participant);
  }

  /** @param {Participant} participant the server's latest data about someone */
  #updateParticipant(participant) {
    const state = this.state;
    state.participants.set(participant.participant_id, participant);
    if (participant.participant_id === state.participant?.participant_id) {
      state.participant = participant;
      // A moderator may have muted us: follow the server's state without echoing it back.
      for (const source of /** @type {const} */ (["microphone", "camera"])) {
        if (participant.muted && participant.muted[source] !== state.muted[source]) {
          this.#applyMute(source, participant.muted[source]);
        }
      }
    }
    this.emit("participant", participant);
    this.emit("change");
  }

  /** @param {View} view */
  #setView(view) {
    this.state.view = view;
    this.emit("view", view);
  }

  /** @returns {MediaStreamTrack[]} */
  #localTracks() {
    return this.localStream?.getTracks() ?? [];
  }

  /**
   * The publisher connection, created on first use (a participant without camera and
   * microphone creates it when sharing the screen); null without grants.publish.
   * @param {{restart?: boolean}} [options] `restart`: it replaces lost connections
   * @returns {Publisher|null}
   */
  ensurePublisher({ restart = false } = {}) {
    const state = this.state;
    if (!this.publisher && this.signaling && state.grants?.publish !== false && state.view === "consult") {
      this.publisher = new Publisher(
        this.signaling,
        state.rtcConfig,
        { onFailed: () => this.restartMedia() },
        this.createPeerConnection,
        { restart },
      );
    }
    return this.publisher;
  }

  async #enterConsult() {
    const state = this.state;
    if (state.view === "consult" || state.view === "ended") return;
    this.#setView("consult");
    const stream = this.localStream;
    try {
      if (!stream || this.#localTracks().length === 0 || state.grants?.publish === false) {
        // Nothing to send (no camera or microphone allowed): receive the others all the same.
        await this.request("subscribe");
        return;
      }
      await this.publishLocal(stream);
    } catch (err) {
      if (this.state.view !== "ended") this.emit("error", codeOf(err) ?? "invalid_sdp");
    }
  }

  /**
   * Publish the local media on the publisher connection (camera withheld while audio only).
   * @param {MediaStream} stream
   * @param {{restart?: boolean}} [options] see `ensurePublisher`
   * @returns {Promise<void>}
   */
  async publishLocal(stream, options) {
    const publisher = this.ensurePublisher(options);
    if (!publisher) return;
    // Withheld before the offer: not one frame of the camera leaves while audio only.
    const publishing = publisher.publish(stream);
    if (this.state.audioOnly) await publisher.replaceTrack("camera", null);
    await publishing;
  }

  /**
   * Send `track` as our microphone or camera on the sender already there (a switched or
   * reopened device); while audio only, the camera's sender stays empty.
   * @param {Source} source
   * @param {MediaStreamTrack} track
   * @returns {Promise<boolean>} false when nothing of that source is published yet
   */
  async sendTrack(source, track) {
    const sent = source === "camera" && this.state.audioOnly ? null : track;
    return (await this.publisher?.replaceTrack(source, sent)) ?? false;
  }

  /**
   * Choose audio only (or video again): at once here, our camera leaves the sender (or comes
   * back to it); then the server stops (or resumes) sending us video and tells the others.
   * A refusal undoes it here.
   * @param {boolean} enabled
   * @returns {Promise<void>}
   * @throws {SignalingError} the server refused it
   */
  async setAudioOnly(enabled) {
    const before = this.state.audioOnly;
    await this.#applyAudioOnly(enabled);
    try {
      await this.request("audio_only", { enabled });
    } catch (err) {
      await this.#applyAudioOnly(before);
      throw err;
    }
  }

  /** @param {boolean} enabled */
  async #applyAudioOnly(enabled) {
    this.state.audioOnly = enabled;
    const camera = this.localStream?.getVideoTracks()[0] ?? null;
    this.emit("local_media");
    this.emit("change");
    await this.publisher?.replaceTrack("camera", enabled ? null : camera);
  }

  /**
   * @param {Source} source
   * @param {boolean} muted
   */
  #applyMute(source, muted) {
    this.state.muted[source] = muted;
    const stream = this.localStream;
    const tracks = !stream ? [] : source === "microphone" ? stream.getAudioTracks() : stream.getVideoTracks();
    for (const track of tracks) track.enabled = !muted;
    this.emit("local_media");
    this.emit("change");
  }

  /**
   * Mute or unmute our own microphone or camera: at once here, then tell the server.
   * @param {Source} source
   * @param {boolean} muted
   * @returns {Promise<void>}
   * @throws {SignalingError} the server refused it (the local state stays as asked)
   */
  async setMute(source, muted) {
    this.#applyMute(source, muted);
    await this.request("mute", { source, muted });
  }

  /**
   * Send a request of the protocol on the joined connection.
   * @param {string} event
   * @param {object} [payload]
   * @returns {Promise<any>} the acknowledgement
   * @throws {SignalingError}
   */
  request(event, payload) {
    if (!this.signaling) return Promise.reject(new SignalingError("connection_lost", "not connected"));
    return this.signaling.request(event, payload);
  }

  /**
   * Leave the consult: the server is told if it can be, the media stops here anyway.
   * @returns {Promise<void>}
   */
  async leave() {
    try {
      await this.signaling?.request("leave");
    } catch {
      // Leaving goes on locally whatever the server says: the media stops here anyway.
    }
    this.finish("left");
  }

  /**
   * End the consult for everyone (hosts).
   * @returns {Promise<void>}
   * @throws {SignalingError} the server refused it: the session goes on
   */
  async end() {
    await this.request("end");
    this.finish("ended");
  }

  /**
   * Stop everything: the page's media first (`ending`), both peer connections, the connection.
   * The closed peer connections stay reachable (`publisher.pc`, `subscriber.pc`) for tests.
   * @param {EndReason} reason
   */
  finish(reason) {
    const state = this.state;
    if (state.view === "ended") return;
    state.endedReason = reason;
    this.emit("ending", reason);
    this.publisher?.close();
    this.subscriber?.close();
    state.waiting = [];
    this.#setView("ended");
    this.signaling?.close();
  }
}
