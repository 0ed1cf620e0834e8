/**
 * The clinical side panel of the consult page: for the consult's doctors the note (SOAP,
 * ICD-10 diagnoses) and the e-prescription with autosave, signing, safety warnings and
 * delivery status; for the patient their approved prescription.
 */
import { onLanguageChange, t, translateDocument } from "./i18n.js";
import { describeItem, el } from "./clinical-api.js";
import { api } from "./rest.js";

const AUTOSAVE_DELAY_MS = 800;
const POLL_MS = 3000;
const SOAP = ["subjective", "objective", "assessment", "plan"];
const ROUTES = ["oral", "sublingual", "topical", "inhaled", "intravenous", "intramuscular",
  "subcutaneous", "rectal", "ophthalmic", "nasal", "transdermal"];
const FREQUENCIES = ["QD", "BID", "TID", "QID", "Q4H", "Q6H", "Q8H", "Q12H", "QHS", "QW", "PRN"];
const ITEM_TEXT = ["strength", "dose", "dose_unit", "instructions"];
const ITEM_NUMBERS = ["duration_days", "quantity", "refills"];

/**
 * Mount the panel for this participant.
 * @param {HTMLElement} container the `<aside id="clinical-panel">`
 * @param {{consultId: string, token: string, role: string, isHost: boolean}} who
 * @returns {{close: () => void}|null}
 */
export function mountClinicalPanel(container, { consultId, token, role, isHost }) {
  if (!container) return null;
  if (role === "patient") return new PatientPrescriptions(container, consultId, token);
  if (isHost || role === "doctor" || role === "expert") return new DoctorPanel(container, consultId, token);
  return null;
}

function labelled(id, key, control) {
  return el("div", { class: "field" }, [el("label", { for: id, "data-i18n": key }, [t(key)]), control]);
}

function debounce(fn, ms) {
  let timer = null;
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

class DoctorPanel {
  constructor(container, consultId, token) {
    this.container = container;
    this.consultId = consultId;
    this.token = token;
    this.note = null;
    this.prescription = null;
    this.noteSaving = Promise.resolve();
    this.rxSaving = Promise.resolve();
    this.build();
    this.saveNoteSoon = debounce(() => this.saveNote(), AUTOSAVE_DELAY_MS);
    this.saveRxSoon = debounce(() => this.savePrescription(), AUTOSAVE_DELAY_MS);
    this.load();
    this.timer = setInterval(() => this.refresh(), POLL_MS);
    onLanguageChange(() => this.render());
  }

  build() {
    const c = this.container;
    c.hidden = false;
    c.classList.add("clinical-panel");
    c.setAttribute("aria-labelledby", "clinical-heading");
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
    const noteSection = c.querySelector("#note-section");
    noteSection.addEventListener("input", () => this.noteEditable() && this.saveNoteSoon());
    c.querySelector("#add-diagnosis").addEventListener("click", () => this.addDiagnosis());
    c.querySelector("#note-save").addEventListener("click", () => this.saveNoteSoon.flush());
    c.querySelector("#note-sign").addEventListener("click", () => this.signNote());
    const rxSection = c.querySelector("#rx-section");
    rxSection.addEventListener("input", (event) => {
      if (event.target === this.overrideReason) return;
      if (this.rxEditable()) this.saveRxSoon();
    });
    rxSection.addEventListener("change", (event) => {
      if (event.target.tagName === "SELECT" && this.rxEditable()) this.saveRxSoon();
    });
    c.querySelector("#rx-add-item").addEventListener("click", () => this.addItem());
    c.querySelector("#rx-save").addEventListener("click", () => this.saveRxSoon.flush());
    c.querySelector("#rx-sign").addEventListener("click", () => this.signPrescription(null));
    c.querySelector("#rx-override-sign").addEventListener("click", () => {
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

  addItem(item = {}) {
    const index = this.itemList.children.length;
    const id = (name) => `rx-${index}-${name}`;
    const input = (name, attrs = {}) => el("input", { id: id(name), name, autocomplete: "off", value: item[name] ?? "", ...attrs });
    const select = (name, values, prefix) => {
      const s = el("select", { id: id(name), name }, [
        el("option", { value: "" }, [""]),
        ...values.map((v) => el("option", { value: v, "data-i18n": `${prefix}_${v}` }, [t(`${prefix}_${v}`)])),
      ]);
      s.value = item[name] ?? "";
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

  noteBody() {
    const body = {};
    for (const part of SOAP) body[part] = this.container.querySelector(`#note-${part}`).value;
    body.diagnoses = [...this.diagnosisList.children]
      .map((li) => ({ code: li.querySelector("[name=code]").value.trim(), text: li.querySelector("[name=text]").value.trim() }))
      .filter((d) => d.code || d.text);
    return body;
  }

  itemsBody() {
    return [...this.itemList.children].map((li) => {
      const value = (name) => li.querySelector(`[name=${name}]`).value.trim();
      const item = {};
      if (value("drug_code") || value("drug_name")) item.drug = { code: value("drug_code"), name: value("drug_name") };
      for (const name of [...ITEM_TEXT, "route", "frequency"]) if (value(name)) item[name] = value(name);
      for (const name of ITEM_NUMBERS) if (value(name)) item[name] = Number(value(name));
      return item;
    }).filter((item) => Object.keys(item).length > 0);
  }

  noteEditable() {
    return !this.note || this.note.status === "draft";
  }

  rxEditable() {
    return !this.prescription || this.prescription.status === "draft";
  }

  async load() {
    try {
      const { notes, prescriptions } = await api(this.token, "GET", `/api/consults/${encodeURIComponent(this.consultId)}/clinical`);
      this.note = notes.at(-1) ?? null;
      this.prescription = prescriptions.at(-1) ?? null;
      if (this.note) this.fillNote(this.note);
      if (this.prescription) this.fillItems(this.prescription.items);
    } catch (err) {
      this.noteStatus.textContent = t("clinical_error", { code: err.code });
    }
    this.render();
  }

  async refresh() {
    const waiting = (doc) => doc && doc.status !== "draft" && (doc.delivery?.status !== "delivered" || doc.status === "signed");
    if (!waiting(this.note) && !waiting(this.prescription)) return;
    try {
      if (waiting(this.note)) this.note = await api(this.token, "GET", `/api/notes/${this.note.id}`);
      if (waiting(this.prescription)) this.prescription = await api(this.token, "GET", `/api/prescriptions/${this.prescription.id}`);
      this.render();
    } catch {
      // A failed poll is retried at the next tick.
    }
  }

  fillNote(note) {
    for (const part of SOAP) this.container.querySelector(`#note-${part}`).value = note[part] ?? "";
    this.diagnosisList.replaceChildren();
    for (const d of note.diagnoses.length ? note.diagnoses : [{ code: "", text: "" }]) this.addDiagnosis(d);
  }

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
        this.showFieldErrors(this.container.querySelector("#note-section"), []);
        this.noteStatus.textContent = t("draft_saved");
      } catch (err) {
        this.showProblem(this.noteStatus, this.container.querySelector("#note-section"), err);
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
        this.showFieldErrors(this.container.querySelector("#rx-section"), []);
        this.rxStatus.textContent = t("draft_saved");
      } catch (err) {
        this.showProblem(this.rxStatus, this.container.querySelector("#rx-section"), err);
      }
    });
    return this.rxSaving;
  }

  async signNote() {
    await this.saveNoteSoon.flush();
    if (!this.note || this.note.status !== "draft") return;
    try {
      this.note = await api(this.token, "POST", `/api/notes/${this.note.id}/sign`);
    } catch (err) {
      this.showProblem(this.noteStatus, this.container.querySelector("#note-section"), err);
      return;
    }
    this.render();
  }

  async signPrescription(overrideReason) {
    await this.saveRxSoon.flush();
    if (!this.prescription || this.prescription.status !== "draft") return;
    const body = overrideReason ? { override: { reason: overrideReason } } : {};
    try {
      this.prescription = await api(this.token, "POST", `/api/prescriptions/${this.prescription.id}/sign`, body);
    } catch (err) {
      if (err.code === "safety_check_failed") {
        this.findings.replaceChildren(...(err.details ?? []).map((f) => el("li", { "data-kind": f.kind }, [
          t(`safety_${f.kind}`, { n: f.item + 1 }), " ", f.message,
        ])));
        this.safety.hidden = false;
        this.rxStatus.textContent = t("rx_blocked");
        this.overrideReason.focus();
        return;
      }
      this.showProblem(this.rxStatus, this.container.querySelector("#rx-section"), err);
      return;
    }
    this.safety.hidden = true;
    this.render();
  }

  showProblem(status, section, err) {
    const details = Array.isArray(err.details) ? err.details : [];
    this.showFieldErrors(section, details);
    status.textContent = err.status === 422 ? t("fix_fields", { count: details.length }) : t("clinical_error", { code: err.code });
  }

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
    for (const field of c.querySelectorAll("#note-section textarea, #note-section input")) field.readOnly = noteLocked;
    for (const button of c.querySelectorAll("#note-section button")) button.hidden = noteLocked;
    if (noteLocked) this.noteStatus.textContent = this.statusText(this.note);
    const rxLocked = !this.rxEditable();
    for (const field of c.querySelectorAll("#rx-items input")) field.readOnly = rxLocked;
    for (const field of c.querySelectorAll("#rx-items select")) field.disabled = rxLocked;
    for (const button of c.querySelectorAll("#rx-section > button, #rx-section .clinical-actions button")) button.hidden = rxLocked;
    if (rxLocked) this.rxStatus.textContent = this.statusText(this.prescription);
    translateDocument(c);
  }

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

  close() {
    clearInterval(this.timer);
  }
}

class PatientPrescriptions {
  constructor(container, consultId, token) {
    this.container = container;
    this.consultId = consultId;
    this.token = token;
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
    this.refresh();
    this.timer = setInterval(() => this.refresh(), POLL_MS);
    onLanguageChange(() => this.render());
  }

  async refresh() {
    try {
      const { prescriptions } = await api(this.token, "GET", `/api/consults/${encodeURIComponent(this.consultId)}/clinical`);
      this.prescriptions = prescriptions.filter((p) => p.status === "approved");
      this.render();
    } catch {
      // Retried at the next tick.
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

  close() {
    clearInterval(this.timer);
  }
}
