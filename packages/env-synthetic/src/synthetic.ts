/**
 * `SyntheticQAEnv`: the Workflow-R1 protocol and reward over a generated knowledge base, with no LLM.
 * Every task has its own small world of short made-up names linked by a few relations
 * ("boss of kob is dax"); the question chains relations ("pal of boss of kob"), so the agent must
 * look up one fact with `Search`, then use the name it read in the next lookup: `hops` Think-Action
 * cycles, then the answer. Facts change per task, so they cannot be memorised; names are 3 bytes and
 * the vocabulary is tiny, so a byte-level model of a few hundred thousand parameters can learn it.
 */
import {
  type ChatMessage,
  Environment,
  EnvironmentError,
  type EnvironmentPlugin,
  type EnvironmentShape,
  Random,
  type Task,
} from "@workflow-r1/core";
import { buildPrompt, makeEpisode, type OperatorDescription, stopSequences } from "@workflow-r1/env-qa";
import { Effect, Layer, Schema } from "effect";

export const SYNTHETIC_RELATIONS = ["boss", "pal", "kin"] as const;
export type SyntheticRelation = (typeof SYNTHETIC_RELATIONS)[number];

const CONSONANTS = "bdgkmnprstvz";
const VOWELS = "aeiou";

/** What a synthetic task carries in `metadata.synthetic`. */
export interface SyntheticWorld {
  /** `"relation of name"` → name, for every name and relation of the task's world. */
  readonly facts: Readonly<Record<string, string>>;
  /** The start name. */
  readonly start: string;
  /** Relations applied in order (the first is looked up first). */
  readonly relations: ReadonlyArray<SyntheticRelation>;
}

/** A count, or an inclusive range `[min, max]` drawn uniformly per task (or per observation). */
export type CountOrRange = number | readonly [number, number];

export interface SyntheticQAConfig {
  /**
   * Hops per question (1–12), or a range `[min, max]` drawn per task: each hop needs one Search
   * cycle. Default 2.
   */
  readonly difficulty?: CountOrRange;
  /**
   * Distractor facts around the looked-up fact in each Search result (0–50, or a range drawn per
   * observation): observations of unequal length, some long, some short. Default 0.
   */
  readonly distractors?: CountOrRange;
  /**
   * Where the looked-up fact sits among the distractors: "shuffled" (default; the agent must find
   * it) or "fact-last" (always last, right before the observation ends, where it is without
   * distractors: observations of unequal length, the same copy skill).
   */
  readonly distractorOrder?: "shuffled" | "fact-last";
  /** Names per task world (≥ 3). Default 6. */
  readonly entities?: number;
  /**
   * "compact" (default): one user message `Query: …` (short prompts suit tiny models);
   * "full": the Workflow-R1 system + user prompt listing the Search operator.
   */
  readonly prompt?: "compact" | "full";
  /** Operator calls per episode. Default 20. */
  readonly operatorBudget?: number;
  /** Observation length limit in characters. Default 2048. */
  readonly maxObservationChars?: number;
}

export interface ResolvedSyntheticQAConfig {
  readonly difficulty: CountOrRange;
  readonly distractors: CountOrRange;
  readonly distractorOrder: "shuffled" | "fact-last";
  readonly entities: number;
  readonly prompt: "compact" | "full";
  readonly operatorBudget: number;
  readonly maxObservationChars: number;
}

const Count = (minimum: number, maximum: number) => Schema.Int.check(Schema.isBetween({ minimum, maximum }));

/** A count in [minimum, maximum], or a range `[min, max]` of such counts with min ≤ max. */
const CountOrRangeSchema = (minimum: number, maximum: number) =>
  Schema.Union([
    Count(minimum, maximum),
    Schema.Tuple([Count(minimum, maximum), Count(minimum, maximum)]).check(
      Schema.makeFilter((range) => range[0] <= range[1] || `a range [min, max] needs min ≤ max`),
    ),
  ]);

/**
 * The environment's options as a Schema (the {@link SyntheticQAConfig} fields plus the plugin's
 * `trainTasks` / `evalTasks`): the trainer decodes `environment.options` with it before a run, and
 * {@link resolveSyntheticQAConfig} checks a config with it, so an unknown key (a typo) or a value
 * out of range fails with the option's name instead of training on a silently different task.
 */
export const SyntheticQAOptions = Schema.Struct({
  difficulty: Schema.optional(CountOrRangeSchema(1, 12)),
  distractors: Schema.optional(CountOrRangeSchema(0, 50)),
  distractorOrder: Schema.optional(Schema.Literals(["shuffled", "fact-last"])),
  entities: Schema.optional(Count(3, 200)),
  prompt: Schema.optional(Schema.Literals(["compact", "full"])),
  operatorBudget: Schema.optional(Count(0, 1000)),
  maxObservationChars: Schema.optional(Count(16, 1_000_000)),
  trainTasks: Schema.optional(Count(1, 10_000_000)),
  evalTasks: Schema.optional(Count(1, 10_000_000)),
});
export type SyntheticQAOptions = typeof SyntheticQAOptions.Type;

const decodeOptions = Schema.decodeUnknownSync(SyntheticQAOptions, {
  onExcessProperty: "error",
  errors: "all",
});

/** A count from a count or a range (one draw of `random` for a range, none for a count). */
const draw = (value: CountOrRange, random: Random): number =>
  typeof value === "number" ? value : random.intIn(value[0], value[1]);

/** Check the config with {@link SyntheticQAOptions} and fill defaults (plain data, e.g. a config file's `environment.options`). */
export const resolveSyntheticQAConfig = (
  config: Readonly<Record<string, unknown>> | SyntheticQAConfig = {},
): Effect.Effect<ResolvedSyntheticQAConfig, EnvironmentError> =>
  Effect.try({
    try: () => {
      const c = decodeOptions(config);
      return {
        difficulty: c.difficulty ?? 2,
        distractors: c.distractors ?? 0,
        distractorOrder: c.distractorOrder ?? "shuffled",
        entities: c.entities ?? 6,
        prompt: c.prompt ?? "compact",
        operatorBudget: c.operatorBudget ?? 20,
        maxObservationChars: c.maxObservationChars ?? 2048,
      };
    },
    catch: (error) =>
      new EnvironmentError({
        message: `SyntheticQAEnv config: ${error instanceof Error ? error.message : String(error)}`,
        cause: error,
      }),
  });

const makeName = (random: Random): string =>
  random.pick([...CONSONANTS]) + random.pick([...VOWELS]) + random.pick([...CONSONANTS]);

/** The question text for a chain: the last relation outermost, e.g. `pal of boss of kob`. */
export const syntheticQuestion = (world: SyntheticWorld): string =>
  [...world.relations].reverse().join(" of ") + ` of ${world.start}`;

/** Follow the chain through the facts: every intermediate name and the answer last. */
export const syntheticChain = (world: SyntheticWorld): ReadonlyArray<string> => {
  const names: string[] = [];
  let current = world.start;
  for (const relation of world.relations) {
    current = world.facts[`${relation} of ${current}`] ?? "";
    names.push(current);
  }
  return names;
};

/** One task's world. Consecutive hops never return to the name they started from. */
export const generateWorld = (random: Random, entities: number, hops: number): SyntheticWorld => {
  const names = new Set<string>();
  while (names.size < entities) names.add(makeName(random));
  const list = [...names];
  const facts: Record<string, string> = {};
  for (const name of list)
    for (const relation of SYNTHETIC_RELATIONS)
      facts[`${relation} of ${name}`] = random.pick(list.filter((n) => n !== name));
  const relations = Array.from({ length: hops }, () => random.pick(SYNTHETIC_RELATIONS));
  return { facts, start: random.pick(list), relations };
};

/** Deterministic tasks for a seed; train and eval draw from disjoint seed streams. */
export const syntheticTasks = (
  config: SyntheticQAConfig & {
    readonly count: number;
    readonly seed: number;
    readonly split?: "train" | "eval";
  },
): ReadonlyArray<Task> => {
  const split = config.split ?? "train";
  const difficulty = config.difficulty ?? 2;
  const entities = config.entities ?? 6;
  const random = new Random((config.seed * 2 + (split === "eval" ? 1 : 0)) ^ 0x5eed);
  return Array.from({ length: config.count }, (_, i) => {
    // A fixed difficulty draws nothing, so its task stream is what it always was.
    const hops = draw(difficulty, random);
    const world = generateWorld(random, entities, hops);
    const chain = syntheticChain(world);
    return {
      id: `synthetic-${split}-${config.seed}-${hops}-${i}`,
      question: syntheticQuestion(world),
      goldenAnswers: [chain[chain.length - 1] ?? ""],
      metadata: { synthetic: world, difficulty: hops },
    };
  });
};

const worldOf = (task: Task): SyntheticWorld | undefined => {
  const world = task.metadata?.["synthetic"] as SyntheticWorld | undefined;
  return world &&
    typeof world.facts === "object" &&
    Array.isArray(world.relations) &&
    typeof world.start === "string"
    ? world
    : undefined;
};

/** The ideal assistant turns: one Search per hop, then the answer. */
export const syntheticDemonstrations = (task: Task): ReadonlyArray<string> => {
  const world = worldOf(task);
  if (!world) return [];
  const chain = syntheticChain(world);
  const turns: string[] = [];
  let current = world.start;
  world.relations.forEach((relation, i) => {
    turns.push(`<think>${relation} of ${current}</think>\n<tool>Search: ${relation} of ${current}</tool>`);
    current = chain[i] ?? "";
  });
  turns.push(`<think>${current}</think>\n<answer>${current}</answer>`);
  return turns;
};

const SEARCH: OperatorDescription = {
  name: "Search",
  usage: "relation of name",
  description: `looks up one fact, e.g. "boss of kob" returns "boss of kob is dax". Relations: ${SYNTHETIC_RELATIONS.join(", ")}.`,
};

const LOOKUP = /^\s*([a-z]+)\s+of\s+([a-z]+)\s*$/;

/** The Search operator over one world. Bad input gets a message saying what to write. */
export const syntheticSearch = (world: SyntheticWorld, input: string): string => {
  const match = LOOKUP.exec(input.toLowerCase());
  if (!match) return "Search needs: relation of name (e.g. boss of kob)";
  const [, relation, name] = match;
  if (!(SYNTHETIC_RELATIONS as ReadonlyArray<string>).includes(relation ?? ""))
    return `unknown relation ${relation}; use ${SYNTHETIC_RELATIONS.join(", ")}`;
  const value = world.facts[`${relation} of ${name}`];
  return value === undefined ? `no entry for ${name}` : `${relation} of ${name} is ${value}`;
};

/** A 32-bit FNV-1a hash of a string (seeds the distractors of one observation). */
const hashString = (text: string): number => {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
};

/**
 * A Search result with `count` other facts of the same world around it, in a random order fixed by
 * `seed`: the agent has to read the fact it asked for out of a longer observation.
 */
export const withDistractors = (
  world: SyntheticWorld,
  result: string,
  count: number,
  seed: number,
  order: "shuffled" | "fact-last" = "shuffled",
): string => {
  if (count === 0) return result;
  const random = new Random(seed);
  const others = Object.entries(world.facts)
    .map(([key, value]) => `${key} is ${value}`)
    .filter((fact) => fact !== result);
  const lines: string[] = [];
  for (let i = 0; i < count && others.length > 0; i++)
    lines.push(others.splice(random.int(others.length), 1)[0]!);
  lines.splice(order === "fact-last" ? lines.length : random.int(lines.length + 1), 0, result);
  return lines.join("; ");
};

/** The environment for a resolved config. */
export const makeSyntheticQAEnv = (config: ResolvedSyntheticQAConfig): EnvironmentShape => ({
  name: "synthetic-qa",
  stopSequences,
  reset: (task) =>
    Effect.suspend(() => {
      const world = worldOf(task);
      if (!world)
        return Effect.fail(
          new EnvironmentError({
            message: `task ${task.id} has no metadata.synthetic world; make tasks with syntheticTasks`,
          }),
        );
      let calls = 0;
      const messages: ReadonlyArray<ChatMessage> =
        config.prompt === "compact"
          ? [{ role: "user", content: `Query: ${task.question}` }]
          : buildPrompt(task.question, { operators: [SEARCH], operatorBudget: config.operatorBudget });
      return Effect.succeed(
        makeEpisode({
          taskId: task.id,
          messages,
          goldenAnswers: task.goldenAnswers ?? [],
          operatorBudget: config.operatorBudget,
          maxObservationChars: config.maxObservationChars,
          operatorNames: ["Search"],
          runOperator: (_name, input) =>
            Effect.sync(() => {
              const result = syntheticSearch(world, input);
              if (config.distractors === 0 || !result.includes(" is ")) return result;
              // Fixed by the task, the query and the call's index: reproducible episodes.
              const seed = hashString(`${task.id}\u0000${input}\u0000${calls++}`);
              return withDistractors(
                world,
                result,
                draw(config.distractors, new Random(seed ^ 0x9e37)),
                seed,
                config.distractorOrder,
              );
            }),
        }),
      );
    }),
});

export const SyntheticQAEnv = {
  /** The `Environment` layer (no Executor or Retriever needed). */
  layer: (
    config: SyntheticQAConfig | Readonly<Record<string, unknown>> = {},
  ): Layer.Layer<Environment, EnvironmentError> =>
    Layer.effect(Environment, Effect.map(resolveSyntheticQAConfig(config), makeSyntheticQAEnv)),
  make: makeSyntheticQAEnv,
  resolveConfig: resolveSyntheticQAConfig,
  tasks: syntheticTasks,
  demonstrations: syntheticDemonstrations,
} as const;

/**
 * What `workflow-r1 train --env synthetic` (the default) imports: the synthetic QA environment.
 * Options: the {@link SyntheticQAConfig} fields plus `trainTasks` / `evalTasks` (default 512 / 128).
 */
export const environmentPlugin: EnvironmentPlugin = {
  name: "synthetic-qa",
  description:
    "Synthetic multi-hop QA with the Workflow-R1 protocol and reward: look up facts with Search, chain them, answer.",
  layer: (options) => SyntheticQAEnv.layer(options),
  tasks: (options, split, seed) =>
    Effect.flatMap(resolveSyntheticQAConfig(options), (resolved) => {
      const key = split === "train" ? "trainTasks" : "evalTasks";
      // resolveSyntheticQAConfig decoded the options with SyntheticQAOptions: a count is a positive integer.
      const count = (options[key] as number | undefined) ?? (split === "train" ? 512 : 128);
      return Effect.succeed(syntheticTasks({ ...resolved, count, seed, split }));
    }),
  demonstrations: (task) => syntheticDemonstrations(task),
  optionsSchema: SyntheticQAOptions,
};
