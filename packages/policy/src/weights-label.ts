import type { WeightsSource } from "@workflow-r1/core";

/** How errors name the weights: their path, or an in-memory adapter's label and size. */
export const weightsLabel = (weights: WeightsSource) =>
  weights.kind === "lora-bytes"
    ? `${weights.label ?? "in-memory adapter"} (${weights.bytes.byteLength} bytes)`
    : weights.path;
