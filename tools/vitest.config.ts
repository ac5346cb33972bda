import { defineConfig, mergeConfig } from "vitest/config";
import { sharedConfig } from "../vitest.shared.ts";

// Each test builds and tests real packages in a temporary workspace: give them time, one file at a time.
export default mergeConfig(
  sharedConfig,
  defineConfig({ test: { testTimeout: 180_000, hookTimeout: 180_000, fileParallelism: false } }),
);
