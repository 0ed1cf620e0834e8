// @ts-check
/**
 * Keeps the screen on during a visit (Screen Wake Lock, where the browser has it). The browser
 * releases the lock whenever the page is hidden; it is asked for again when the page shows.
 */

/** A screen wake lock held while `hold()` is in force. */
export class ScreenWakeLock {
  constructor() {
    /** @type {WakeLockSentinel|null} */
    this.sentinel = null;
    /** Whether the page wants the screen on. */
    this.wanted = false;
    this.onVisibility = () => {
      if (document.visibilityState === "visible") this.#request();
    };
  }

  /** Whether the lock is held now (false where the browser has no Screen Wake Lock). */
  get held() {
    return Boolean(this.sentinel && !this.sentinel.released);
  }

  /** Keep the screen on until `release()`, across the page being hidden and shown again. */
  hold() {
    if (this.wanted) return;
    this.wanted = true;
    document.addEventListener("visibilitychange", this.onVisibility);
    this.#request();
  }

  /** Let the screen turn off again. */
  release() {
    this.wanted = false;
    document.removeEventListener("visibilitychange", this.onVisibility);
    this.sentinel?.release().catch(() => {});
    this.sentinel = null;
  }

  async #request() {
    if (!this.wanted || this.held || !navigator.wakeLock || document.visibilityState !== "visible") return;
    try {
      const sentinel = await navigator.wakeLock.request("screen");
      if (this.wanted) this.sentinel = sentinel;
      else sentinel.release().catch(() => {});
    } catch {
      // Refused (battery saver, a policy): the visit goes on, the screen may dim.
    }
  }
}
