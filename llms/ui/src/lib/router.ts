/** Three screens, in the path: `/` (a new chat), `/t/<thread id>`, `/usage`. */
import { reactive } from "vue";

export type Route = { name: "chat"; threadId: string | null } | { name: "usage" };

export function parseRoute(path: string): Route {
  if (path === "/usage" || path === "/usage/") return { name: "usage" };
  const match = /^\/t\/([^/]+)\/?$/.exec(path);
  if (match) return { name: "chat", threadId: decodeURIComponent(match[1]!) };
  return { name: "chat", threadId: null };
}

export function pathOf(route: Route): string {
  if (route.name === "usage") return "/usage";
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
