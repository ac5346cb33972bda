/**
 * `--env NAME` → an EnvironmentPlugin. Built-in names: `synthetic` (@workflow-r1/env-synthetic) and
 * `workflow-r1` (@workflow-r1/env-qa); any other NAME is the package `@workflow-r1/env-NAME` (or a package name / path given as is) exporting
 * `environmentPlugin` — which is what `nx g @workflow-r1/tools:environment` generates.
 */
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { ConfigError, type EnvironmentPlugin } from "@workflow-r1/core";
import { Schema } from "effect";

const builtins: Record<string, () => Promise<EnvironmentPlugin>> = {
  synthetic: async () => (await import("@workflow-r1/env-synthetic")).environmentPlugin,
  "workflow-r1": async () => (await import("@workflow-r1/env-qa")).workflowR1Plugin as EnvironmentPlugin,
};

const isPlugin = (value: unknown): value is EnvironmentPlugin =>
  typeof value === "object" &&
  value !== null &&
  typeof (value as EnvironmentPlugin).layer === "function" &&
  typeof (value as EnvironmentPlugin).tasks === "function";

export const resolveEnvironment = async (name: string): Promise<EnvironmentPlugin> => {
  const builtin = builtins[name];
  if (builtin) return builtin();
  // A path (./x.js, ../x.js, /abs/x.js) is the user's file: resolved against the working
  // directory, not against this module's folder inside the installed package.
  const isPath = name.startsWith(".") || path.isAbsolute(name);
  const specifier = isPath
    ? pathToFileURL(path.resolve(name)).href
    : name.startsWith("@")
      ? name
      : `@workflow-r1/env-${name}`;
  let module: Record<string, unknown>;
  try {
    module = (await import(specifier)) as Record<string, unknown>;
  } catch (error) {
    throw new ConfigError({
      field: "environment.name",
      message:
        `unknown environment ${JSON.stringify(name)}: it is not built in (${Object.keys(builtins).join(", ")}) and ` +
        `${specifier} could not be imported (${(error as Error).message}). Create one with ` +
        "`npx nx g @workflow-r1/tools:environment --name=NAME`.",
    });
  }
  const plugin =
    module["environmentPlugin"] ??
    (module["default"] as Record<string, unknown> | undefined)?.["environmentPlugin"];
  if (!isPlugin(plugin))
    throw new ConfigError({
      field: "environment.name",
      message: `${specifier} does not export an \`environmentPlugin\` (an EnvironmentPlugin from @workflow-r1/core)`,
    });
  return plugin;
};

/**
 * The config's `environment.options` decoded with the plugin's `optionsSchema`, when it has one:
 * unknown keys are refused and every problem is named by its path, before anything is written.
 * Without a Schema the options pass as written (the plugin checks them itself).
 */
export const decodeEnvironmentOptions = (
  plugin: EnvironmentPlugin,
  options: Readonly<Record<string, unknown>>,
): Record<string, unknown> => {
  if (!plugin.optionsSchema) return { ...options };
  try {
    return Schema.decodeUnknownSync(plugin.optionsSchema, { onExcessProperty: "error", errors: "all" })(
      options,
    );
  } catch (error) {
    throw new ConfigError({
      field: "environment.options",
      message: `invalid environment.options for ${plugin.name}:\n${error instanceof Error ? error.message : String(error)}`,
    });
  }
};
