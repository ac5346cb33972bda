/**
 * `--env NAME` → an EnvironmentPlugin. Built-in names: `synthetic` (@workflow-r1/env-synthetic) and
 * `workflow-r1` (@workflow-r1/env-qa); any other NAME is the package `@workflow-r1/env-NAME` (or a package name / path given as is) exporting
 * `environmentPlugin` — which is what `nx g @workflow-r1/tools:environment` generates.
 */
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { ConfigError, type EnvironmentPlugin } from "@workflow-r1/core";
import { Effect, Schema } from "effect";

const builtins: Record<string, () => Promise<EnvironmentPlugin>> = {
  synthetic: async () => (await import("@workflow-r1/env-synthetic")).environmentPlugin,
  "workflow-r1": async () => (await import("@workflow-r1/env-qa")).workflowR1Plugin as EnvironmentPlugin,
};

const isPlugin = (value: unknown): value is EnvironmentPlugin =>
  typeof value === "object" &&
  value !== null &&
  typeof (value as EnvironmentPlugin).layer === "function" &&
  typeof (value as EnvironmentPlugin).tasks === "function";

/** The plugin `--env NAME` names (built in, a package, or a file), or a ConfigError saying why not. */
export const resolveEnvironment = (name: string): Effect.Effect<EnvironmentPlugin, ConfigError> =>
  Effect.gen(function* () {
    const builtin = builtins[name];
    if (builtin) return yield* Effect.promise(builtin);
    // A path (./x.js, ../x.js, /abs/x.js) is the user's file: resolved against the working
    // directory, not against this module's folder inside the installed package.
    const isPath = name.startsWith(".") || path.isAbsolute(name);
    const specifier = isPath
      ? pathToFileURL(path.resolve(name)).href
      : name.startsWith("@")
        ? name
        : `@workflow-r1/env-${name}`;
    const module = yield* Effect.tryPromise({
      try: () => import(specifier) as Promise<Record<string, unknown>>,
      catch: (error) =>
        new ConfigError({
          field: "environment.name",
          message:
            `unknown environment ${JSON.stringify(name)}: it is not built in (${Object.keys(builtins).join(", ")}) and ` +
            `${specifier} could not be imported (${(error as Error).message}). Create one with ` +
            "`npx nx g @workflow-r1/tools:environment --name=NAME`.",
        }),
    });
    const plugin =
      module["environmentPlugin"] ??
      (module["default"] as Record<string, unknown> | undefined)?.["environmentPlugin"];
    if (!isPlugin(plugin))
      return yield* new ConfigError({
        field: "environment.name",
        message: `${specifier} does not export an \`environmentPlugin\` (an EnvironmentPlugin from @workflow-r1/core)`,
      });
    return plugin;
  });

/**
 * The config's `environment.options` decoded with the plugin's `optionsSchema`, when it has one:
 * unknown keys are refused and every problem is named by its path, before anything is written.
 * Without a Schema the options pass as written (the plugin checks them itself).
 */
export const decodeEnvironmentOptions = (
  plugin: EnvironmentPlugin,
  options: Readonly<Record<string, unknown>>,
): Effect.Effect<Record<string, unknown>, ConfigError> => {
  const schema = plugin.optionsSchema;
  if (!schema) return Effect.succeed({ ...options });
  return Effect.try({
    try: () =>
      Schema.decodeUnknownSync(schema, { onExcessProperty: "error", errors: "all" })(options) as Record<
        string,
        unknown
      >,
    catch: (error) =>
      new ConfigError({
        field: "environment.options",
        message: `invalid environment.options for ${plugin.name}:\n${error instanceof Error ? error.message : String(error)}`,
      }),
  });
};
