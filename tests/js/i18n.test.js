// @ts-check
/**
 * The dictionaries (web_client/static/i18n/*.json) say the same things in each language, and
 * the lookup fills placeholders and falls back as the pages expect.
 */
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { describe, test } from "node:test";

import "./browser-fetch.js";
import { DICTIONARIES, chooseLanguage, format, translate } from "../../web_client/static/i18n.js";

const FOLDER = new URL("../../web_client/static/i18n/", import.meta.url);
/** @type {Record<string, Record<string, string>>} each JSON file, by language */
const files = Object.fromEntries(
  readdirSync(FOLDER)
    .filter((name) => name.endsWith(".json"))
    .map((name) => [name.slice(0, -".json".length), JSON.parse(readFileSync(new URL(name, FOLDER), "utf8"))]),
);

/**
 * The `{placeholders}` of a message, sorted.
 * @param {string} message
 */
const placeholders = (message) => [...message.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

describe("the dictionaries", () => {
  test("there is one file per language the switch offers, and i18n.js loads each", () => {
    assert.deepEqual(Object.keys(files).sort(), ["en", "zh-CN"]);
    assert.deepEqual(Object.keys(DICTIONARIES).sort(), ["en", "zh-CN"]);
    for (const [lang, dictionary] of Object.entries(files)) assert.deepEqual(DICTIONARIES[lang], dictionary);
  });

  test("every language has the same keys as English", () => {
    const english = Object.keys(files.en).sort();
    for (const [lang, dictionary] of Object.entries(files)) {
      const keys = Object.keys(dictionary).sort();
      assert.deepEqual(
        { missing: english.filter((k) => !(k in dictionary)), extra: keys.filter((k) => !(k in files.en)) },
        { missing: [], extra: [] },
        `${lang}.json`,
      );
    }
  });

  test("every message has the same placeholders in every language", () => {
    const mismatches = [];
    for (const [lang, dictionary] of Object.entries(files)) {
      for (const [key, english] of Object.entries(files.en)) {
        const message = dictionary[key];
        if (typeof message !== "string") {
          mismatches.push(`${lang} ${key}: not a string`);
        } else if (placeholders(message).join() !== placeholders(english).join()) {
          mismatches.push(`${lang} ${key}: {${placeholders(message)}} where English has {${placeholders(english)}}`);
        }
      }
    }
    assert.deepEqual(mismatches, []);
  });

  test("no message is empty", () => {
    for (const [lang, dictionary] of Object.entries(files)) {
      for (const [key, message] of Object.entries(dictionary)) assert.notEqual(message.trim(), "", `${lang} ${key}`);
    }
  });
});

describe("translating", () => {
  test("placeholders are filled, and unknown ones stay as written", () => {
    assert.equal(format("Admit {name}", { name: "Li Hua" }), "Admit Li Hua");
    assert.equal(format("{kind} {index}", { kind: "Camera", index: 2 }), "Camera 2");
    assert.equal(format("Hello, {name}.", {}), "Hello, {name}.");
  });

  test("a key is looked up in the language asked for", () => {
    assert.equal(translate("en", "admit", { name: "Li Hua" }), "Admit Li Hua");
    assert.equal(translate("zh-CN", "admit", { name: "李华" }), "准许 李华 进入");
  });

  test("an unknown key falls back to English, then to the key itself", () => {
    assert.equal(translate("fr", "leave"), "Leave");
    assert.equal(translate("zh-CN", "no_such_key"), "no_such_key");
  });

  test("the language: the remembered one, else the browser's first we speak, else English", () => {
    assert.equal(chooseLanguage("zh-CN", ["en-GB"]), "zh-CN");
    assert.equal(chooseLanguage("fr", ["zh-TW", "en"]), "zh-CN");
    assert.equal(chooseLanguage(null, ["de", "en-US"]), "en");
    assert.equal(chooseLanguage(null, ["de"]), "en");
    assert.equal(chooseLanguage(null, [undefined]), "en");
  });
});
