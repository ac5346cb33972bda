/**
 * `--algorithm NAME`: built-in variants (grpo, gspo, gsspo) or one registered by a package. A name
 * not yet registered is looked up as the package `@workflow-r1/algo-NAME` (what
 * `nx g @workflow-r1/tools:algorithm` generates), which registers itself on import. Then the
 * `algorithm:` section becomes the `Algorithm` service the trainer's update calls.
 */
import { ConfigError } from "@workflow-r1/core";
import {
  type AlgorithmConfig,
  AlgorithmConfigError,
  type AlgorithmShape,
  makeAlgorithm,
  policyLossVariants,
} from "@workflow-r1/gsspo";
import { Effect } from "effect";

/** Makes sure a policy loss named `name` is registered, importing its package when it is not. */
export const ensureAlgorithm = (name: string): Effect.Effect<void, ConfigError> =>
  Effect.gen(function* () {
    if (policyLossVariants().includes(name)) return;
    const specifier =
      name.startsWith("@") || name.startsWith(".") || name.startsWith("/")
        ? name
        : `@workflow-r1/algo-${name}`;
    yield* Effect.tryPromise({
      try: () => import(specifier),
      catch: (error) =>
        new ConfigError({
          field: "algorithm.name",
          message: `unknown algorithm ${JSON.stringify(name)}: not registered (${policyLossVariants().join(", ")}) and ${specifier} could not be imported (${(error as Error).message})`,
        }),
    });
    if (!policyLossVariants().includes(name))
      return yield* new ConfigError({
        field: "algorithm.name",
        message: `${specifier} was imported but did not register a policy loss named ${JSON.stringify(name)}`,
      });
  });

/**
 * The `Algorithm` service value for a config's `algorithm:` section: imports the variant's package
 * when needed, then resolves the section against the variant. A setting the variant refuses is a
 * {@link ConfigError} naming `algorithm.<field>`, before anything is written.
 */
export const loadAlgorithm = (config: AlgorithmConfig): Effect.Effect<AlgorithmShape, ConfigError> =>
  Effect.andThen(
    ensureAlgorithm(config.name),
    Effect.try({
      try: () => makeAlgorithm(config),
      catch: (error) =>
        error instanceof AlgorithmConfigError
          ? new ConfigError({
              field: `algorithm.${error.field}`,
              message: `algorithm.${error.field}: ${error.message}`,
            })
          : new ConfigError({
              field: "algorithm",
              message: String(error instanceof Error ? error.message : error),
            }),
    }),
  );
