// Shared vitest settings: resolve workspace packages to their TypeScript sources through the
// `development` export condition, so tests never need a prior build of sibling packages.
import { defineConfig } from "vitest/config";

export const sharedConfig = defineConfig({
  resolve: { conditions: ["development"] },
  ssr: { resolve: { conditions: ["development"] } },
  test: {
    setupFiles: [new URL("./vitest.setup.ts", import.meta.url).pathname],
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: process.env.CI ? ["default"] : ["default"],
  },
});
