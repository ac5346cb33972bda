/** Config files shipped with the package (`presets/NAME.yaml`), selected with `train --preset NAME`. */
import * as path from "node:path";
import { ConfigError } from "@workflow-r1/core";
import { Effect, FileSystem } from "effect";

const presetsDir = path.resolve(import.meta.dirname, "..", "presets");

/** The names of the shipped presets. */
export const presetNames = Effect.gen(function* () {
  const fs = yield* FileSystem.FileSystem;
  if (!(yield* fs.exists(presetsDir))) return [] as string[];
  return (yield* fs.readDirectory(presetsDir))
    .filter((f) => f.endsWith(".yaml"))
    .map((f) => f.slice(0, -".yaml".length))
    .sort();
});

/** The file of preset `name`; a name that is not shipped is a ConfigError listing those that are. */
export const presetFile = (name: string) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem;
    const file = path.join(presetsDir, `${name}.yaml`);
    if (yield* fs.exists(file)) return file;
    const available = yield* presetNames;
    return yield* new ConfigError({
      field: "preset",
      message: `no preset ${JSON.stringify(name)}; available: ${available.join(", ") || "none"}`,
    });
  });
