import { createApp } from "vue";
import App from "./App.vue";
import { followTheme } from "./lib/theme";
import { settings } from "./services";
import "./styles/main.css";
import "./styles/highlight.css";

followTheme(settings);
createApp(App).mount("#app");
