/**
 * Evaluation methods by name: the extension point of the runner.
 */
import { Effect } from "effect";
import { EvaluationError } from "./errors.js";
import { cotMethod, directMethod, type MethodDefinition, selfConsistencyMethod } from "./methods.js";
import { workflowMethod } from "./workflow.js";

// Built-in methods are the map's initial entries (no registration side effect at import).
const registry = new Map<string, MethodDefinition>([
  ["direct", directMethod],
  ["cot", cotMethod],
  ["sc", selfConsistencyMethod],
  ["workflow", workflowMethod],
]);

/** Add (or, with `replace`, override) an evaluation method under `name`. */
export const registerMethod = (
  name: string,
  definition: MethodDefinition,
  options: { readonly replace?: boolean } = {},
): void => {
  if (!/^[a-z][a-z0-9-]*$/.test(name))
    throw new EvaluationError({
      message: `method name must match [a-z][a-z0-9-]*, got "${name}"`,
      method: name,
    });
  if (registry.has(name) && !options.replace)
    throw new EvaluationError({
      message: `method "${name}" is already registered (pass { replace: true })`,
      method: name,
    });
  registry.set(name, definition);
};

/** The registered method names, in registration order. */
export const methodNames = (): string[] => [...registry.keys()];

export const getMethod = (name: string): Effect.Effect<MethodDefinition, EvaluationError> => {
  const definition = registry.get(name);
  return definition
    ? Effect.succeed(definition)
    : Effect.fail(
        new EvaluationError({
          message: `unknown method "${name}"; registered: ${methodNames().join(", ")}`,
          method: name,
          field: "method",
        }),
      );
};
