// @ts-check
/** The coded error of the signaling protocol, in a module of its own so that Node can load it. */

/** An error answered by the server (`{ok:false, error:{code, message}}`) or met on the way. */
export class SignalingError extends Error {
  /**
   * @param {string} code protocol error code, or a client one ("timeout", "connection_failed")
   * @param {string} [message] the server's English message, for logs
   * @param {unknown} [details] field errors of `invalid_payload`
   */
  constructor(code, message = code, details = undefined) {
    super(message);
    this.name = "SignalingError";
    this.code = code;
    this.details = details;
  }
}
