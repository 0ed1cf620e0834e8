/** Entry of the landing page: translate it and offer the language switch. */
import { mountLanguageSwitch, translateDocument } from "./i18n.js";

mountLanguageSwitch(document.getElementById("language-select"));
translateDocument();
