// @ts-check
/** A small typed event emitter: what the session engine tells the page. */

/**
 * Listeners by event name; each event's arguments are typed by `Events`.
 * @template {Record<string, unknown[]>} Events event name → the listener's arguments
 */
export class Emitter {
  /** @type {Map<keyof Events, Set<(...args: any[]) => void>>} */
  #listeners = new Map();

  /**
   * Call `listener` on each `event`, in the order listeners were added.
   * @template {keyof Events} K
   * @param {K} event
   * @param {(...args: Events[K]) => void} listener
   * @returns {() => void} removes the listener
   */
  on(event, listener) {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  /**
   * Call the listeners of `event` now, synchronously (a listener's exception propagates).
   * @template {keyof Events} K
   * @param {K} event
   * @param {Events[K]} args
   */
  emit(event, ...args) {
    for (const listener of [...(this.#listeners.get(event) ?? [])]) listener(...args);
  }
}
