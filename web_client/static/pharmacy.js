// @ts-check
/**
 * The pharmacist's page (/pharmacy#token=JWT): signed prescriptions of their hospital waiting
 * for review, each with "Approve" and "Reject" (a rejection needs a reason).
 */
import { byId } from "./dom.js";
import { mountLanguageSwitch, onLanguageChange, t, translateDocument } from "./i18n.js";
import { takeToken } from "./session.js";
import { describeItem, el } from "./clinical-api.js";
import { api } from "./rest.js";

/**
 * A signed prescription waiting for review, as the queue describes it.
 * @typedef {{id: string, patient: {name: string}, prescriber: {name: string},
 *            items: import("./clinical-api.js").PrescriptionItem[],
 *            safety: {findings: unknown[], override_reason?: string|null}}} QueuedPrescription
 */

const POLL_MS = 3000;
const token = takeToken("pharmacy");
const queueList = byId("pharmacy-queue");
const empty = byId("pharmacy-empty");
const alertRegion = byId("alert");
const announcer = byId("announcer");
/** @type {QueuedPrescription[]} */
let queue = [];

/** @param {string} text */
function announce(text) {
  announcer.textContent = "";
  setTimeout(() => {
    announcer.textContent = text;
  }, 50);
}

/** @param {string|undefined} code */
function showError(code) {
  alertRegion.dataset.errorCode = code;
  alertRegion.textContent = t("clinical_error", { code: String(code) });
}

async function refresh() {
  if (!token) {
    showError("token_missing");
    return;
  }
  try {
    queue = await api(token, "GET", "/api/pharmacy/queue");
    render();
  } catch (err) {
    showError(/** @type {{code?: string}} */ (err).code);
  }
}

/**
 * @param {QueuedPrescription} prescription
 * @param {"approve"|"reject"} decision
 * @param {HTMLTextAreaElement} reasonInput
 */
async function review(prescription, decision, reasonInput) {
  const reason = reasonInput.value.trim();
  if (decision === "reject" && !reason) {
    reasonInput.setAttribute("aria-invalid", "true");
    reasonInput.focus();
    announce(t("pharmacy_reason_required"));
    return;
  }
  try {
    await api(token, "POST", `/api/prescriptions/${prescription.id}/review`, { decision, reason: reason || null });
  } catch (err) {
    showError(/** @type {{code?: string}} */ (err).code);
    return;
  }
  announce(t(decision === "approve" ? "pharmacy_approved" : "pharmacy_rejected", { name: prescription.patient.name }));
  await refresh();
}

/** @param {QueuedPrescription} prescription */
function card(prescription) {
  const reasonId = `reason-${prescription.id}`;
  const reason = el("textarea", { id: reasonId, rows: "2", maxlength: "1000" });
  const approve = el("button", { type: "button", class: "button primary" }, [t("pharmacy_approve")]);
  const reject = el("button", { type: "button", class: "button danger" }, [t("pharmacy_reject")]);
  approve.addEventListener("click", () => review(prescription, "approve", reason));
  reject.addEventListener("click", () => review(prescription, "reject", reason));
  const findings = prescription.safety.findings;
  return el("li", { class: "pharmacy-item", "data-prescription-id": prescription.id }, [
    el("h2", {}, [t("pharmacy_for", { patient: prescription.patient.name, doctor: prescription.prescriber.name })]),
    el("ul", {}, prescription.items.map((item) => el("li", {}, [describeItem(item, t)]))),
    ...(findings.length
      ? [el("p", { class: "clinical-safety" }, [
          t("pharmacy_override", { count: findings.length, reason: prescription.safety.override_reason ?? "" }),
        ])]
      : []),
    el("div", { class: "field" }, [el("label", { for: reasonId }, [t("pharmacy_reason_label")]), reason]),
    el("div", { class: "clinical-actions" }, [approve, reject]),
  ]);
}

function render() {
  empty.hidden = queue.length > 0;
  queueList.replaceChildren(...queue.map(card));
}

mountLanguageSwitch(byId("language-select", HTMLSelectElement));
translateDocument();
onLanguageChange(render);
refresh();
setInterval(refresh, POLL_MS);
