/** Config files shipped with the package (`presets/NAME.yaml`), selected with `train --preset NAME`. */
import * as fs from "node:fs";
import * as path from "node:path";
import { ConfigError } from "@workflow-r1/core";

const presetsDir = path.resolve(import.meta.dirname, "..", "presets");

export const presetNames = (): string[] =>
  fs.existsSync(presetsDir)
    ? fs
        .readdirSync(presetsDir)
        .filter((f) => f.endsWith(".yaml"))
        .map((f) => f.slice(0, -".yaml".length))
    : [];

export const presetFile = (name: string): string => {
  const file = path.join(presetsDir, `${name}.yaml`);
  if (!fs.existsSync(file))
    throw new ConfigError({
      field: "preset",
      message: `no preset ${JSON.stringify(name)}; available: ${presetNames().join(", ") || "none"}`,
    });
  return file;
};
