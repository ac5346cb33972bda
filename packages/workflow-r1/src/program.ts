/**
 * The `workflow-r1` command. Argument parsing with commander (well kept, typed, generates help);
 * each command selects an Effect over a library function, so everything here is also usable from
 * code. `main` parses the arguments and runs the selected command; `cli.ts` runs `main` with
 * `NodeRuntime.runMain`, the one place a runtime starts (Ctrl-C interrupts the command, which frees
 * its learners, policy and log writers before the process exits).
 */
import { NodeFileSystem } from "@effect/platform-node";
import { ConfigError } from "@workflow-r1/core";
import { Command, InvalidArgumentError } from "commander";
import { Cause, Effect, Exit, type FileSystem } from "effect";
import { setPath } from "./config.js";

const collect = (value: string, previous: string[]) => [...previous, value];
const int = (value: string) => {
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n))
    throw new InvalidArgumentError(`expected an integer, got ${JSON.stringify(value)}`);
  return n;
};

const positiveInt = (value: string) => {
  const n = int(value);
  if (n < 1) throw new InvalidArgumentError(`expected a positive integer, got ${JSON.stringify(value)}`);
  return n;
};
const nonNegative = (value: string) => {
  const n = Number(value);
  if (value.trim() === "" || !(n >= 0))
    throw new InvalidArgumentError(`expected a number ≥ 0, got ${JSON.stringify(value)}`);
  return n;
};

/** `--episodes 0,3,7`: checked to be non-negative integers, passed on as given. */
const indexList = (value: string) => {
  for (const part of value.split(",")) {
    const n = Number(part.trim());
    if (part.trim() === "" || !Number.isInteger(n) || n < 0)
      throw new InvalidArgumentError(
        `expected comma-separated episode indices (0, 1, …), got ${JSON.stringify(part.trim())} in ${JSON.stringify(value)}`,
      );
  }
  return value;
};

/**
 * Turn `--set a.b=1` flags and shorthand flags into a config override object (`--executor-local M`
 * is `environment.options.executor: {kind: local, model: M}`).
 */
export const overridesFrom = (options: Record<string, unknown>): Record<string, unknown> => {
  const overrides: Record<string, unknown> = {};
  for (const assignment of (options["set"] as string[] | undefined) ?? []) {
    const eq = assignment.indexOf("=");
    if (eq <= 0)
      throw new InvalidArgumentError(
        `--set expects key=value (e.g. --set rollout.groupSize=4), got ${JSON.stringify(assignment)}`,
      );
    setPath(overrides, assignment.slice(0, eq), assignment.slice(eq + 1));
  }
  const shorthand: Record<string, string> = {
    steps: "steps",
    seed: "seed",
    algorithm: "algorithm.name",
    env: "environment.name",
    model: "model.path",
    out: "out",
  };
  for (const [flag, key] of Object.entries(shorthand))
    if (options[flag] !== undefined) setPath(overrides, key, String(options[flag]));
  // The operators' executor: a GGUF in-process, or an OpenAI-compatible endpoint.
  if (options["executorLocal"] !== undefined && options["executorUrl"] !== undefined)
    throw new InvalidArgumentError(
      "--executor-local and --executor-url are exclusive: the executor runs either on a local GGUF or on an endpoint",
    );
  if (options["executorLocal"] !== undefined && options["executorModel"] !== undefined)
    throw new InvalidArgumentError(
      "--executor-model names an endpoint's model; with --executor-local the GGUF is the model",
    );
  const executor = (key: string, value: unknown) =>
    setPath(overrides, `environment.options.executor.${key}`, JSON.stringify(String(value)));
  if (options["executorLocal"] !== undefined) {
    executor("kind", "local");
    executor("model", options["executorLocal"]);
  }
  if (options["executorUrl"] !== undefined) executor("baseUrl", options["executorUrl"]);
  if (options["executorModel"] !== undefined) executor("model", options["executorModel"]);
  return overrides;
};

/** A command the arguments selected, to be run by {@link main}. */
type SelectedCommand = Effect.Effect<unknown, unknown, FileSystem.FileSystem>;
let selected: SelectedCommand | undefined;
const select = (command: SelectedCommand) => {
  selected = command;
};
/** The command the last parse selected (none for `--help`), cleared for the next parse. */
const takeSelected = (): SelectedCommand | undefined => {
  const command = selected;
  selected = undefined;
  return command;
};

/** `--set` and shorthand flags as an Effect: a malformed `--set` is a ConfigError, not a throw. */
const overridesOf = (options: Record<string, unknown>) =>
  Effect.try({
    try: () => overridesFrom(options),
    catch: (error) => new ConfigError({ field: "set", message: (error as Error).message }),
  });

export const program = new Command("workflow-r1")
  .description("Train LLM agents with reinforcement learning (Workflow-R1 / GSsPO) on llama.cpp and ggml.")
  .showHelpAfterError();

program
  .command("train")
  .description(
    "Train a policy; with no arguments, the embedded default (tiny model, synthetic QA, GSsPO, CPU).",
  )
  .option("-c, --config <file>", "config file (JSON or YAML) merged over the default")
  .option(
    "--preset <name>",
    "a shipped config: gpu (a ~76M model on one CUDA GPU), workflow-r1-paper (the authors' schedule), workflow-r1-lora (a single-GPU LoRA recipe), smollm2-synthetic (SmolLM2-135M on CPU, synthetic QA), smollm2-workflow-r1 (SmolLM2-135M on CPU, QA with a local executor; not yet learning, see the file)",
  )
  .option("--out <dir>", "output directory (default runs/<timestamp>)")
  .option("--resume", "continue the run in --out from its last complete checkpoint")
  .option("--steps <n>", "number of RL steps", int)
  .option("--seed <n>", "seed", int)
  .option("--algorithm <name>", "gsspo | gspo | grpo | a registered variant")
  .option("--env <name>", "environment: synthetic | workflow-r1 | NAME (package @workflow-r1/env-NAME)")
  .option("--model <path>", "GGUF to start from (path or hf: URI)")
  .option(
    "--executor-local <gguf>",
    "run the operators' executor on this GGUF in-process (llama.cpp, CPU; its own model instance): environment.options.executor {kind: local, model}",
  )
  .option(
    "--executor-url <url>",
    "the operators' OpenAI-compatible executor endpoint (or WORKFLOW_R1_EXECUTOR_URL): environment.options.executor.baseUrl",
  )
  .option(
    "--executor-model <name>",
    "model name sent to the executor endpoint (or WORKFLOW_R1_EXECUTOR_MODEL): environment.options.executor.model",
  )
  .option("--set <key=value>", "override any config field, e.g. --set rollout.groupSize=4", collect, [])
  .action((options) =>
    select(
      Effect.gen(function* () {
        if (options.preset && options.config)
          return yield* new ConfigError({
            field: "preset",
            message: "--preset and --config are exclusive: pick one",
          });
        const { train } = yield* Effect.promise(() => import("./train/run.js"));
        const { presetFile } = yield* Effect.promise(() => import("./presets.js"));
        const overrides = yield* overridesOf(options);
        const file = options.preset ? yield* presetFile(options.preset) : options.config;
        yield* train({ file, overrides, resume: Boolean(options.resume) });
      }),
    ),
  );

program
  .command("compare")
  .description(
    "Train each algorithm with several seeds on the synthetic environment and tabulate final accuracy.",
  )
  .option(
    "--algorithms <list>",
    "comma-separated algorithms, each NAME or NAME@key=value@… (e.g. gsspo@clipLow=0.2@clipHigh=0.2@aggregation=token-mean)",
    "grpo,gspo,gsspo",
  )
  .option("--seeds <n>", "seeds per algorithm", int, 3)
  .option("-c, --config <file>", "base config file")
  .option("--out <dir>", "output directory", "runs/compare")
  .option("--threshold <x>", "accuracy threshold for steps-to-threshold", Number, 0.5)
  .option("--parallel <n>", "runs at a time (child processes)", int, 1)
  .option("--tabulate-only", "only tabulate the runs already in --out; train nothing")
  .option("--no-share-warm-start", "run each algorithm's warm start itself (default: one per seed, shared)")
  .option(
    "--resume",
    "continue a compare that stopped, in the same --out with the same options: finished runs are kept, stopped ones resume from their latest checkpoint",
  )
  .option("--set <key=value>", "override any config field", collect, [])
  .action((options) =>
    select(
      Effect.gen(function* () {
        const { compare } = yield* Effect.promise(() => import("./train/compare.js"));
        yield* compare({
          algorithms: String(options.algorithms).split(","),
          seeds: options.seeds,
          file: options.config,
          out: options.out,
          threshold: options.threshold,
          parallel: options.parallel,
          tabulateOnly: Boolean(options.tabulateOnly),
          shareWarmStart: options.shareWarmStart !== false,
          resume: Boolean(options.resume),
          overrides: yield* overridesOf(options),
        });
      }),
    ),
  );

program
  .command("trajectories")
  .description("Print a readable view of episodes in a trajectory log.")
  .argument("<file>", "trajectories.msgpack written by a run")
  .option("--episodes <list>", "comma-separated episode indices (default: the first 3)", indexList)
  .option("--model <path>", "GGUF whose tokenizer decodes the tokens (optional)")
  .action((file, options) =>
    select(
      Effect.gen(function* () {
        const { printTrajectories } = yield* Effect.promise(() => import("./trajectories.js"));
        yield* printTrajectories(file, options);
      }),
    ),
  );

program
  .command("eval")
  .description("Evaluate a policy on QA benchmarks (EM, sub-EM, F1) with a resumable results file.")
  .requiredOption("--data <dir>", "directory with FlashRAG jsonl benchmark files")
  .option("--benchmarks <list>", "comma-separated benchmarks (default: all present)")
  .option("--method <list>", "direct | cot | sc | workflow (comma-separated for several)", "workflow")
  .option("--model <path>", "policy GGUF (path or hf: URI); required unless --answerer executor")
  .option(
    "--answerer <who>",
    "who answers direct/cot/sc: policy (default) or executor (the baselines of the paper)",
  )
  .option("--executor-url <url>", "OpenAI-compatible executor endpoint (or WORKFLOW_R1_EXECUTOR_URL)")
  .option("--executor-model <name>", "model name sent to the executor (or WORKFLOW_R1_EXECUTOR_MODEL)")
  .option(
    "--executor-local <gguf>",
    "run the executor on this GGUF in-process instead (llama.cpp, CPU, its own model instance)",
  )
  .option(
    "--operators <list>",
    "operators of the workflow agent (default: the paper's seven; add Search to opt in)",
  )
  .option("--operator-budget <n>", "operator calls per episode (default 20)", int)
  .option("--corpus <file>", "FlashRAG corpus jsonl for the Search operator (BM25)")
  .option("--retriever-url <url>", "retrieval server for the Search operator (POST /retrieve)")
  .option("--limit <n>", "questions per benchmark", positiveInt)
  .option("--samples <k>", "samples per question", positiveInt)
  .option(
    "--temperature <t>",
    "sampling temperature (default: 0 for one sample, the method's otherwise)",
    nonNegative,
  )
  .option("--seed <n>", "base seed of the samples (default 0)", int)
  .option("--max-tokens <n>", "tokens per turn (default 512)", positiveInt)
  .option("--max-turns <n>", "turns per episode (default: workflow 21, the authors' limit)", positiveInt)
  .option(
    "--max-episode-tokens <n>",
    "tokens per workflow episode, observations included (default 8192)",
    positiveInt,
  )
  .option("--concurrency <n>", "questions in flight (default 4)", positiveInt)
  .option("--threads <n>", "CPU threads of the policy (default: all available cores)", positiveInt)
  .option(
    "--context-size <n>",
    "context per sequence of the policy (default: the training run's when --model is a run's policy, else 2048)",
    positiveInt,
  )
  .option("--gpu <device>", "auto | cuda | vulkan | false (default auto)")
  .option("--train-run <dir>", "the training run whose questions are refused (default: the --model's folder)")
  .option("--allow-train-overlap", "evaluate trained-on datasets whole anyway (flagged in the report)")
  .option("--out <dir>", "output directory", "runs/eval")
  .action((options) =>
    select(
      Effect.gen(function* () {
        // Every option is decoded by eval's Schema (an unknown --answerer or --gpu names itself);
        // the flag's "false" is the option's false.
        const gpu = options.gpu === "false" ? false : options.gpu;
        const { defaultEvalCommandDeps, evalCommand } = yield* Effect.promise(
          () => import("@workflow-r1/eval"),
        );
        yield* evalCommand(
          {
            ...options,
            ...(gpu !== undefined && { gpu }),
            allowTrainOverlap: Boolean(options.allowTrainOverlap),
          },
          defaultEvalCommandDeps,
        );
      }),
    ),
  );

/**
 * A Schema's multi-line report as one line: each issue's `at ["path"]` joins its message, issues
 * are separated by "; " (`invalid training config in x.yaml: Expected … at ["rollout"]["groupSize"]`).
 */
export const oneLine = (message: string): string =>
  message
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "")
    .reduce(
      (joined, line, i) =>
        i === 0
          ? line
          : line.startsWith("at ") || joined.endsWith(":")
            ? `${joined} ${line}`
            : `${joined}; ${line}`,
      "",
    );

/**
 * One line for a failure: `workflow-r1: Tag: message` (a typed error), `workflow-r1: message`
 * otherwise; an interruption (Ctrl-C) says how to continue. No stack unless WORKFLOW_R1_DEBUG is set.
 */
export const describeFailure = (cause: Cause.Cause<unknown>): string => {
  if (Cause.hasInterruptsOnly(cause))
    return "workflow-r1: interrupted; a training run continues from its last checkpoint with --resume";
  const error = Cause.squash(cause) as { _tag?: unknown; message?: unknown; stack?: unknown };
  const message = oneLine(typeof error?.message === "string" ? error.message : String(error));
  const tag = typeof error?._tag === "string" ? `${error._tag}: ` : "";
  const stack =
    process.env["WORKFLOW_R1_DEBUG"] && typeof error?.stack === "string" ? `\n${error.stack}` : "";
  return `workflow-r1: ${tag}${message}${stack}`;
};

/**
 * Parse `argv` and run the command it selects on Node's file system. A failure is written as one
 * line to stderr and stays the Effect's failure, so `runMain` exits with status 1 (130 when
 * interrupted).
 */
export const main = (argv: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    takeSelected();
    yield* Effect.promise(() => program.parseAsync([...argv]));
    const command = takeSelected();
    if (command) yield* command;
  }).pipe(
    // onExit rather than tapCause: an interruption is not an error a handler sees, but it is reported.
    Effect.onExit((exit) =>
      Exit.isFailure(exit)
        ? Effect.sync(() => process.stderr.write(`${describeFailure(exit.cause)}\n`))
        : Effect.void,
    ),
    Effect.provide(NodeFileSystem.layer),
  );
