// @ts-check
/** Entry of the audit page (/audit#token=JWT): a hospital administrator reads the audit log. */
import { byId, find } from "./dom.js";
import { mountLanguageSwitch, onLanguageChange, t, translateDocument } from "./i18n.js";
import { api } from "./rest.js";
import { takeToken } from "./session.js";

/**
 * One entry of the audit log.
 * @typedef {{at: string, action: string, outcome: string, resource_type: string,
 *            resource_id: string, detail?: {file?: string}|null, client_address?: string|null,
 *            actor: {sub: string, role: string, hospital: string}}} AuditEntry
 */

const token = takeToken("audit");
/** @type {string|null|undefined} */
let lastError = null;

/** @param {string|null|undefined} code */
function showError(code) {
  lastError = code;
  const alert = byId("alert");
  alert.dataset.errorCode = code ?? "";
  if (!code) {
    alert.textContent = "";
    return;
  }
  const key = `error.${code}`;
  const text = t(key);
  alert.textContent = text === key ? t("error.unknown", { code }) : text;
}

async function load() {
  /** @type {AuditEntry[]} */
  let entries;
  try {
    ({ entries } = await api(token, "GET", "/api/audit?limit=500"));
  } catch (err) {
    showError(/** @type {{code?: string}} */ (err).code);
    return;
  }
  showError(null);
  byId("audit-none").hidden = entries.length > 0;
  find(byId("audit"), "tbody").replaceChildren(
    ...entries.map((entry) => {
      const row = document.createElement("tr");
      row.dataset.action = entry.action;
      row.dataset.outcome = entry.outcome;
      row.dataset.resourceId = entry.resource_id;
      const cells = [
        new Date(entry.at).toLocaleString(),
        `${entry.actor.sub} (${entry.actor.role}, ${entry.actor.hospital})`,
        entry.action,
        `${entry.resource_type} ${entry.resource_id}${entry.detail?.file ? ` — ${entry.detail.file}` : ""}`,
        entry.outcome,
        entry.client_address ?? "",
      ];
      row.append(...cells.map((text) => Object.assign(document.createElement("td"), { textContent: text })));
      return row;
    }),
  );
}

mountLanguageSwitch(byId("language-select", HTMLSelectElement));
translateDocument();
onLanguageChange(() => lastError && showError(lastError));
byId("refresh").addEventListener("click", load);
if (token) load();
else showError("token_missing");
