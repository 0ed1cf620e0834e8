/** Helpers of the clinical pages: building elements and describing prescription items. */

/**
 * Create an element with attributes and children (strings become text nodes).
 * @param {string} tag
 * @param {Record<string, string|boolean>} [attrs]
 * @param {Array<Node|string>} [children]
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
 * @param {object} item
 * @param {(key: string, params?: object) => string} t
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
