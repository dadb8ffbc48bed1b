/** navigator.onLine as reactive state. */
import { reactive } from "vue";

export const network = reactive({
  online: typeof navigator === "undefined" ? true : navigator.onLine !== false,
});

if (typeof window !== "undefined") {
  window.addEventListener("online", () => (network.online = true));
  window.addEventListener("offline", () => (network.online = false));
}
