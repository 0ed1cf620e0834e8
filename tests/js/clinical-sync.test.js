// @ts-check
/**
 * The consult page reads the clinical record when its panel opens and when the server pushes
 * `clinical_updated`, never on a timer; and the panel's rules for what a read changes.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import "./browser-fetch.js";
import { followClinicalRecord } from "../../web_client/static/clinical-sync.js";
import { afterRead, doctorConcerns, latest, patientConcerns } from "../../web_client/static/clinical-panel.js";
import { Emitter } from "../../web_client/static/emitter.js";
import { settle } from "./fakes.js";

/** @typedef {import("../../web_client/static/consult-session.js").ClinicalUpdate} ClinicalUpdate */

/**
 * A change of the consult's prescription.
 * @param {string} change
 * @returns {ClinicalUpdate}
 */
const rxUpdate = (change) => ({ consult_id: "c-1", document: "prescription", id: "rx-1", change });

/**
 * The session's events, and a reader whose reads the test finishes one by one.
 */
function setup() {
  /** @type {Emitter<{clinical_updated: [ClinicalUpdate], reconnected: []}>} */
  const updates = new Emitter();
  /** @type {Array<() => void>} the reads under way, each finished by calling it */
  const open = [];
  let reads = 0;
  const read = () => {
    reads += 1;
    return new Promise((resolve) => open.push(() => resolve(undefined)));
  };
  const finishRead = async () => {
    open.shift()?.();
    await settle();
  };
  return { updates, read, finishRead, reads: () => reads };
}

describe("following the clinical record", () => {
  test("the record is read once when the panel opens, and not again without a change", async (t) => {
    t.mock.timers.enable({ apis: ["setInterval", "setTimeout"] });
    const { updates, read, finishRead, reads } = setup();
    followClinicalRecord(updates, { read });
    await finishRead();
    t.mock.timers.tick(60 * 60 * 1000);
    await settle();
    assert.equal(reads(), 1, "no read on a timer");
  });

  test("one clinical_updated event causes exactly one read", async () => {
    const { updates, read, finishRead, reads } = setup();
    followClinicalRecord(updates, { read });
    await finishRead();
    updates.emit("clinical_updated", rxUpdate("signed"));
    await finishRead();
    assert.equal(reads(), 2);
  });

  test("changes announced during a read cause one more read after it, not one each", async () => {
    const { updates, read, finishRead, reads } = setup();
    followClinicalRecord(updates, { read });
    updates.emit("clinical_updated", rxUpdate("signed"));
    updates.emit("clinical_updated", rxUpdate("reviewed"));
    updates.emit("reconnected");
    assert.equal(reads(), 1, "reads never overlap");
    await finishRead();
    assert.equal(reads(), 2);
    await finishRead();
    assert.equal(reads(), 2);
  });

  test("changes the reader does not want cause no read", async () => {
    const { updates, read, finishRead, reads } = setup();
    followClinicalRecord(updates, { read, wants: (update) => update.change === "reviewed" });
    await finishRead();
    updates.emit("clinical_updated", rxUpdate("updated"));
    await finishRead();
    assert.equal(reads(), 1);
    updates.emit("clinical_updated", rxUpdate("reviewed"));
    await finishRead();
    assert.equal(reads(), 2);
  });

  test("after a reconnection the record is read again (changes may have been missed)", async () => {
    const { updates, read, finishRead, reads } = setup();
    followClinicalRecord(updates, { read, wants: () => false });
    await finishRead();
    updates.emit("reconnected");
    await finishRead();
    assert.equal(reads(), 2);
  });

  test("a failed read does not stop the following ones", async () => {
    const { updates } = setup();
    let reads = 0;
    followClinicalRecord(updates, {
      read: async () => {
        reads += 1;
        throw new Error("connection failed");
      },
    });
    await settle();
    updates.emit("clinical_updated", rxUpdate("signed"));
    await settle();
    assert.equal(reads, 2);
  });

  test("once stopped, changes cause no read", async () => {
    const { updates, read, finishRead, reads } = setup();
    const stop = followClinicalRecord(updates, { read });
    await finishRead();
    stop();
    updates.emit("clinical_updated", rxUpdate("signed"));
    updates.emit("reconnected");
    await settle();
    assert.equal(reads(), 1);
  });
});

describe("what a change means to each panel", () => {
  const draft = { id: "rx-1", status: "draft" };
  const signed = { id: "rx-1", status: "signed", delivery: { status: "pending" } };

  test("the doctor's panel reads for its own documents' signature, review and delivery", () => {
    assert.equal(doctorConcerns(rxUpdate("signed"), null, draft), true);
    assert.equal(doctorConcerns(rxUpdate("reviewed"), null, signed), true);
    assert.equal(doctorConcerns(rxUpdate("delivered"), null, signed), true);
  });

  test("the doctor's panel does not read for its own draft saves or for documents it does not show", () => {
    assert.equal(doctorConcerns(rxUpdate("updated"), null, draft), false);
    assert.equal(doctorConcerns(rxUpdate("created"), null, null), false);
    assert.equal(doctorConcerns({ ...rxUpdate("signed"), id: "rx-2" }, null, draft), false);
    assert.equal(doctorConcerns({ ...rxUpdate("signed"), document: "note" }, null, draft), false);
  });

  test("the patient's panel reads when a prescription is signed, reviewed or amended, not for drafts or deliveries", () => {
    assert.equal(patientConcerns(rxUpdate("reviewed")), true);
    assert.equal(patientConcerns(rxUpdate("amended")), true);
    assert.equal(patientConcerns(rxUpdate("updated")), false);
    assert.equal(patientConcerns(rxUpdate("created")), false);
    assert.equal(patientConcerns(rxUpdate("delivered")), false);
    assert.equal(patientConcerns({ ...rxUpdate("signed"), document: "note" }), false);
  });
});

describe("merging what a read returns", () => {
  const draft = { id: "n-1", status: "draft" };
  const pending = { id: "n-1", status: "signed", delivery: { status: "pending" } };
  const delivered = { id: "n-1", status: "signed", delivery: { status: "delivered" } };
  const approved = { id: "n-1", status: "approved", delivery: { status: "pending" } };

  test("a signed, reviewed or delivered version replaces the one shown", () => {
    assert.equal(afterRead(draft, [pending]), pending);
    assert.equal(afterRead(pending, [delivered]), delivered);
    assert.equal(afterRead(delivered, [approved]), approved);
  });

  test("a draft being edited keeps the page's own version", () => {
    const edited = { ...draft, plan: "typed here" };
    assert.equal(afterRead(edited, [draft]), edited);
  });

  test("an answer that arrives late never takes a document back", () => {
    assert.equal(afterRead(delivered, [pending]), delivered);
    assert.equal(afterRead(pending, [draft]), pending);
    assert.equal(latest(delivered, pending), delivered, "a sign's answer after the delivery's read");
    assert.equal(latest(draft, pending), pending);
  });

  test("documents the page does not show are left alone", () => {
    assert.equal(afterRead(null, [pending]), null);
    assert.equal(afterRead(draft, [{ ...pending, id: "n-2" }]), draft);
  });
});
