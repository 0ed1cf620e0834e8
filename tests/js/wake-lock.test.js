// @ts-check
/**
 * The screen stays on during a visit: the wake lock is asked for when the visit starts, asked
 * for again each time the page shows after being hidden (the browser released it), and let go
 * at the end.
 */
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, test } from "node:test";

import { ScreenWakeLock } from "../../web_client/static/wake-lock.js";

/** A sentinel as the browser gives it; `release` is what the browser does when the page hides. */
class FakeSentinel {
  released = false;

  async release() {
    this.released = true;
  }
}

/** The page's visibility and the browser's wake lock, as the module reaches them. */
function fakeBrowser() {
  const page = Object.assign(new EventTarget(), { visibilityState: "visible" });
  /** @type {FakeSentinel[]} */
  const granted = [];
  const wakeLock = {
    /** @param {string} type */
    async request(type) {
      assert.equal(type, "screen");
      const sentinel = new FakeSentinel();
      granted.push(sentinel);
      return sentinel;
    },
  };
  /** @param {"visible"|"hidden"} state */
  const show = (state) => {
    page.visibilityState = state;
    if (state === "hidden") for (const sentinel of granted) sentinel.released = true;
    page.dispatchEvent(new Event("visibilitychange"));
  };
  return { page, wakeLock, granted, show };
}

/** Let the module's promise callbacks run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("the screen wake lock", () => {
  /** @type {ReturnType<typeof fakeBrowser>} */
  let browser;
  const saved = { document: globalThis.document, navigator: globalThis.navigator };

  beforeEach(() => {
    browser = fakeBrowser();
    Object.defineProperty(globalThis, "document", { value: browser.page, configurable: true });
    Object.defineProperty(globalThis, "navigator", { value: { wakeLock: browser.wakeLock }, configurable: true });
  });

  afterEach(() => {
    Object.defineProperty(globalThis, "document", { value: saved.document, configurable: true });
    Object.defineProperty(globalThis, "navigator", { value: saved.navigator, configurable: true });
  });

  test("is held from the start of the visit, once however often it is asked", async () => {
    const lock = new ScreenWakeLock();
    lock.hold();
    lock.hold();
    await settle();
    assert.equal(lock.held, true);
    assert.equal(browser.granted.length, 1);
  });

  test("is asked for again when the page shows after a phone call hid it", async () => {
    const lock = new ScreenWakeLock();
    lock.hold();
    await settle();
    browser.show("hidden");
    await settle();
    assert.equal(lock.held, false);
    assert.equal(browser.granted.length, 1, "not asked for while hidden");
    browser.show("visible");
    await settle();
    assert.equal(lock.held, true);
    assert.equal(browser.granted.length, 2);
  });

  test("is let go at the end, and not asked for again afterwards", async () => {
    const lock = new ScreenWakeLock();
    lock.hold();
    await settle();
    lock.release();
    await settle();
    assert.equal(browser.granted[0].released, true);
    browser.show("hidden");
    browser.show("visible");
    await settle();
    assert.equal(browser.granted.length, 1);
    assert.equal(lock.held, false);
  });

  test("a browser without Screen Wake Lock, or one that refuses it, leaves the visit alone", async () => {
    Object.defineProperty(globalThis, "navigator", { value: {}, configurable: true });
    const without = new ScreenWakeLock();
    without.hold();
    await settle();
    assert.equal(without.held, false);

    Object.defineProperty(globalThis, "navigator", {
      value: { wakeLock: { request: () => Promise.reject(new Error("NotAllowedError")) } },
      configurable: true,
    });
    const refused = new ScreenWakeLock();
    refused.hold();
    await settle();
    assert.equal(refused.held, false);
  });
});
