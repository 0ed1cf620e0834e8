/**
 * The pharmacist's page (/pharmacy?token=JWT): signed prescriptions of their hospital waiting
 * for review, each with "Approve" and "Reject" (a rejection needs a reason).
 */
import { mountLanguageSwitch, onLanguageChange, t, translateDocument } from "./i18n.js";
import { takeToken } from "./session.js";
import { describeItem, el } from "./clinical-api.js";
import { api } from "./rest.js";

const POLL_MS = 3000;
const token = takeToken("pharmacy");
const queueList = document.getElementById("pharmacy-queue");
const empty = document.getElementById("pharmacy-empty");
const alertRegion = document.getElementById("alert");
const announcer = document.getElementById("announcer");
/** @type {object[]} */
let queue = [];

function announce(text) {
  announcer.textContent = "";
  setTimeout(() => {
    announcer.textContent = text;
  }, 50);
}

function showError(code) {
  alertRegion.dataset.errorCode = code;
  alertRegion.textContent = t("clinical_error", { code });
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
    showError(err.code);
  }
}

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
    showError(err.code);
    return;
  }
  announce(t(decision === "approve" ? "pharmacy_approved" : "pharmacy_rejected", { name: prescription.patient.name }));
  await refresh();
}

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

mountLanguageSwitch(document.getElementById("language-select"));
translateDocument();
onLanguageChange(render);
refresh();
setInterval(refresh, POLL_MS);
