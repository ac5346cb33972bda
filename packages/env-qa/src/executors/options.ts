/**
 * The plugin's `executor` option: which executor runs the operators, and its settings. `kind`
 * selects it: `"http"` (or no `kind`, as every config before the local executor) is an
 * OpenAI-compatible server ({@link HttpExecutorConfig}); `"local"` is a GGUF run in-process through
 * llama.cpp ({@link LocalModelExecutorConfig}). Both carry the environment's own executor settings
 * (`temperature`, `maxTokens`, `attempts`, `multiAnswerTemperature`, `maxConsecutiveFailures`).
 * Decoded with Schema; an unknown kind, a missing model or a misspelt field is refused with a message
 * naming its option path (`environment.options.executor.model: …`).
 */
import { ConfigError } from "@workflow-r1/core";
import { Effect, Redacted, Result, Schema, SchemaIssue } from "effect";
import type { HttpExecutorConfig } from "./http.js";
import type { LocalModelExecutorConfig } from "./local-model.js";

const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1));
const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0));
const NonNegative = Schema.Number.check(Schema.isGreaterThanOrEqualTo(0));

/** The environment's executor settings, shared by both kinds (see `WorkflowR1EnvConfig.executor`). */
const envSettings = {
  temperature: Schema.optional(NonNegative),
  maxTokens: Schema.optional(PositiveInt),
  attempts: Schema.optional(PositiveInt),
  multiAnswerTemperature: Schema.optional(NonNegative),
  maxConsecutiveFailures: Schema.optional(NonNegativeInt),
};

/** `kind: "http"` or no kind: an OpenAI-compatible chat-completions server. */
export const HttpExecutorOptions = Schema.Struct({
  kind: Schema.optional(Schema.Literal("http")),
  baseUrl: Schema.optional(Schema.String),
  // A string in a config file; code may pass a Redacted one.
  apiKey: Schema.optional(
    Schema.Unknown.check(
      Schema.makeFilter((v) =>
        typeof v === "string" || Redacted.isRedacted(v) ? true : "expected a string (the API key)",
      ),
    ),
  ),
  model: Schema.optional(Schema.String),
  timeoutMs: Schema.optional(PositiveInt),
  maxRetries: Schema.optional(NonNegativeInt),
  baseDelayMs: Schema.optional(NonNegativeInt),
  maxDelayMs: Schema.optional(NonNegativeInt),
  concurrency: Schema.optional(PositiveInt),
  probeTimeoutMs: Schema.optional(PositiveInt),
  extraBody: Schema.optional(Schema.Record(Schema.String, Schema.Unknown)),
  env: Schema.optional(Schema.Record(Schema.String, Schema.UndefinedOr(Schema.String))),
  ...envSettings,
});

/** `kind: "local"`: a GGUF run in-process through llama.cpp (`@workflow-r1/policy`). */
export const LocalExecutorOptions = Schema.Struct({
  kind: Schema.Literal("local"),
  model: Schema.NonEmptyString,
  contextSize: Schema.optional(Schema.Int.check(Schema.isGreaterThanOrEqualTo(64))),
  threads: Schema.optional(PositiveInt),
  sequences: Schema.optional(PositiveInt),
  gpu: Schema.optional(Schema.Union([Schema.Literal(false), Schema.Literals(["auto", "cuda", "vulkan"])])),
  timeoutMs: Schema.optional(PositiveInt),
  ...envSettings,
});

export type HttpExecutorOptions = typeof HttpExecutorOptions.Type;
export type LocalExecutorOptions = typeof LocalExecutorOptions.Type;

/** The decoded `executor` option: the kind and its settings. */
export type ExecutorOptions =
  | { readonly kind: "http"; readonly options: HttpExecutorOptions & HttpExecutorConfig }
  | { readonly kind: "local"; readonly options: LocalExecutorOptions & LocalModelExecutorConfig };

/** The executor kinds, as `kind` names them. */
export const EXECUTOR_KINDS = ["http", "local"] as const;

const format = SchemaIssue.makeFormatterStandardSchemaV1();
const decodeOptions = { onExcessProperty: "error", errors: "all" } as const;
const decodeHttp = Schema.decodeUnknownResult(HttpExecutorOptions, decodeOptions);
const decodeLocal = Schema.decodeUnknownResult(LocalExecutorOptions, decodeOptions);

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/**
 * The problems of an `executor` option, one line each and prefixed by its path (`path.model: …`);
 * empty when it decodes.
 */
export const executorOptionIssues = (
  raw: unknown,
  path = "environment.options.executor",
): ReadonlyArray<string> => {
  if (raw === undefined) return [];
  if (!isRecord(raw))
    return [`${path}: expected an object (the executor settings), got ${JSON.stringify(raw)}`];
  const kind = raw["kind"];
  if (kind !== undefined && kind !== "http" && kind !== "local")
    return [
      `${path}.kind: expected one of ${EXECUTOR_KINDS.map((k) => JSON.stringify(k)).join(", ")}, got ${JSON.stringify(kind)}`,
    ];
  const decoded: Result.Result<unknown, Schema.SchemaError> =
    kind === "local" ? decodeLocal(raw) : decodeHttp(raw);
  if (Result.isSuccess(decoded)) return [];
  return format(decoded.failure.issue).issues.map((issue) => {
    const at = (issue.path ?? []).map((p) => String(typeof p === "object" ? p.key : p));
    const known = kind === "local" ? LocalExecutorOptions.fields : HttpExecutorOptions.fields;
    // An unexpected key: say which keys this kind takes.
    const message =
      at.length === 1 && !(at[0]! in known)
        ? `unknown option for a${kind === "local" ? " local" : "n http"} executor; expected one of ${Object.keys(known).join(", ")}`
        : issue.message;
    return `${[path, ...at].join(".")}: ${message}`;
  });
};

/**
 * Decode the `executor` option (absent = HTTP with every default). Fails with a `ConfigError` whose
 * `field` is the first bad option's path and whose message lists every problem.
 */
export const decodeExecutorOptions = (
  raw: unknown,
  path = "environment.options.executor",
): Effect.Effect<ExecutorOptions, ConfigError> =>
  Effect.suspend(() => {
    const issues = executorOptionIssues(raw, path);
    if (issues.length > 0)
      return Effect.fail(
        new ConfigError({ message: issues.join("; "), field: issues[0]!.slice(0, issues[0]!.indexOf(":")) }),
      );
    const options = (raw ?? {}) as Readonly<Record<string, unknown>>;
    return Effect.succeed(
      (options["kind"] === "local"
        ? { kind: "local", options }
        : { kind: "http", options }) as ExecutorOptions,
    );
  });

/** The plugin's `optionsSchema` field: an object whose problems are reported by path. */
export const ExecutorOptionSchema = Schema.Record(Schema.String, Schema.Unknown).check(
  Schema.makeFilter((value) => {
    const issues = executorOptionIssues(value);
    return issues.length === 0 ? true : issues.join("; ");
  }),
);
