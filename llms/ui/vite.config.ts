/// <reference types="vitest/config" />
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";
import vue from "@vitejs/plugin-vue";
import { defineConfig, type Plugin } from "vite";

/**
 * Writes `.br` and `.gz` beside each text file of the build, compressed once at the highest
 * level; the gateway (aiohttp's FileResponse) sends one of them to a browser that accepts it,
 * with Content-Encoding and Vary. Fonts (woff2) and images are compressed already.
 */
function precompress(): Plugin {
  let outDir = "dist";
  const walk = (dir: string): string[] =>
    readdirSync(dir).flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? walk(path) : [path];
    });
  return {
    name: "llms-precompress",
    apply: "build",
    configResolved(config) {
      outDir = config.build.outDir;
    },
    closeBundle() {
      for (const path of walk(outDir)) {
        if (!/\.(js|mjs|css|html|svg|json|txt|map)$/.test(path)) continue;
        const data = readFileSync(path);
        if (data.length < 1024) continue;
        const br = brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: data.length } });
        const gz = gzipSync(data, { level: 9 });
        if (br.length < data.length * 0.9) writeFileSync(path + ".br", br);
        if (gz.length < data.length * 0.9) writeFileSync(path + ".gz", gz);
      }
    },
  };
}

// `npm run dev` serves the UI with hot reload and forwards the API to a gateway on :8000.
const gateway = process.env.LLMS_GATEWAY ?? "http://127.0.0.1:8000";

export default defineConfig({
  plugins: [vue(), precompress()],
  // vue-i18n's build flags: Composition API only (no legacy API), no devtools hooks in production.
  define: {
    __VUE_I18N_FULL_INSTALL__: true,
    __VUE_I18N_LEGACY_API__: false,
    __INTLIFY_PROD_DEVTOOLS__: false,
  },
  base: "/",
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    // The usage page (uPlot), KaTeX and each highlight.js language are split out and loaded
    // when first needed; the chat shell stays small.
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
