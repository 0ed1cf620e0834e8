// @ts-check
/**
 * Which node of the cluster the page's signaling talks to (docs/cluster.md): the node the page
 * came from at first, the consult's media node after a redirect (`media_on_other_node`), and,
 * when that node stops answering, back to the page's node or another node it knows, which places
 * the consult again and redirects it. Decisions only (no timers, no sockets), bounded: steps that
 * do not end in a seat back off, and the route gives up after a while. It follows only nodes of
 * the page's own origin or of the origins its own origin listed (`GET /api/cluster`), never an
 * origin a redirect names by itself.
 */

/**
 * How the route paces itself.
 * @typedef {object} RouteTiming
 * @property {number} unreachableAfterMs a node that has not answered for this long is left
 * @property {number} firstDelayMs the wait before the first retry of a node that failed
 * @property {number} maxDelayMs the longest wait between two steps
 * @property {number} quickHops redirects followed at once before they back off too
 * @property {number} giveUpAfterMs no seat after this long since the trouble began: the page stops
 */

/** @type {RouteTiming} */
export const ROUTE_TIMING = {
  unreachableAfterMs: 3000,
  firstDelayMs: 500,
  // Short: a page waiting for its home to notice a death (10 s) must not overshoot it by much.
  maxDelayMs: 2000,
  quickHops: 2,
  // More than a dead node's expiry (10 s) plus the balancer's and Socket.IO's own detection.
  giveUpAfterMs: 60000,
};

/**
 * Where to connect next, and after how long; `refused`: a redirect named a node of an origin the
 * page does not trust, so the page stays on its current node.
 * @typedef {{url: string, delayMs: number, refused?: true}} Hop
 */

/**
 * A node URL as the route compares them: no trailing slash.
 * @param {string} url
 * @returns {string}
 */
function normalize(url) {
  return url.replace(/\/+$/, "");
}

/**
 * The origin of an http(s) URL; null for anything else.
 * @param {string} url
 * @returns {string|null}
 */
function originOf(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.origin : null;
  } catch {
    return null;
  }
}

/** The node the page's signaling talks to, and where it goes when that node fails. */
export class NodeRoute {
  /**
   * @param {string} home the node the page came from (its origin, or the balancer's URL)
   * @param {{trusted?: string[], now?: () => number, timing?: Partial<RouteTiming>}} [options]
   *   `trusted`: the cluster's origins as the page's own origin listed them
   */
  constructor(home, { trusted = [], now = Date.now, timing = {} } = {}) {
    this.home = normalize(home);
    /** @type {Set<string>} the origins the page may follow its consult to: the home's and the listed */
    this.trusted = new Set(
      [home, ...trusted].map(originOf).filter(/** @returns {o is string} */ (o) => o !== null),
    );
    /** The node to connect to now. */
    this.current = this.home;
    /** @type {string[]} every node the page has been sent to, the home first */
    this.known = [this.home];
    /** @type {RouteTiming} */
    this.timing = { ...ROUTE_TIMING, ...timing };
    this.now = now;
    /** @type {Map<string, number>} nodes found unreachable since the last seat, and when */
    this.unreachableSince = new Map();
    /** @type {number|null} when the steps without a seat began */
    this.troubleSince = null;
    /** Steps since the last seat. */
    this.steps = 0;
  }

  /** Whether another node than the current one is known: a failover has somewhere to go. */
  get canFailOver() {
    return this.known.some((url) => url !== this.current);
  }

  /**
   * Whether the page may follow its consult to `nodeUrl`: a node of its own origin or of one
   * its own origin listed.
   * @param {string} nodeUrl
   * @returns {boolean}
   */
  trusts(nodeUrl) {
    const origin = originOf(nodeUrl);
    return origin !== null && this.trusted.has(origin);
  }

  /**
   * A join or resume was refused with `media_on_other_node`: where to ask next. A node found
   * unreachable is not followed to (the node that sent us there has not noticed its death
   * yet): the same node is asked again after a backoff. A node the page does not trust is
   * neither followed nor remembered: the hop stays on the current node, `refused`.
   * @param {string} nodeUrl the error's `details.node_url`
   * @returns {Hop|null} null: given up
   */
  redirected(nodeUrl) {
    const url = normalize(nodeUrl);
    if (!this.trusts(url)) {
      return this.#step() ? { url: this.current, delayMs: this.#backoff(), refused: true } : null;
    }
    if (!this.known.includes(url)) this.known.push(url);
    if (!this.#step()) return null;
    if (this.unreachableSince.has(url) || url === this.current) {
      return { url: this.current, delayMs: this.#backoff() };
    }
    this.current = url;
    return { url, delayMs: this.steps <= this.timing.quickHops ? 0 : this.#backoff() };
  }

  /**
   * The current node did not answer for a while (or refused the connection): the next node to
   * try is the first known one that has not failed (the home first), else the one that failed
   * longest ago.
   * @returns {Hop|null} null: given up
   */
  unreachable() {
    this.unreachableSince.set(this.current, this.now());
    if (!this.#step()) return null;
    const fresh = this.known.find((url) => !this.unreachableSince.has(url));
    const oldest = [...this.unreachableSince.entries()].sort((a, b) => a[1] - b[1])[0][0];
    this.current = fresh ?? oldest;
    return { url: this.current, delayMs: fresh ? 0 : this.#backoff() };
  }

  /** The current node gave us our seat: the trouble is over. */
  settled() {
    this.unreachableSince.clear();
    this.troubleSince = null;
    this.steps = 0;
  }

  /** @returns {boolean} false once the trouble has lasted too long */
  #step() {
    const now = this.now();
    this.troubleSince ??= now;
    this.steps += 1;
    return now - this.troubleSince < this.timing.giveUpAfterMs;
  }

  /** @returns {number} the wait before the current step: doubling up to the maximum */
  #backoff() {
    const { firstDelayMs, maxDelayMs } = this.timing;
    return Math.min(firstDelayMs * 2 ** Math.max(0, this.steps - 1), maxDelayMs);
  }
}
