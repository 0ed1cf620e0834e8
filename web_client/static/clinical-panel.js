// @ts-check
/**
 * The clinical side panel of the consult page: for the consult's doctors the note (SOAP,
 * ICD-10 diagnoses) and the e-prescription with autosave, signing, safety warnings and
 * delivery status; for the patient their approved prescription. The record is read when the
 * panel opens and again when the server says it changed (clinical-sync.js), never on a timer.
 */
import { onLanguageChange, t, translateDocument } from "./i18n.js";
import { describeItem, el } from "./clinical-api.js";
import { followClinicalRecord } from "./clinical-sync.js";
import { find } from "./dom.js";
import { api } from "./rest.js";

/** @typedef {import("./clinical-api.js").PrescriptionItem} PrescriptionItem */
/** @typedef {import("./clinical-sync.js").ClinicalUpdates} ClinicalUpdates */
/** @typedef {import("./consult-session.js").ClinicalUpdate} ClinicalUpdate */
/** @typedef {import("./rest.js").ApiError} ApiError */
/**
 * What the two documents share, as the server describes them.
 * @typedef {{id: string, status: string, delivery?: {status: string}|null,
 *            review?: {outcome: string, pharmacist: {name: string}, reason?: string|null}|null}} ClinicalDocument
 */
/**
 * @typedef {ClinicalDocument & {subjective?: string, objective?: string, assessment?: string,
 *            plan?: string, diagnoses: Diagnosis[]}} Note
 * @typedef {{code: string, text: string}} Diagnosis
 * @typedef {ClinicalDocument & {items: PrescriptionItem[], prescriber: {name: string}}} Prescription
 */

const AUTOSAVE_DELAY_MS = 800;
const SOAP = ["subjective", "objective", "assessment", "plan"];
const ROUTES = ["oral", "sublingual", "topical", "inhaled", "intravenous", "intramuscular",
  "subcutaneous", "rectal", "ophthalmic", "nasal", "transdermal"];
const FREQUENCIES = ["QD", "BID", "TID", "QID", "Q4H", "Q6H", "Q8H", "Q12H", "QHS", "QW", "PRN"];
const ITEM_TEXT = ["strength", "dose", "dose_unit", "instructions"];
const ITEM_NUMBERS = ["duration_days", "quantity", "refills"];

/**
 * Mount the panel for this participant.
 * @param {HTMLElement|null} container the `<aside id="clinical-panel">`
 * @param {{consultId: string, token: string, role?: string, isHost?: boolean, joinLink?: boolean,
 *          updates: ClinicalUpdates}} who `updates`: the session, which says when the record changed;
 *          `joinLink`: the token is a join link, which reads no clinical document (docs/security.md)
 * @returns {{close: () => void}|null}
 */
export function mountClinicalPanel(container, { consultId, token, role, isHost, joinLink, updates }) {
  if (!container || joinLink) return null;
  if (role === "patient") return new PatientPrescriptions(container, consultId, token, updates);
  if (isHost || role === "doctor" || role === "expert") return new DoctorPanel(container, consultId, token, updates);
  return null;
}

/**
 * A form field: a label, then its control.
 * @param {string} id the control's id
 * @param {string} key the label's translation key
 * @param {HTMLElement} control
 */
function labelled(id, key, control) {
  return el("div", { class: "field" }, [el("label", { for: id, "data-i18n": key }, [t(key)]), control]);
}

/**
 * `fn` called once `ms` after the last call; `flush()` calls it now.
 * @template T
 * @param {() => T} fn
 * @param {number} ms
 * @returns {(() => void) & {flush: () => T}}
 */
function debounce(fn, ms) {
  /** @type {ReturnType<typeof setTimeout>|undefined} */
  let timer;
  const wrapped = () => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
  wrapped.flush = () => {
    clearTimeout(timer);
    return fn();
  };
  return wrapped;
}

/** @type {Record<string, number>} how far a document's lifecycle has gone */
const STATUS_RANK = { draft: 0, signed: 1, approved: 2, rejected: 2 };
/** @type {Record<string, number>} and its latest delivery to the record store */
const DELIVERY_RANK = { pending: 0, failed: 1, delivered: 2 };

/**
 * Whether `doc` is an older state of the document than `than`: answers may arrive out of
 * order (a sign's answer after the read that an event about the delivery started).
 * @param {ClinicalDocument} doc
 * @param {ClinicalDocument} than
 */
function isBehind(doc, than) {
  const status = (STATUS_RANK[doc.status] ?? 0) - (STATUS_RANK[than.status] ?? 0);
  if (status !== 0) return status < 0;
  const delivery = (/** @type {ClinicalDocument} */ d) => (d.delivery ? (DELIVERY_RANK[d.delivery.status] ?? 0) : -1);
  return delivery(doc) < delivery(than);
}

/**
 * The state of a document to show, given the one shown and one the server just sent
 * (the answer to a write, or a read): the server's, unless it is older.
 * @template {ClinicalDocument} D
 * @param {D|null} held
 * @param {D} incoming
 * @returns {D}
 */
export function latest(held, incoming) {
  return held && held.id === incoming.id && isBehind(incoming, held) ? held : incoming;
}

/**
 * After a read of the record: the server's version of a document this page shows, once it
 * left the draft state (signed, reviewed, delivered). A draft stays as this page has it: its
 * own edits are newer, or on their way.
 * @template {ClinicalDocument} D
 * @param {D|null} held
 * @param {D[]} read
 * @returns {D|null}
 */
export function afterRead(held, read) {
  const found = held && read.find((doc) => doc.id === held.id);
  return found && found.status !== "draft" ? latest(held, found) : held;
}

/**
 * Whether a change the server announced can change what the doctor's panel shows: one of its
 * two documents, except a draft's own saves (their answers already came back to this page).
 * Other documents are not shown (the panel keeps the ones it opened with or created).
 * @param {ClinicalUpdate} update
 * @param {ClinicalDocument|null} note the panel's note
 * @param {ClinicalDocument|null} prescription the panel's prescription
 * @returns {boolean}
 */
export function doctorConcerns(update, note, prescription) {
  const held = update.document === "note" ? note : update.document === "prescription" ? prescription : null;
  if (!held || held.id !== update.id) return false;
  return !(held.status === "draft" && (update.change === "created" || update.change === "updated"));
}

/** Changes that never alter the patient's list: drafts they cannot see, and deliveries to the record. */
const NOT_FOR_PATIENTS = new Set(["created", "updated", "delivered"]);

/**
 * Whether a change can change the patient's list of approved prescriptions: a prescription's
 * signature, review or amendment; not its drafts nor its delivery to the hospital record.
 * @param {ClinicalUpdate} update
 * @returns {boolean}
 */
export function patientConcerns(update) {
  return update.document === "prescription" && !NOT_FOR_PATIENTS.has(update.change);
}

/**
 * The code of an error, if it has one.
 * @param {unknown} err
 * @returns {string|undefined}
 */
const codeOf = (err) => /** @type {{code?: string}|null|undefined} */ (err)?.code;

class DoctorPanel {
  /**
   * @param {HTMLElement} container
   * @param {string} consultId
   * @param {string} token
   * @param {ClinicalUpdates} updates
   */
  constructor(container, consultId, token, updates) {
    this.container = container;
    this.consultId = consultId;
    this.token = token;
    /** @type {Note|null} */
    this.note = null;
    /** @type {Prescription|null} */
    this.prescription = null;
    /** @type {Promise<void>} */
    this.noteSaving = Promise.resolve();
    /** @type {Promise<void>} */
    this.rxSaving = Promise.resolve();
    this.diagnosisList = el("ul", { id: "diagnosis-list", class: "clinical-list" });
    this.itemList = el("ol", { id: "rx-items", class: "clinical-list" });
    this.noteStatus = el("p", { id: "note-status", role: "status", "aria-live": "polite" });
    this.rxStatus = el("p", { id: "rx-status", role: "status", "aria-live": "polite" });
    this.findings = el("ul", { id: "rx-findings" });
    this.overrideReason = el("textarea", { id: "rx-override-reason", rows: "2", maxlength: "1000" });
    this.safety = el("div", { id: "rx-safety", class: "clinical-safety", role: "alert", hidden: true }, [
      el("p", { "data-i18n": "rx_safety_heading" }, [t("rx_safety_heading")]),
      this.findings,
      labelled("rx-override-reason", "rx_override_label", this.overrideReason),
      el("button", { id: "rx-override-sign", type: "button", class: "button danger", "data-i18n": "rx_override_sign" }, [t("rx_override_sign")]),
    ]);
    this.build();
    this.saveNoteSoon = debounce(() => this.saveNote(), AUTOSAVE_DELAY_MS);
    this.saveRxSoon = debounce(() => this.savePrescription(), AUTOSAVE_DELAY_MS);
    let first = true;
    this.stopFollowing = followClinicalRecord(updates, {
      read: () => {
        const read = first ? this.load() : this.refresh();
        first = false;
        return read;
      },
      wants: (update) => doctorConcerns(update, this.note, this.prescription),
    });
    onLanguageChange(() => this.render());
  }

  /** Lay the panel out in its container and wire its controls. */
  build() {
    const c = this.container;
    c.hidden = false;
    c.classList.add("clinical-panel");
    c.setAttribute("aria-labelledby", "clinical-heading");
    const soap = SOAP.map((part) =>
      labelled(`note-${part}`, `note_${part}`, el("textarea", { id: `note-${part}`, name: part, rows: "3", maxlength: "20000" })),
    );
    c.replaceChildren(
      el("h2", { id: "clinical-heading", "data-i18n": "clinical_heading" }, [t("clinical_heading")]),
      el("section", { id: "note-section", "aria-labelledby": "note-heading" }, [
        el("h3", { id: "note-heading", "data-i18n": "note_heading" }, [t("note_heading")]),
        ...soap,
        el("fieldset", { id: "diagnoses" }, [
          el("legend", { "data-i18n": "diagnoses_legend" }, [t("diagnoses_legend")]),
          this.diagnosisList,
          el("button", { id: "add-diagnosis", type: "button", class: "button", "data-i18n": "add_diagnosis" }, [t("add_diagnosis")]),
        ]),
        this.noteStatus,
        el("div", { class: "clinical-actions" }, [
          el("button", { id: "note-save", type: "button", class: "button", "data-i18n": "save_draft" }, [t("save_draft")]),
          el("button", { id: "note-sign", type: "button", class: "button primary", "data-i18n": "sign_note" }, [t("sign_note")]),
        ]),
      ]),
      el("section", { id: "rx-section", "aria-labelledby": "rx-heading" }, [
        el("h3", { id: "rx-heading", "data-i18n": "rx_heading" }, [t("rx_heading")]),
        this.itemList,
        el("button", { id: "rx-add-item", type: "button", class: "button", "data-i18n": "rx_add_item" }, [t("rx_add_item")]),
        this.safety,
        this.rxStatus,
        el("div", { class: "clinical-actions" }, [
          el("button", { id: "rx-save", type: "button", class: "button", "data-i18n": "save_draft" }, [t("save_draft")]),
          el("button", { id: "rx-sign", type: "button", class: "button primary", "data-i18n": "sign_prescription" }, [t("sign_prescription")]),
        ]),
      ]),
    );
    /** @param {string} selector */
    const q = (selector) => find(c, selector);
    const noteSection = q("#note-section");
    noteSection.addEventListener("input", () => this.noteEditable() && this.saveNoteSoon());
    q("#add-diagnosis").addEventListener("click", () => this.addDiagnosis());
    q("#note-save").addEventListener("click", () => this.saveNoteSoon.flush());
    q("#note-sign").addEventListener("click", () => this.signNote());
    const rxSection = q("#rx-section");
    rxSection.addEventListener("input", (event) => {
      if (event.target === this.overrideReason) return;
      if (this.rxEditable()) this.saveRxSoon();
    });
    rxSection.addEventListener("change", (event) => {
      if (event.target instanceof HTMLSelectElement && this.rxEditable()) this.saveRxSoon();
    });
    q("#rx-add-item").addEventListener("click", () => this.addItem());
    q("#rx-save").addEventListener("click", () => this.saveRxSoon.flush());
    q("#rx-sign").addEventListener("click", () => this.signPrescription(null));
    q("#rx-override-sign").addEventListener("click", () => {
      const reason = this.overrideReason.value.trim();
      if (!reason) {
        this.overrideReason.setAttribute("aria-invalid", "true");
        this.overrideReason.focus();
        return;
      }
      this.signPrescription(reason);
    });
    this.addDiagnosis();
    this.addItem();
  }

  /** @param {Diagnosis} [diagnosis] */
  addDiagnosis(diagnosis = { code: "", text: "" }) {
    const index = this.diagnosisList.children.length;
    const code = el("input", { id: `diagnosis-code-${index}`, name: "code", autocomplete: "off", maxlength: "12", value: diagnosis.code });
    const text = el("input", { id: `diagnosis-text-${index}`, name: "text", autocomplete: "off", maxlength: "200", value: diagnosis.text });
    const remove = el("button", { type: "button", class: "button", "data-i18n": "remove" }, [t("remove")]);
    const li = el("li", { class: "diagnosis" }, [
      labelled(code.id, "diagnosis_code", code),
      labelled(text.id, "diagnosis_text", text),
      remove,
    ]);
    remove.addEventListener("click", () => {
      li.remove();
      if (this.noteEditable()) this.saveNoteSoon();
    });
    this.diagnosisList.append(li);
  }

  /** @param {PrescriptionItem} [item] */
  addItem(item = {}) {
    const index = this.itemList.children.length;
    /** @type {Record<string, unknown>} */
    const fields = item;
    /** @param {string} name */
    const id = (name) => `rx-${index}-${name}`;
    /**
     * @param {string} name
     * @param {Record<string, string>} [attrs]
     */
    const input = (name, attrs = {}) =>
      el("input", { id: id(name), name, autocomplete: "off", value: String(fields[name] ?? ""), ...attrs });
    /**
     * @param {string} name
     * @param {string[]} values
     * @param {string} prefix
     */
    const select = (name, values, prefix) => {
      const s = el("select", { id: id(name), name }, [
        el("option", { value: "" }, [""]),
        ...values.map((v) => el("option", { value: v, "data-i18n": `${prefix}_${v}` }, [t(`${prefix}_${v}`)])),
      ]);
      s.value = String(fields[name] ?? "");
      return s;
    };
    const li = el("li", { class: "rx-item", "data-item": String(index) }, [
      el("fieldset", {}, [
        el("legend", {}, [t("rx_item_legend", { n: index + 1 })]),
        labelled(id("drug_code"), "rx_drug_code", input("drug_code", { value: item.drug?.code ?? "", maxlength: "64" })),
        labelled(id("drug_name"), "rx_drug_name", input("drug_name", { value: item.drug?.name ?? "", maxlength: "200" })),
        labelled(id("strength"), "rx_strength", input("strength", { maxlength: "64" })),
        labelled(id("dose"), "rx_dose", input("dose", { inputmode: "decimal" })),
        labelled(id("dose_unit"), "rx_dose_unit", input("dose_unit", { maxlength: "32" })),
        labelled(id("route"), "rx_route", select("route", ROUTES, "route")),
        labelled(id("frequency"), "rx_frequency", select("frequency", FREQUENCIES, "frequency")),
        labelled(id("duration_days"), "rx_duration", input("duration_days", { type: "number", min: "1", max: "365" })),
        labelled(id("quantity"), "rx_quantity", input("quantity", { type: "number", min: "1", max: "1000" })),
        labelled(id("refills"), "rx_refills", input("refills", { type: "number", min: "0", max: "12" })),
        labelled(id("instructions"), "rx_instructions", input("instructions", { maxlength: "500" })),
      ]),
    ]);
    this.itemList.append(li);
  }

  /** @returns {Record<string, string|Diagnosis[]>} the note as the form has it */
  noteBody() {
    /** @type {Record<string, string>} */
    const parts = {};
    for (const part of SOAP) parts[part] = find(this.container, `#note-${part}`, HTMLTextAreaElement).value;
    const diagnoses = [...this.diagnosisList.children]
      .map((li) => ({ code: find(li, "[name=code]", HTMLInputElement).value.trim(), text: find(li, "[name=text]", HTMLInputElement).value.trim() }))
      .filter((d) => d.code || d.text);
    return { ...parts, diagnoses };
  }

  /** @returns {PrescriptionItem[]} the items the form has, empty ones left out */
  itemsBody() {
    return [...this.itemList.children].map((li) => {
      /** @param {string} name */
      const value = (name) => /** @type {HTMLInputElement|HTMLSelectElement} */ (li.querySelector(`[name=${name}]`)).value.trim();
      /** @type {Record<string, unknown>} */
      const item = {};
      if (value("drug_code") || value("drug_name")) item.drug = { code: value("drug_code"), name: value("drug_name") };
      for (const name of [...ITEM_TEXT, "route", "frequency"]) if (value(name)) item[name] = value(name);
      for (const name of ITEM_NUMBERS) if (value(name)) item[name] = Number(value(name));
      return /** @type {PrescriptionItem} */ (item);
    }).filter((item) => Object.keys(item).length > 0);
  }

  noteEditable() {
    return !this.note || this.note.status === "draft";
  }

  rxEditable() {
    return !this.prescription || this.prescription.status === "draft";
  }

  /**
   * The consult's notes and prescriptions this participant may read (one audited read).
   * @returns {Promise<{notes: Note[], prescriptions: Prescription[]}>}
   */
  readRecord() {
    return api(this.token, "GET", `/api/consults/${encodeURIComponent(this.consultId)}/clinical`);
  }

  /** The first read: the latest note and prescription fill the form. */
  async load() {
    try {
      const { notes, prescriptions } = await this.readRecord();
      this.note = notes.at(-1) ?? null;
      this.prescription = prescriptions.at(-1) ?? null;
      if (this.note) this.fillNote(this.note);
      if (this.prescription) this.fillItems(this.prescription.items);
    } catch (err) {
      this.noteStatus.textContent = t("clinical_error", { code: codeOf(err) ?? "unknown" });
    }
    this.render();
  }

  /** A later read: signed documents take the server's state (signature, review, delivery). */
  async refresh() {
    let record;
    try {
      record = await this.readRecord();
    } catch {
      // Read again at the next change.
      return;
    }
    this.note = afterRead(this.note, record.notes);
    this.prescription = afterRead(this.prescription, record.prescriptions);
    this.render();
  }

  /** @param {Note} note */
  fillNote(note) {
    /** @type {Record<string, unknown>} */
    const parts = note;
    for (const part of SOAP) find(this.container, `#note-${part}`, HTMLTextAreaElement).value = String(parts[part] ?? "");
    this.diagnosisList.replaceChildren();
    for (const d of note.diagnoses.length ? note.diagnoses : [{ code: "", text: "" }]) this.addDiagnosis(d);
  }

  /** @param {PrescriptionItem[]} items */
  fillItems(items) {
    this.itemList.replaceChildren();
    for (const item of items.length ? items : [{}]) this.addItem(item);
  }

  saveNote() {
    this.noteSaving = this.noteSaving.then(async () => {
      if (!this.noteEditable()) return;
      try {
        this.note = this.note
          ? await api(this.token, "PATCH", `/api/notes/${this.note.id}`, this.noteBody())
          : await api(this.token, "POST", `/api/consults/${encodeURIComponent(this.consultId)}/notes`, this.noteBody());
        this.showFieldErrors(find(this.container, "#note-section"), []);
        this.noteStatus.textContent = t("draft_saved");
      } catch (err) {
        this.showProblem(this.noteStatus, find(this.container, "#note-section"), err);
      }
    });
    return this.noteSaving;
  }

  savePrescription() {
    this.rxSaving = this.rxSaving.then(async () => {
      if (!this.rxEditable()) return;
      const body = { items: this.itemsBody() };
      try {
        this.prescription = this.prescription
          ? await api(this.token, "PATCH", `/api/prescriptions/${this.prescription.id}`, body)
          : await api(this.token, "POST", `/api/consults/${encodeURIComponent(this.consultId)}/prescriptions`, body);
        this.showFieldErrors(find(this.container, "#rx-section"), []);
        this.rxStatus.textContent = t("draft_saved");
      } catch (err) {
        this.showProblem(this.rxStatus, find(this.container, "#rx-section"), err);
      }
    });
    return this.rxSaving;
  }

  async signNote() {
    await this.saveNoteSoon.flush();
    if (!this.note || this.note.status !== "draft") return;
    try {
      this.note = latest(this.note, await api(this.token, "POST", `/api/notes/${this.note.id}/sign`));
    } catch (err) {
      this.showProblem(this.noteStatus, find(this.container, "#note-section"), err);
      return;
    }
    this.render();
  }

  /** @param {string|null} overrideReason the doctor's reason to sign despite safety warnings */
  async signPrescription(overrideReason) {
    await this.saveRxSoon.flush();
    if (!this.prescription || this.prescription.status !== "draft") return;
    const body = overrideReason ? { override: { reason: overrideReason } } : {};
    try {
      this.prescription = latest(this.prescription, await api(this.token, "POST", `/api/prescriptions/${this.prescription.id}/sign`, body));
    } catch (err) {
      if (codeOf(err) === "safety_check_failed") {
        /** @type {Array<{kind: string, item: number, message: string}>} */
        const findings = /** @type {ApiError} */ (err).details ?? [];
        this.findings.replaceChildren(...findings.map((f) => el("li", { "data-kind": f.kind }, [
          t(`safety_${f.kind}`, { n: f.item + 1 }), " ", f.message,
        ])));
        this.safety.hidden = false;
        this.rxStatus.textContent = t("rx_blocked");
        this.overrideReason.focus();
        return;
      }
      this.showProblem(this.rxStatus, find(this.container, "#rx-section"), err);
      return;
    }
    this.safety.hidden = true;
    this.render();
  }

  /**
   * Show a failed write: the fields it names marked invalid, the problem in `status`.
   * @param {HTMLElement} status
   * @param {HTMLElement} section
   * @param {unknown} err
   */
  showProblem(status, section, err) {
    const problem = /** @type {Partial<ApiError>} */ (err);
    const details = Array.isArray(problem.details) ? problem.details : [];
    this.showFieldErrors(section, details);
    status.textContent = problem.status === 422 ? t("fix_fields", { count: details.length }) : t("clinical_error", { code: String(problem.code) });
  }

  /**
   * @param {HTMLElement} section
   * @param {Array<{field: string}>} details the server's field errors (`items.0.dose`, …)
   */
  showFieldErrors(section, details) {
    for (const node of section.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
    for (const { field } of details) {
      const parts = String(field).split(".");
      let target = null;
      if (parts[0] === "items") {
        const name = parts[2] === "drug" ? `drug_${parts[3] ?? "code"}` : parts[2];
        target = section.querySelector(`#rx-${parts[1]}-${name}`);
      } else if (parts[0] === "diagnoses") {
        target = section.querySelector(`#diagnosis-${parts[2] ?? "code"}-${parts[1] ?? 0}`);
      } else {
        target = section.querySelector(`#note-${parts[0]}`);
      }
      target?.setAttribute("aria-invalid", "true");
    }
  }

  render() {
    const c = this.container;
    const noteLocked = !this.noteEditable();
    for (const field of c.querySelectorAll("#note-section textarea, #note-section input")) {
      /** @type {HTMLInputElement|HTMLTextAreaElement} */ (field).readOnly = noteLocked;
    }
    for (const button of /** @type {NodeListOf<HTMLButtonElement>} */ (c.querySelectorAll("#note-section button"))) {
      button.hidden = noteLocked;
    }
    if (this.note && noteLocked) this.noteStatus.textContent = this.statusText(this.note);
    const rxLocked = !this.rxEditable();
    for (const field of /** @type {NodeListOf<HTMLInputElement>} */ (c.querySelectorAll("#rx-items input"))) {
      field.readOnly = rxLocked;
    }
    for (const field of /** @type {NodeListOf<HTMLSelectElement>} */ (c.querySelectorAll("#rx-items select"))) {
      field.disabled = rxLocked;
    }
    for (const button of c.querySelectorAll("#rx-section > button, #rx-section .clinical-actions button")) {
      /** @type {HTMLButtonElement} */ (button).hidden = rxLocked;
    }
    if (this.prescription && rxLocked) this.rxStatus.textContent = this.statusText(this.prescription);
    translateDocument(c);
  }

  /**
   * The status line of a signed document: its state, its review, its delivery.
   * @param {ClinicalDocument} doc
   * @returns {string}
   */
  statusText(doc) {
    const parts = [t(`status_${doc.status}`)];
    if (doc.review) {
      parts.push(t(doc.review.outcome === "approved" ? "review_approved" : "review_rejected", {
        name: doc.review.pharmacist.name,
        reason: doc.review.reason ?? "",
      }));
    }
    if (doc.delivery) parts.push(t(`delivery_${doc.delivery.status}`));
    return parts.join(" · ");
  }

  /** Stop following the record's changes. */
  close() {
    this.stopFollowing();
  }
}

class PatientPrescriptions {
  /**
   * @param {HTMLElement} container
   * @param {string} consultId
   * @param {string} token
   * @param {ClinicalUpdates} updates
   */
  constructor(container, consultId, token, updates) {
    this.container = container;
    this.consultId = consultId;
    this.token = token;
    /** @type {Prescription[]} the approved ones */
    this.prescriptions = [];
    this.list = el("ul", { id: "patient-prescriptions", class: "clinical-list" });
    this.empty = el("p", { id: "patient-prescriptions-empty", "data-i18n": "patient_rx_none" }, [t("patient_rx_none")]);
    container.hidden = false;
    container.classList.add("clinical-panel");
    container.setAttribute("aria-labelledby", "patient-rx-heading");
    container.replaceChildren(
      el("h2", { id: "patient-rx-heading", "data-i18n": "patient_rx_heading" }, [t("patient_rx_heading")]),
      el("div", { "aria-live": "polite" }, [this.empty, this.list]),
    );
    this.stopFollowing = followClinicalRecord(updates, {
      read: () => this.refresh(),
      wants: patientConcerns,
    });
    onLanguageChange(() => this.render());
  }

  async refresh() {
    try {
      /** @type {{prescriptions: Prescription[]}} */
      const { prescriptions } = await api(this.token, "GET", `/api/consults/${encodeURIComponent(this.consultId)}/clinical`);
      this.prescriptions = prescriptions.filter((p) => p.status === "approved");
      this.render();
    } catch {
      // Read again at the next change.
    }
  }

  render() {
    this.empty.hidden = this.prescriptions.length > 0;
    this.list.replaceChildren(...this.prescriptions.map((p) => el("li", { "data-prescription-id": p.id }, [
      el("p", {}, [t("patient_rx_by", { name: p.prescriber.name })]),
      el("ul", {}, p.items.map((item) => el("li", {}, [
        describeItem(item, t), ...(item.instructions ? [" — ", item.instructions] : []),
      ]))),
    ])));
  }

  /** Stop following the record's changes. */
  close() {
    this.stopFollowing();
  }
}
