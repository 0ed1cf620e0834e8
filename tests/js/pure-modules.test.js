// @ts-check
/** The web client's pure helpers: the grid layout, initials, join links and item lines. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import "./browser-fetch.js";
import { describeItem } from "../../web_client/static/clinical-api.js";
import { translate } from "../../web_client/static/i18n.js";
import { decodeJwtPayload, readConsultId, takeToken } from "../../web_client/static/session.js";
import { initialsOf, layoutFor } from "../../web_client/static/tiles.js";

describe("the video grid", () => {
  test("takes the smallest laid-out size that holds its tiles", () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5, 9, 10, 16, 17, 25].map(layoutFor), [1, 1, 2, 4, 4, 9, 9, 16, 16, 25, 25]);
  });

  test("beyond the largest size, stays at the largest", () => {
    assert.equal(layoutFor(40), 25);
  });

  test("initials: two words give two letters, one word (or a Chinese name) its first character", () => {
    assert.equal(initialsOf("Wang Fang"), "WF");
    assert.equal(initialsOf("Dr. Wang Fang"), "DW");
    assert.equal(initialsOf("  li  "), "L");
    assert.equal(initialsOf("李华"), "李");
    assert.equal(initialsOf(""), "");
  });
});

describe("the join link", () => {
  test("names the consult in its path", () => {
    assert.equal(readConsultId("/join/c-123"), "c-123");
    assert.equal(readConsultId("/join/c%20123/"), "c 123");
    assert.equal(readConsultId("/review"), null);
  });

  test("its token's claims are read for display (base64url, UTF-8), malformed ones give null", () => {
    const payload = Buffer.from(JSON.stringify({ sub: "p-1", name: "李华" })).toString("base64url");
    assert.deepEqual(decodeJwtPayload(`header.${payload}.signature`), { sub: "p-1", name: "李华" });
    assert.equal(decodeJwtPayload("not-a-jwt"), null);
    assert.equal(decodeJwtPayload("a.%%%.c"), null);
  });

  test("a token in the fragment (staff) or the query (a patient's link) leaves the address", () => {
    /** @type {Map<string, string>} */
    const stored = new Map();
    /** @type {string[]} */
    const addresses = [];
    const page = /** @type {any} */ (globalThis);
    page.sessionStorage = {
      setItem: (/** @type {string} */ key, /** @type {string} */ value) => stored.set(key, value),
      getItem: (/** @type {string} */ key) => stored.get(key) ?? null,
    };
    page.history = {
      state: null,
      replaceState: (/** @type {unknown} */ _state, /** @type {string} */ _title, /** @type {string} */ url) =>
        addresses.push(url),
    };

    page.location = new URL("https://tc.example/join/c-1#token=identity.jwt&lang=zh-CN");
    assert.equal(takeToken("c-1"), "identity.jwt");
    page.location = new URL("https://tc.example/join/c-2?token=join.jwt");
    assert.equal(takeToken("c-2"), "join.jwt");
    assert.deepEqual(addresses, ["/join/c-1#lang=zh-CN", "/join/c-2"]);

    page.location = new URL("https://tc.example/join/c-1");
    assert.equal(takeToken("c-1"), "identity.jwt", "a reload finds it in this tab's storage");
    delete page.location;
    delete page.history;
    delete page.sessionStorage;
  });
});

describe("a prescription item", () => {
  const item = {
    drug: { code: "C08CA01", name: "Amlodipine" },
    strength: "5 mg",
    dose: "1",
    dose_unit: "tablet",
    route: "oral",
    frequency: "QD",
    duration_days: 14,
    quantity: 14,
    refills: 0,
  };

  test("reads as one line in English, as the pharmacist and the patient see it", () => {
    /** @param {string} key @param {Record<string, string|number>} [params] */
    const en = (key, params) => translate("en", key, params);
    assert.match(describeItem(item, en), /^Amlodipine 5 mg: 1 tablet, by mouth, once a day, 14 days/);
  });

  test("and in Chinese, with every placeholder filled", () => {
    /** @param {string} key @param {Record<string, string|number>} [params] */
    const zh = (key, params) => translate("zh-CN", key, params);
    const line = describeItem(item, zh);
    assert.match(line, /Amlodipine/);
    assert.doesNotMatch(line, /\{\w+\}/);
  });
});
