// @ts-check
/**
 * The page in a cluster (docs/cluster.md): which node its signaling talks to, and where it goes
 * when that node dies. First the route's decisions alone (a clock the test moves), then the
 * session engine following them against scripted nodes: a redirect on join, the media node's
 * death mid-visit, a node that sends the page back to the dead node, a cluster that never answers.
 * A node of an origin the page's own origin did not list is never followed.
 */
import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";

import { ConsultSession } from "../../web_client/static/consult-session.js";
import { NodeRoute } from "../../web_client/static/node-route.js";
import { SignalingError } from "../../web_client/static/signaling-error.js";
import { FakePeerConnection, FakeSignaling, FakeTrack, fakeStream, settle } from "./fakes.js";

const HOME = "https://node-c.example";
const MEDIA = "https://node-b.example";
const NEW_MEDIA = "https://node-a.example";
const FOREIGN = "https://node-x.example.net";
const TIMING = { firstDelayMs: 500, maxDelayMs: 4000, quickHops: 2, giveUpAfterMs: 60000 };
/** The cluster's origins, as the page's own origin lists them (`GET /api/cluster`). */
const TRUSTED = [MEDIA, NEW_MEDIA];

/** A route from HOME with a clock the test sets. */
function route() {
  const clock = { now: 0 };
  const nodeRoute = new NodeRoute(`${HOME}/`, { trusted: TRUSTED, now: () => clock.now, timing: TIMING });
  return { route: nodeRoute, clock };
}

describe("the route between the cluster's nodes", () => {
  test("a page that knows only its own node has nowhere to fail over to", () => {
    const { route: r } = route();
    assert.equal(r.current, HOME, "no trailing slash");
    assert.equal(r.canFailOver, false);
  });

  test("a redirect is followed at once, and the media node's death sends the page home at once", () => {
    const { route: r } = route();
    assert.deepEqual(r.redirected(`${MEDIA}/`), { url: MEDIA, delayMs: 0 });
    r.settled();
    assert.equal(r.canFailOver, true);
    assert.deepEqual(r.unreachable(), { url: HOME, delayMs: 0 });
  });

  test("home still sends the page to the dead node: home is asked again, later each time, never the dead node", () => {
    const { route: r, clock } = route();
    r.redirected(MEDIA);
    r.settled();
    r.unreachable();
    const waits = [];
    for (let i = 0; i < 6; i += 1) {
      clock.now += 1000;
      const hop = r.redirected(MEDIA);
      assert.equal(hop?.url, HOME);
      waits.push(hop?.delayMs);
    }
    assert.deepEqual(waits, [1000, 2000, 4000, 4000, 4000, 4000], "doubling, capped");
  });

  test("once home placed the consult elsewhere the page follows there", () => {
    const { route: r } = route();
    r.redirected(MEDIA);
    r.settled();
    r.unreachable();
    assert.deepEqual(r.redirected(NEW_MEDIA), { url: NEW_MEDIA, delayMs: 0 });
    r.settled();
    assert.deepEqual(r.known, [HOME, MEDIA, NEW_MEDIA]);
  });

  test("redirects that never end in a seat back off after the first hops (no ping-pong)", () => {
    const { route: r } = route();
    const hops = [MEDIA, NEW_MEDIA, MEDIA, NEW_MEDIA].map((url) => r.redirected(url));
    assert.deepEqual(
      hops.map((hop) => hop?.delayMs),
      [0, 0, 2000, 4000],
    );
  });

  test("when every known node failed, the one that failed longest ago is tried, after a backoff", () => {
    const { route: r, clock } = route();
    r.redirected(MEDIA);
    r.settled();
    clock.now = 10;
    assert.deepEqual(r.unreachable(), { url: HOME, delayMs: 0 });
    clock.now = 20;
    assert.deepEqual(r.unreachable(), { url: MEDIA, delayMs: 1000 });
    clock.now = 30;
    assert.deepEqual(r.unreachable(), { url: HOME, delayMs: 2000 });
  });

  test("the route gives up when no node gave a seat back for a minute", () => {
    const { route: r, clock } = route();
    r.redirected(MEDIA);
    r.settled();
    assert.ok(r.unreachable());
    clock.now = 59999;
    assert.ok(r.redirected(MEDIA));
    clock.now = 60000;
    assert.equal(r.redirected(MEDIA), null);
    assert.equal(r.unreachable(), null);
  });

  test("a node of an origin the page was not given is not followed: the page stays where it is", () => {
    const { route: r } = route();
    assert.equal(r.trusts(`${MEDIA}/`), true);
    assert.equal(r.trusts(`${HOME}/n/b`), true, "a path of the page's own origin");
    for (const url of [FOREIGN, "https://node-b.example:8443", "http://node-b.example", "javascript:alert(1)", "node-b"]) {
      assert.equal(r.trusts(url), false, url);
    }
    assert.deepEqual(r.redirected(FOREIGN), { url: HOME, delayMs: 500, refused: true });
    assert.deepEqual(r.known, [HOME], "not remembered as a node to fail over to");
    assert.equal(r.canFailOver, false);
  });

  test("a page given no list follows its consult only within its own origin", () => {
    const r = new NodeRoute(HOME);
    assert.equal(r.redirected(`${HOME}/n/b`)?.url, `${HOME}/n/b`);
    assert.equal(r.redirected(MEDIA)?.refused, true);
  });

  test("a seat ends the trouble: the next failure starts afresh", () => {
    const { route: r, clock } = route();
    r.redirected(MEDIA);
    r.unreachable();
    clock.now = 59000;
    r.settled();
    clock.now = 200000;
    assert.deepEqual(r.unreachable(), { url: MEDIA, delayMs: 0 }, "nothing failed since the seat");
  });
});

// ------------------------------------------------------------------ the session follows it

const DOCTOR = { participant_id: "p-doctor", name: "Dr. Wang Fang", role: "doctor", is_host: true, status: "joined" };

/** @param {string} resumeToken */
function seat(resumeToken) {
  return {
    ok: true,
    status: "joined",
    participant: DOCTOR,
    consult: { title: "Follow-up" },
    grants: { publish: true, admit: true, moderate: true, end: true, record: true },
    ice_servers: [],
    participants: [DOCTOR],
    resume_token: resumeToken,
  };
}

/** @param {string} nodeUrl */
function sentTo(nodeUrl) {
  return () => {
    throw new SignalingError("media_on_other_node", "elsewhere", { node_url: nodeUrl });
  };
}

/**
 * A cluster of scripted nodes: `nodes[url]` answers a connection to `url` (a fresh
 * FakeSignaling for each, with these answers), or refuses it (`null`: the node is dead).
 * @param {Record<string, Record<string, unknown>|null>} nodes
 */
function cluster(nodes) {
  /** @type {Array<{url: string, resumeToken: string|null, signaling: FakeSignaling|null}>} */
  const connections = [];
  /** @param {string} token @param {() => string|null} resumeToken @param {string} url */
  const connect = async (token, resumeToken, url) => {
    const answers = nodes[url];
    const signaling = answers ? new FakeSignaling({ publish: { ok: true, sdp: "answer" }, ...answers }) : null;
    connections.push({ url, resumeToken: resumeToken(), signaling });
    if (!signaling) throw new SignalingError("connection_failed", "refused");
    return signaling;
  };
  const session = new ConsultSession({
    consultId: "c-1",
    token: "jwt",
    connect,
    route: new NodeRoute(HOME, {
      trusted: TRUSTED,
      timing: { unreachableAfterMs: 20, firstDelayMs: 5, maxDelayMs: 20, quickHops: 2, giveUpAfterMs: 400 },
    }),
    createPeerConnection: FakePeerConnection.factory,
  });
  session.setLocalStream(fakeStream([new FakeTrack("audio"), new FakeTrack("video")]));
  /** @type {string[]} */
  const events = [];
  for (const name of ["reconnected", "ending", "node"]) {
    session.on(/** @type {any} */ (name), (/** @type {unknown} */ arg) => events.push(arg ? `${name} ${arg}` : name));
  }
  /** @param {string} url the connections made to `url`, in order */
  const to = (url) => connections.filter((c) => c.url === url);
  return { session, connections, to, events };
}

/**
 * Wait until `condition()` holds (timers of the route fire meanwhile), failing after 5 s.
 * @param {() => boolean} condition
 * @param {string} what
 */
async function until(condition, what) {
  const deadline = Date.now() + 5000;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`never: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
    await settle();
  }
}

beforeEach(() => {
  FakePeerConnection.created = [];
});

describe("the page follows the cluster", () => {
  test("a join that reached another node than the consult's is made again there, in the page", async () => {
    const { session, connections, events } = cluster({
      [HOME]: { join: sentTo(MEDIA) },
      [MEDIA]: { join: seat("resume-1") },
    });
    await session.join();
    assert.deepEqual(
      connections.map((c) => c.url),
      [HOME, MEDIA],
    );
    assert.equal(connections[0].signaling?.closed, true);
    assert.equal(session.signaling, connections[1].signaling);
    assert.equal(session.state.view, "consult");
    assert.equal(connections[1].signaling?.sent("publish").length, 1, "the media go to the media node");
    assert.deepEqual(events, [], "no error, no reload");
  });

  test("the media node dies mid-visit: home places the consult again, the page resumes there with new media", async () => {
    const nodes = /** @type {Record<string, Record<string, unknown>|null>} */ ({
      [HOME]: { join: sentTo(MEDIA), resume: sentTo(NEW_MEDIA) },
      [MEDIA]: { join: seat("resume-1") },
      [NEW_MEDIA]: { resume: seat("resume-2") },
    });
    const { session, connections, to, events } = cluster(nodes);
    await session.join();
    const onMedia = /** @type {FakeSignaling} */ (connections[1].signaling);
    nodes[MEDIA] = null; // killed: its socket drops, and it refuses connections from now on
    await onMedia.send("disconnect", "transport close");
    assert.equal(session.state.reconnecting, true);

    await until(() => events.includes("reconnected"), "the visit resumes");
    assert.deepEqual(
      connections.map((c) => c.url),
      [HOME, MEDIA, HOME, NEW_MEDIA],
      "home first, then where home placed the consult",
    );
    assert.deepEqual(
      connections.slice(2).map((c) => c.resumeToken),
      ["resume-1", "resume-1"],
      "the seat is taken back with the resume token, not joined again",
    );
    const onNewMedia = /** @type {FakeSignaling} */ (to(NEW_MEDIA)[0].signaling);
    assert.deepEqual(onNewMedia.sent("resume"), [{ consult_id: "c-1", resume_token: "resume-1" }]);
    assert.equal(onNewMedia.sent("publish").at(-1)?.restart, true, "new peer connections on the new node");
    assert.equal(session.resumeToken, "resume-2");
    assert.equal(session.state.reconnecting, false);
    assert.equal(session.state.view, "consult");
    assert.deepEqual(events, [`node ${HOME}`, `node ${NEW_MEDIA}`, "reconnected"]);
  });

  test("home sends the page back to the dead node until it notices the death: the page asks home again", async () => {
    let resumes = 0;
    const nodes = /** @type {Record<string, Record<string, unknown>|null>} */ ({
      [HOME]: {
        join: sentTo(MEDIA),
        // The dead node's heartbeat has not expired yet twice; then home takes the consult.
        resume: () => (++resumes <= 2 ? sentTo(MEDIA)() : seat("resume-2")),
      },
      [MEDIA]: { join: seat("resume-1") },
    });
    const { session, connections, to, events } = cluster(nodes);
    await session.join();
    nodes[MEDIA] = null;
    await /** @type {FakeSignaling} */ (connections[1].signaling).send("disconnect", "ping timeout");

    await until(() => events.includes("reconnected"), "the visit resumes on home");
    assert.equal(to(MEDIA).length, 1, "never back to the dead node");
    assert.equal(to(HOME).length, 4, "the join, then three resumes");
    assert.equal(session.signaling, to(HOME)[3].signaling);
    assert.equal(to(HOME)[3].signaling?.sent("publish").at(-1)?.restart, true);
  });

  test("a cluster that never answers again: the page stops after the route gives up, without a loop", async () => {
    const nodes = /** @type {Record<string, Record<string, unknown>|null>} */ ({
      [HOME]: { join: sentTo(MEDIA) },
      [MEDIA]: { join: seat("resume-1") },
    });
    const { session, connections, events } = cluster(nodes);
    /** @type {Array<string|undefined>} */
    const errors = [];
    session.on("error", (code) => errors.push(code));
    await session.join();
    nodes[MEDIA] = null;
    nodes[HOME] = null;
    await /** @type {FakeSignaling} */ (connections[1].signaling).send("disconnect", "transport close");

    await until(() => session.state.view === "ended", "the session ends");
    assert.equal(session.state.endedReason, "lost");
    assert.equal(errors.at(-1), "connection_lost");
    assert.ok(connections.length < 40, `bounded: ${connections.length} connections`);
    const attempts = connections.length;
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(connections.length, attempts, "nothing after the end");
    assert.ok(events.includes("ending lost"), "the page stops its media");
  });

  test("a join sent to a node of a foreign origin: the page shows why and stays, connecting nowhere else", async () => {
    const { session, connections, events } = cluster({ [HOME]: { join: sentTo(FOREIGN) } });
    /** @type {Array<string|undefined>} */
    const errors = [];
    session.on("error", (code) => errors.push(code));
    await session.join();
    assert.deepEqual(errors, ["untrusted_node"]);
    assert.deepEqual(connections.map((c) => c.url), [HOME], "nothing sent to the foreign node");
    assert.equal(session.state.view, "join", "ready to try again");
    assert.equal(session.joining, false);
    assert.deepEqual(events, []);
  });

  test("a resume sent to a foreign origin: the page says so once and asks its own node again", async () => {
    let resumes = 0;
    const nodes = /** @type {Record<string, Record<string, unknown>|null>} */ ({
      [HOME]: {
        join: sentTo(MEDIA),
        resume: () => (++resumes <= 3 ? sentTo(FOREIGN)() : sentTo(NEW_MEDIA)()),
      },
      [MEDIA]: { join: seat("resume-1") },
      [NEW_MEDIA]: { resume: seat("resume-2") },
    });
    const { session, connections, events } = cluster(nodes);
    /** @type {Array<string|undefined>} */
    const errors = [];
    session.on("error", (code) => errors.push(code));
    await session.join();
    nodes[MEDIA] = null;
    await /** @type {FakeSignaling} */ (connections[1].signaling).send("disconnect", "transport close");

    await until(() => events.includes("reconnected"), "the visit resumes on a trusted node");
    assert.deepEqual(
      errors.filter((code) => code !== "reconnecting"),
      ["untrusted_node"],
      "one notice, not one per attempt",
    );
    assert.ok(!connections.some((c) => c.url === FOREIGN), "never connected to the foreign node");
    assert.equal(connections.at(-1)?.url, NEW_MEDIA);
    assert.equal(session.state.view, "consult");
  });

  test("a page on a single node leaves its reconnection to Socket.IO: no failover", async () => {
    const { session, connections } = cluster({ [HOME]: { join: seat("resume-1") } });
    await session.join();
    await /** @type {FakeSignaling} */ (connections[0].signaling).send("disconnect", "transport close");
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(connections.length, 1);
    assert.equal(session.state.reconnecting, true);
    assert.equal(session.state.view, "consult");
  });

  test("the page's own server handlers follow the signaling to the next node", async () => {
    const nodes = /** @type {Record<string, Record<string, unknown>|null>} */ ({
      [HOME]: { join: sentTo(MEDIA), resume: seat("resume-2") },
      [MEDIA]: { join: seat("resume-1") },
    });
    const { session, connections, events } = cluster(nodes);
    await session.join();
    /** @type {unknown[]} */
    const states = [];
    session.onServer("recording_state", (state) => states.push(state));
    await /** @type {FakeSignaling} */ (connections[1].signaling).send("recording_state", { recording: true });
    nodes[MEDIA] = null;
    await /** @type {FakeSignaling} */ (connections[1].signaling).send("disconnect", "transport close");
    await until(() => events.includes("reconnected"), "resumed on home");
    await /** @type {FakeSignaling} */ (connections[2].signaling).send("recording_state", { recording: false });
    assert.deepEqual(states, [{ recording: true }, { recording: false }]);
  });
});
