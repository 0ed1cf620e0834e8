// @ts-check
/**
 * When the consult page reads the clinical record: once when the panel opens, then after each
 * `clinical_updated` the server pushes and after the connection came back, never on a timer
 * (every read writes an access-audit row). No DOM: the unit tests drive it with an Emitter.
 */

/** @typedef {import("./consult-session.js").ClinicalUpdate} ClinicalUpdate */

/**
 * Where the changes come from: the session engine (consult-session.js), or a fake.
 * @typedef {{
 *   on(event: "clinical_updated", listener: (update: ClinicalUpdate) => void): () => void;
 *   on(event: "reconnected", listener: () => void): () => void;
 * }} ClinicalUpdates
 */

/**
 * Read the record now and again whenever the server says it changed. Reads never overlap:
 * changes announced during a read ask for one more read after it (however many there were),
 * so the last read always starts after the last change.
 * @param {ClinicalUpdates} updates
 * @param {object} reader
 * @param {() => Promise<void>} reader.read one read of the record; its errors are the reader's
 *   to show (a failed read is tried again at the next change)
 * @param {(update: ClinicalUpdate) => boolean} [reader.wants] whether a change concerns this
 *   reader at all (default: every change)
 * @returns {() => void} stops following (a read under way still finishes)
 */
export function followClinicalRecord(updates, { read, wants = () => true }) {
  let stopped = false;
  let reading = false;
  /** Whether a change was announced during the read under way. */
  let again = false;

  const request = async () => {
    if (stopped) return;
    if (reading) {
      // One read after the current one covers every change announced meanwhile.
      again = true;
      return;
    }
    reading = true;
    try {
      await read();
    } catch {
      // The reader shows its own errors; the next change tries again.
    } finally {
      reading = false;
    }
    if (again) {
      again = false;
      await request();
    }
  };

  const unsubscribe = [
    updates.on("clinical_updated", (update) => {
      if (wants(update)) request();
    }),
    updates.on("reconnected", () => request()),
  ];
  request();
  return () => {
    stopped = true;
    for (const off of unsubscribe) off();
  };
}
