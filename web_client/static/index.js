// @ts-check
/** Entry of the landing page: translate it and offer the language switch. */
import { byId } from "./dom.js";
import { mountLanguageSwitch, translateDocument } from "./i18n.js";

mountLanguageSwitch(byId("language-select", HTMLSelectElement));
translateDocument();
