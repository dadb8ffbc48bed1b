import "@fontsource-variable/inter"; // the UI font, bundled: no CDN, no fallback to DejaVu Sans on Linux
// Tokens and base element rules come first, before any component's own <style> (App's import below),
// so a component's rules win ties against the global button/layout rules; shared.css (classes several
// components use) comes after them. Everything else lives in the components' own <style>.
import "./styles/tokens.css";
import "./styles/base.css";
import { createApp } from "vue";
import App from "./App.vue";
import { followLanguage, i18n } from "./i18n";
import { followTheme } from "./lib/theme";
import { settings } from "./services";
import "./styles/shared.css";
import "./styles/highlight.css";
import "./styles/content.css";

followTheme(settings);
followLanguage(settings);
createApp(App).use(i18n).mount("#app");
