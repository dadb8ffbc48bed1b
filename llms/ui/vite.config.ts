/// <reference types="vitest/config" />
import vue from "@vitejs/plugin-vue";
import { defineConfig } from "vite";

// `npm run dev` serves the UI with hot reload and forwards the API to a gateway on :8000.
const gateway = process.env.LLMS_GATEWAY ?? "http://127.0.0.1:8000";

export default defineConfig({
  plugins: [vue()],
  base: "/",
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    // The usage page (uPlot) and highlight.js are split out; the chat shell stays small.
    chunkSizeWarningLimit: 400,
  },
  server: {
    proxy: {
      "/v1": { target: gateway, changeOrigin: false },
      "/api": { target: gateway, changeOrigin: false },
    },
  },
  test: {
    environment: "happy-dom",
    include: ["tests/**/*.test.ts"],
    setupFiles: ["tests/setup.ts"],
  },
});
