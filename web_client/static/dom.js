// @ts-check
/** Finding the page's elements, typed: a page that lacks one fails loudly at start-up. */

/**
 * The element with `id`, an instance of `type` (HTMLElement when not given).
 * @template {Element} [T=HTMLElement]
 * @param {string} id
 * @param {{new (): T, prototype: T}} [type]
 * @returns {T}
 * @throws {Error} when the page has no such element, or one of another type
 */
export function byId(id, type) {
  const node = document.getElementById(id);
  const expected = /** @type {{new (): T, prototype: T}} */ (type ?? HTMLElement);
  if (!(node instanceof expected)) throw new Error(`#${id}: no ${expected.name} with this id`);
  return node;
}

/**
 * The first descendant of `root` matching `selector`, an instance of `type`.
 * @template {Element} [T=HTMLElement]
 * @param {ParentNode} root
 * @param {string} selector
 * @param {{new (): T, prototype: T}} [type]
 * @returns {T}
 * @throws {Error} when there is none, or it is of another type
 */
export function find(root, selector, type) {
  const node = root.querySelector(selector);
  const expected = /** @type {{new (): T, prototype: T}} */ (type ?? HTMLElement);
  if (!(node instanceof expected)) throw new Error(`${selector}: no ${expected.name} found`);
  return node;
}
