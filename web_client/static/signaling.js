// @ts-check
/**
 * The Socket.IO connection to the server (docs/protocol.md): connect with the JWT,
 * send requests that resolve with the acknowledgement or reject with its error code.
 * A dropped connection comes back by itself, with backoff, presenting the latest resume token
 * (so that the seat, not a new join, is taken back); so does one the server closed because it
 * was going away (`server_going_away`, a restart).
 */
import { io } from "/vendor/socket.io.esm.min.js";
import { SignalingError } from "./signaling-error.js";

export { SignalingError };

/** @typedef {import("/vendor/socket.io.esm.min.js").Socket} Socket */

const REQUEST_TIMEOUT_MS = 15000;
/**
 * Reconnection backoff: the first retry soon, then doubling up to the maximum. A connection
 * attempt that hangs (packets dropped) is given up after CONNECT_TIMEOUT_MS and retried.
 */
const RECONNECT_DELAY_MS = 500;
const RECONNECT_DELAY_MAX_MS = 3000;
const CONNECT_TIMEOUT_MS = 4000;

/** One Socket.IO connection serving one consult. */
export class Signaling {
  /** @param {Socket} socket a connected socket.io-client Socket */
  constructor(socket) {
    /** The underlying Socket.IO socket (exposed read-only to tests). */
    this.socket = socket;
    /** Set by `server_going_away`: the server's next disconnect is a restart, not an end. */
    this.serverGoingAway = false;
    socket.on("server_going_away", () => {
      this.serverGoingAway = true;
    });
    socket.on("disconnect", (reason) => {
      // Socket.IO does not come back by itself from a disconnect the server asked for.
      if (reason === "io server disconnect" && this.serverGoingAway) socket.connect();
    });
    socket.on("connect", () => {
      this.serverGoingAway = false;
    });
  }

  /**
   * Open a connection authenticated by `token`; resolves once the server accepted it.
   * Rejects with a SignalingError carrying the `connect_error` code (`token_expired`, …),
   * or `connection_failed` when the server cannot be reached. Each later reconnection
   * presents `resumeToken()` instead of `token` when it returns one.
   * @param {string} token the JWT of the join link
   * @param {() => string|null} [resumeToken] the latest resume token, if any
   * @param {string} [nodeUrl] the node of the cluster to connect to (its URL may have a path,
   *   a balancer's route to that node); default: the page's own origin
   * @returns {Promise<Signaling>}
   */
  static connect(token, resumeToken = () => null, nodeUrl = location.origin) {
    const node = new URL(nodeUrl, location.href);
    const socket = io(node.origin, {
      path: `${node.pathname.replace(/\/+$/, "")}/socket.io`,
      auth: (callback) => {
        const resume = resumeToken();
        callback(resume ? { resume_token: resume } : { token });
      },
      // WebSocket first; HTTP long-polling where a proxy blocks it (needs sticky sessions: README).
      transports: ["websocket", "polling"],
      tryAllTransports: true,
      reconnectionDelay: RECONNECT_DELAY_MS,
      reconnectionDelayMax: RECONNECT_DELAY_MAX_MS,
      timeout: CONNECT_TIMEOUT_MS,
    });
    return new Promise((resolve, reject) => {
      const onConnect = () => {
        socket.off("connect_error", onError);
        resolve(new Signaling(socket));
      };
      /** @param {Error & {data?: {code?: string, message?: string}}} err */
      const onError = (err) => {
        socket.off("connect", onConnect);
        // Stop the automatic retries: the caller decides whether to try again.
        socket.disconnect();
        const data = err?.data;
        reject(new SignalingError(data?.code || "connection_failed", data?.message || err?.message));
      };
      socket.once("connect", onConnect);
      socket.once("connect_error", onError);
    });
  }

  /**
   * Emit `event` with `payload` and wait for the acknowledgement.
   * @param {string} event a client→server event of the protocol
   * @param {object} [payload]
   * @returns {Promise<any>} the `{ok: true, ...}` result
   * @throws {SignalingError} the server's error, or code "timeout"
   */
  request(event, payload = {}) {
    return new Promise((resolve, reject) => {
      this.socket.timeout(REQUEST_TIMEOUT_MS).emit(
        event,
        payload,
        /** @param {Error|null} err @param {any} response */
        (err, response) => {
          if (err) {
            reject(new SignalingError("timeout", `${event}: no acknowledgement`));
          } else if (response?.ok === true) {
            resolve(response);
          } else {
            const error = response?.error ?? {};
            reject(new SignalingError(error.code || "internal_error", error.message, error.details));
          }
        },
      );
    });
  }

  /**
   * Listen to a server→client event.
   * @param {string} event
   * @param {(payload: any) => void} handler
   */
  on(event, handler) {
    this.socket.on(event, handler);
  }

  /**
   * Call `handler` each time the connection comes back after it dropped (or the server restarted).
   * @param {() => void} handler
   */
  onReconnect(handler) {
    this.socket.on("connect", handler);
  }

  /**
   * Call `handler` when a reconnection is refused by the server (a resume token too old):
   * no further attempt follows.
   * @param {(err: SignalingError) => void} handler
   */
  onReconnectRefused(handler) {
    /** @param {Error & {data?: {code?: string, message?: string}}} err */
    const refused = (err) => {
      if (!this.socket.active) {
        handler(new SignalingError(err?.data?.code || "connection_failed", err?.data?.message || err?.message));
      }
    };
    this.socket.on("connect_error", refused);
  }

  /** Whether the connection is up now. */
  get connected() {
    return this.socket.connected;
  }

  /** Close the connection (no reconnection follows). */
  close() {
    this.socket.disconnect();
  }
}
