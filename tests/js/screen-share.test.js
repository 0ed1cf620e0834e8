// @ts-check
/**
 * A screen share outlives a media restart: when the page replaces its lost peer connections,
 * a share still running is sent again on the new publisher connection; a share that ended
 * in the meantime is not.
 */
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, test } from "node:test";

import { ScreenShare } from "../../web_client/static/screen-share.js";
import { FakeTrack, fakeStream } from "./fakes.js";

/** A publisher connection that records the screens it was given. */
class FakePublisher {
  /** @type {unknown[]} */
  shared = [];

  /** @param {unknown} track */
  async shareScreen(track) {
    this.shared.push(track);
  }

  async stopScreen() {}
}

describe("a screen share after a media restart", () => {
  const saved = globalThis.navigator;
  /** @type {FakeTrack} */
  let screen;

  beforeEach(() => {
    // Each share is a new capture, as the browser gives it.
    const getDisplayMedia = async () => {
      screen = Object.assign(new FakeTrack("video"), { contentHint: "", addEventListener() {} });
      return fakeStream([screen]);
    };
    const mediaDevices = { getDisplayMedia };
    Object.defineProperty(globalThis, "navigator", { value: { mediaDevices }, configurable: true });
  });

  afterEach(() => {
    Object.defineProperty(globalThis, "navigator", { value: saved, configurable: true });
  });

  test("is sent again on the new publisher connection", async () => {
    let publisher = new FakePublisher();
    const share = new ScreenShare({ publisher: () => /** @type {any} */ (publisher), onChange() {} });
    await share.start();
    assert.deepEqual(publisher.shared, [screen]);

    publisher = new FakePublisher(); // the restart replaced the connection
    await share.resend();
    assert.deepEqual(publisher.shared, [screen]);
  });

  test("is not sent again once it was stopped, or ended by the browser", async () => {
    let publisher = new FakePublisher();
    const share = new ScreenShare({ publisher: () => /** @type {any} */ (publisher), onChange() {} });
    await share.start();
    await share.stop();
    publisher = new FakePublisher();
    await share.resend();
    assert.deepEqual(publisher.shared, []);

    await share.start();
    screen.stop(); // the browser ended the capture; its "ended" handler has not run yet
    publisher = new FakePublisher();
    await share.resend();
    assert.deepEqual(publisher.shared, []);
  });
});
