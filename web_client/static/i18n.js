// @ts-check
/**
 * Translations (Simplified Chinese and English) and the language switch.
 *
 * The dictionaries are one JSON file per language in `i18n/` (tests/js/i18n.test.js checks that
 * they have the same keys and the same `{placeholders}`). This module fetches both before it
 * finishes loading (a top-level await), so every module that translates runs with them in
 * hand: the page's first `translateDocument()` is in the right language, and `t()` stays
 * synchronous. Each page preloads the files (`<link rel="preload" as="fetch">`), so the fetch
 * runs alongside the modules' own rather than after them. (JSON module imports would do the
 * same without the await, but need Chrome 123, Safari 17.2 or Firefox 138: they would shut out
 * browsers that run this client today, such as Safari on iOS 16.)
 *
 * `{name}`-style placeholders are filled by `t()`. Static markup is translated through
 * `data-i18n="key"` (text) and `data-i18n-attr="attribute:key;attribute:key"` (attributes).
 */

const STORAGE_KEY = "teleconsult.language";

/** Languages offered by the switch, with their names written in themselves. */
const LANGUAGES = [
  { code: "en", label: "English" },
  { code: "zh-CN", label: "中文" },
];

/**
 * One language's dictionary, from `i18n/{lang}.json` beside this module.
 * @param {string} lang
 * @returns {Promise<Record<string, string>>}
 */
async function loadDictionary(lang) {
  const response = await fetch(new URL(`./i18n/${lang}.json`, import.meta.url));
  if (!response.ok) throw new Error(`i18n/${lang}.json: HTTP ${response.status}`);
  return response.json();
}

/** @type {Readonly<Record<string, Readonly<Record<string, string>>>>} by language code */
export const DICTIONARIES = Object.freeze(
  Object.fromEntries(
    await Promise.all(LANGUAGES.map(async ({ code }) => [code, Object.freeze(await loadDictionary(code))])),
  ),
);

let current = initialLanguage();
/** @type {Set<(lang: string) => void>} */
const listeners = new Set();

/**
 * The language to start with: the remembered choice, else the browser's languages.
 * @returns {string}
 */
function initialLanguage() {
  let stored = null;
  try {
    stored = localStorage.getItem(STORAGE_KEY);
  } catch {
    // Storage may be blocked (private mode, policies): fall back to the browser's languages.
  }
  // `globalThis.navigator`: Node 20 (the unit tests) has none.
  const browser = globalThis.navigator;
  return chooseLanguage(stored, browser?.languages?.length ? browser.languages : [browser?.language]);
}

/**
 * The language to use: `stored` when it is one we have, else the first of `preferred`
 * that we speak (any `zh*` → Simplified Chinese), else English.
 * @param {string|null|undefined} stored the remembered choice
 * @param {ReadonlyArray<string|undefined>} preferred the browser's languages, best first
 * @returns {string}
 */
export function chooseLanguage(stored, preferred) {
  if (stored && stored in DICTIONARIES) return stored;
  for (const lang of preferred) {
    const lower = (lang || "").toLowerCase();
    if (lower.startsWith("zh")) return "zh-CN";
    if (lower.startsWith("en")) return "en";
  }
  return "en";
}

/**
 * Fill the `{placeholders}` of `template` from `params`; unknown ones stay as written.
 * @param {string} template
 * @param {Record<string, string|number>} [params]
 * @returns {string}
 */
export function format(template, params = {}) {
  return template.replace(/\{(\w+)\}/g, (match, name) => (name in params ? String(params[name]) : match));
}

/**
 * Translate a key in `lang`, filling `{placeholders}` from `params`.
 * An unknown key falls back to English, then to the key itself.
 * @param {string} lang
 * @param {string} key
 * @param {Record<string, string|number>} [params]
 * @returns {string}
 */
export function translate(lang, key, params = {}) {
  return format(DICTIONARIES[lang]?.[key] ?? DICTIONARIES.en[key] ?? key, params);
}

/**
 * Translate a key in the current language, filling `{placeholders}` from `params`.
 * An unknown key falls back to English, then to the key itself.
 * @param {string} key
 * @param {Record<string, string|number>} [params]
 * @returns {string}
 */
export function t(key, params = {}) {
  return translate(current, key, params);
}

/** @returns {string} the current language ("en" or "zh-CN") */
export function currentLanguage() {
  return current;
}

/**
 * Switch the language, remember it, retranslate the document and notify listeners.
 * @param {string} lang "en" or "zh-CN"
 */
export function setLanguage(lang) {
  if (!(lang in DICTIONARIES)) return;
  current = lang;
  try {
    localStorage.setItem(STORAGE_KEY, lang);
  } catch {
    // Not remembered, but the page still switches.
  }
  translateDocument();
  for (const listener of listeners) listener(lang);
}

/**
 * Call `listener(lang)` after every language change.
 * @param {(lang: string) => void} listener
 */
export function onLanguageChange(listener) {
  listeners.add(listener);
}

/**
 * Translate the static markup: `lang` on <html>, the title, `data-i18n` text and
 * `data-i18n-attr` attributes.
 * @param {ParentNode} [root]
 */
export function translateDocument(root = document) {
  document.documentElement.lang = current;
  document.title = t(document.body?.dataset.titleKey || "page_title");
  for (const el of /** @type {NodeListOf<HTMLElement>} */ (root.querySelectorAll("[data-i18n]"))) {
    el.textContent = t(el.dataset.i18n ?? "");
  }
  for (const el of /** @type {NodeListOf<HTMLElement>} */ (root.querySelectorAll("[data-i18n-attr]"))) {
    for (const pair of (el.dataset.i18nAttr ?? "").split(";")) {
      const [attr, key] = pair.split(":").map((part) => part.trim());
      if (attr && key) el.setAttribute(attr, t(key));
    }
  }
}

/**
 * Fill a <select> with the offered languages and switch language when it changes.
 * Each option carries its own `lang` so screen readers pronounce it correctly.
 * @param {HTMLSelectElement} select
 */
export function mountLanguageSwitch(select) {
  select.replaceChildren(
    ...LANGUAGES.map(({ code, label }) => {
      const option = new Option(label, code, false, code === current);
      option.lang = code;
      return option;
    }),
  );
  select.addEventListener("change", () => setLanguage(select.value));
  onLanguageChange((lang) => {
    select.value = lang;
  });
}
