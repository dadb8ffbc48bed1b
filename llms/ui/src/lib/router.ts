/** Four screens, in the path: `/` (a new chat), `/t/<thread id>`, `/usage`, `/keys` (admin). */
import { reactive } from "vue";

export type Route = { name: "chat"; threadId: string | null } | { name: "usage" } | { name: "admin" };

export function parseRoute(path: string): Route {
  if (path === "/usage" || path === "/usage/") return { name: "usage" };
  // Not /admin: that path is the admin API's, which answers only the admin key.
  if (path === "/keys" || path === "/keys/") return { name: "admin" };
  const match = /^\/t\/([^/]+)\/?$/.exec(path);
  if (match) return { name: "chat", threadId: decodeURIComponent(match[1]!) };
  return { name: "chat", threadId: null };
}

export function pathOf(route: Route): string {
  if (route.name === "usage") return "/usage";
  if (route.name === "admin") return "/keys";
  return route.threadId ? `/t/${encodeURIComponent(route.threadId)}` : "/";
}

export const router = reactive({
  route: parseRoute(typeof location === "undefined" ? "/" : location.pathname) as Route,
});

export function navigate(route: Route, options: { replace?: boolean } = {}): void {
  const path = pathOf(route);
  router.route = route;
  if (typeof history === "undefined" || location.pathname === path) return;
  if (options.replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
}

if (typeof window !== "undefined") {
  window.addEventListener("popstate", () => {
    router.route = parseRoute(location.pathname);
  });
}
