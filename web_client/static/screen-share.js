// @ts-check
/**
 * Sharing the screen: getDisplayMedia, then a send-only video transceiver on the publisher
 * connection named `screen` in the `publish` offer; stopping (the button, or the browser's
 * own "stop sharing") empties and deactivates that transceiver and offers again.
 */

/** Frame rate asked of the screen capture: documents and images, not motion. */
const SCREEN_FRAME_RATE = 15;

/** An error with a code the page translates ("screen_denied", "screen_unavailable"). */
export class ScreenShareError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = "ScreenShareError";
    this.code = code;
  }
}

/** This participant's screen share. */
export class ScreenShare {
  /**
   * @param {{publisher: () => import("./publisher.js").Publisher|null,
   *          onChange: (sharing: boolean) => void}} handlers
   *   `publisher` gives the connection to send on (created on demand by the page);
   *   `onChange` is called after sharing started or stopped
   */
  constructor({ publisher, onChange }) {
    this.publisher = publisher;
    this.onChange = onChange;
    /** @type {MediaStreamTrack|null} */
    this.track = null;
  }

  /** @returns {boolean} whether the screen is being shared */
  get sharing() {
    return this.track !== null;
  }

  /**
   * Ask the browser for a screen (the user picks it) and send it.
   * @returns {Promise<void>}
   * @throws {ScreenShareError|import("./signaling.js").SignalingError}
   */
  async start() {
    if (this.track) return;
    if (!navigator.mediaDevices?.getDisplayMedia) {
      throw new ScreenShareError("screen_unavailable", "getDisplayMedia is not available");
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({
        video: { frameRate: { ideal: SCREEN_FRAME_RATE, max: SCREEN_FRAME_RATE } },
        audio: false,
      });
    } catch (caught) {
      const err = /** @type {Error} */ (caught);
      const denied = err.name === "NotAllowedError" || err.name === "AbortError";
      throw new ScreenShareError(denied ? "screen_denied" : "screen_unavailable", err.message);
    }
    const [track] = stream.getVideoTracks();
    const publisher = this.publisher();
    if (!track || !publisher) {
      for (const t of stream.getTracks()) t.stop();
      throw new ScreenShareError("screen_unavailable", "no screen track or no publisher connection");
    }
    track.contentHint = "detail";
    // The browser's own "Stop sharing" bar ends the track.
    track.addEventListener("ended", () => this.stop().catch(() => {}));
    this.track = track;
    this.onChange(true);
    try {
      await publisher.shareScreen(track);
    } catch (err) {
      await this.stop().catch(() => {});
      throw err;
    }
  }

  /**
   * Stop sharing: end the capture and withdraw the track from the server.
   * @returns {Promise<void>}
   */
  async stop() {
    const track = this.track;
    if (!track) return;
    this.track = null;
    track.stop();
    this.onChange(false);
    await this.publisher()?.stopScreen();
  }

  /**
   * Send a running share again on a new publisher connection (after the media were restarted:
   * the old connection, and the share on it, are gone).
   * @returns {Promise<void>}
   */
  async resend() {
    const track = this.track;
    if (!track || track.readyState === "ended") return;
    await this.publisher()?.shareScreen(track);
  }

  /** Forget the share when the consult ends (the publisher connection closes anyway). */
  close() {
    this.track?.stop();
    this.track = null;
  }
}
