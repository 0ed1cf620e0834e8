// @ts-check
/** Helpers of the clinical pages: building elements and describing prescription items. */

/**
 * A prescription item as the server describes it.
 * @typedef {{drug?: {code: string, name: string}, strength?: string, dose?: string|number,
 *            dose_unit?: string, route?: string, frequency?: string, duration_days?: number,
 *            quantity?: number, refills?: number, instructions?: string}} PrescriptionItem
 */

/**
 * Create an element with attributes and children (strings become text nodes).
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, string|boolean|undefined|null>} [attrs] false, undefined and null
 *   leave the attribute out; true sets it empty
 * @param {Array<Node|string>} [children]
 * @returns {HTMLElementTagNameMap[K]}
 */
export function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === undefined || value === null) continue;
    if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

/**
 * One line describing a prescription item: "Amlodipine 5 mg — 1 tablet, oral, QD, 14 days".
 * @param {PrescriptionItem} item
 * @param {(key: string, params?: Record<string, string|number>) => string} t
 * @returns {string}
 */
export function describeItem(item, t) {
  return t("rx_item_line", {
    drug: item.drug?.name ?? "",
    strength: item.strength ?? "",
    dose: item.dose ?? "",
    unit: item.dose_unit ?? "",
    route: t(`route_${item.route}`),
    frequency: t(`frequency_${item.frequency}`),
    days: item.duration_days ?? "",
    quantity: item.quantity ?? "",
    refills: item.refills ?? 0,
  });
}
