// @ts-check
/**
 * The Socket.IO connection to the server (docs/protocol.md): connect with the JWT,
 * send requests that resolve with the acknowledgement or reject with its error code.
 */
import { io } from "/vendor/socket.io.esm.min.js";
import { SignalingError } from "./signaling-error.js";

export { SignalingError };

/** @typedef {import("/vendor/socket.io.esm.min.js").Socket} Socket */

const REQUEST_TIMEOUT_MS = 15000;

/** One Socket.IO connection serving one consult. */
export class Signaling {
  /** @param {Socket} socket a connected socket.io-client Socket */
  constructor(socket) {
    /** The underlying Socket.IO socket (exposed read-only to tests). */
    this.socket = socket;
  }

  /**
   * Open a connection authenticated by `token`; resolves once the server accepted it.
   * Rejects with a SignalingError carrying the `connect_error` code (`token_expired`, …),
   * or `connection_failed` when the server cannot be reached.
   * @param {string} token the JWT of the join link
   * @returns {Promise<Signaling>}
   */
  static connect(token) {
    // WebSocket first; HTTP long-polling where a proxy blocks it (needs sticky sessions: README).
    const socket = io({ auth: { token }, transports: ["websocket", "polling"], tryAllTransports: true });
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
   * Call `handler` each time the connection comes back after the client reconnected by itself.
   * @param {() => void} handler
   */
  onReconnect(handler) {
    this.socket.io.on("reconnect", handler);
  }

  /** Close the connection (no reconnection follows). */
  close() {
    this.socket.disconnect();
  }
}
