/**
 * Service contracts (Effect tags + interfaces). Implementations live in their own packages:
 * the Policy in `@workflow-r1/policy`, the Learner in `@workflow-r1/learner`, environments,
 * executors and retrievers in `@workflow-r1/env-qa` (or your own package).
 */
import { Context, type Effect, type Layer, type Schema, type Scope } from "effect";
import type {
  ContextOverflowError,
  EnvironmentError,
  ExecutorError,
  ModelLoadError,
  NativeLearnerError,
  PolicyError,
  RetrieverError,
} from "./errors.js";
import type { FinishReason, OperatorCall } from "./trajectory.js";

// ───────────────────────────── chat ─────────────────────────────

/**
 * One chat message with its semantic role. A policy maps the roles to those its chat template knows
 * (see {@link ChatRoles}): e.g. a tool observation becomes a user turn for a model never trained on a
 * tool role, and a system prompt is folded into the first user turn for Gemma.
 */
export interface ChatMessage {
  readonly role: "system" | "user" | "assistant" | "tool";
  readonly content: string;
}

// ───────────────────────────── environment ─────────────────────────────

/** One question or problem an environment can be reset to. */
export interface Task {
  readonly id: string;
  readonly question: string;
  /** Reference answers, when the environment scores against them. */
  readonly goldenAnswers?: ReadonlyArray<string>;
  /** Anything else the environment needs (difficulty, source dataset, …). */
  readonly metadata?: Readonly<Record<string, unknown>>;
}

/** What an environment returns when an episode ends. */
export interface EpisodeOutcome {
  readonly reward: number;
  readonly rewardParts: Readonly<Record<string, number>>;
  readonly finishReason: FinishReason;
}

export type StepResult =
  | {
      readonly _tag: "Observation";
      /** Text shown to the agent as the next (tool) message. */
      readonly observation: string;
      readonly operatorCalls: ReadonlyArray<OperatorCall>;
    }
  | ({
      readonly _tag: "Done";
      readonly operatorCalls: ReadonlyArray<OperatorCall>;
    } & EpisodeOutcome);

/** One live episode of an environment. */
export interface Episode {
  /** The messages the agent starts from (system + user prompt). */
  readonly messages: ReadonlyArray<ChatMessage>;
  /** Feed the agent's action text (one assistant turn); get an observation or the end of the episode. */
  readonly step: (action: string) => Effect.Effect<StepResult, EnvironmentError>;
  /**
   * End the episode early (turn, token or context budget spent) and score what the agent wrote so
   * far. `reason` becomes the trajectory's finish reason.
   */
  readonly finish: (reason: FinishReason) => Effect.Effect<EpisodeOutcome, EnvironmentError>;
}

export interface EnvironmentShape {
  readonly name: string;
  /** Strings at which the policy must stop sampling a turn (e.g. `</tool>`, `</answer>`). */
  readonly stopSequences: ReadonlyArray<string>;
  /** Start an episode on a task. Many episodes may be live at once. */
  readonly reset: (task: Task) => Effect.Effect<Episode, EnvironmentError>;
}

export class Environment extends Context.Service<Environment, EnvironmentShape>()(
  "@workflow-r1/core/Environment",
) {}

// ───────────────────────────── policy ─────────────────────────────

export interface SamplingOptions {
  /** Default 1. RL sampling must keep 1 with no truncation so sampler logprobs equal the learner's. */
  readonly temperature?: number;
  /** Default 1 (no nucleus truncation). */
  readonly topP?: number;
  /** Default 0 (no top-k truncation). */
  readonly topK?: number;
  readonly seed?: number;
  /** Maximum tokens to sample in this call. */
  readonly maxTokens: number;
  /** Stop after any of these strings; the stop string's tokens stay in the output. */
  readonly stop?: ReadonlyArray<string>;
}

export type SampleFinishReason = "stop" | "eos" | "length" | "context";

export interface Generation {
  /** The sampled token ids, exactly as sampled. */
  readonly tokens: Int32Array;
  /** log p(token) under the model at temperature 1 without truncation, per sampled token. */
  readonly logprobs: Float32Array;
  readonly finishReason: SampleFinishReason;
  /** The stop string that ended sampling, when finishReason is "stop". */
  readonly stopString?: string;
}

/** A live sequence in the policy's context: its KV cache is kept between calls. */
export interface PolicySequence {
  /** Every token the sequence holds (prompt, sampled and appended). */
  readonly tokens: () => Int32Array;
  /**
   * Append `append` (e.g. observation tokens; may be empty) and sample a continuation. Concurrent
   * calls on different sequences are decoded together in one batch (continuous batching).
   */
  readonly generate: (
    append: Int32Array,
    options: SamplingOptions,
  ) => Effect.Effect<Generation, PolicyError | ContextOverflowError>;
}

export type WeightsSource =
  | { readonly kind: "gguf"; readonly path: string }
  | { readonly kind: "lora"; readonly path: string; readonly scale?: number }
  /** A LoRA adapter GGUF held in memory (e.g. `Learner.exportAdapter`); `label` names it in errors. */
  | {
      readonly kind: "lora-bytes";
      readonly bytes: Uint8Array;
      readonly label?: string;
      readonly scale?: number;
    };

/**
 * How a policy's chat template renders the semantic roles of {@link ChatMessage}: `renderChat` and
 * `renderContinuation` take system / user / assistant / tool messages and map them to the roles the
 * template (and the model) knows.
 */
export interface ChatRoles {
  /** `"system"`: a turn of its own; `"folded"`: prepended (then a blank line) to the first user message. */
  readonly system: "system" | "folded";
  /** `"tool"` only when the template handles a tool role itself; otherwise observations are user turns. */
  readonly tool: "tool" | "user";
}

export interface PolicyInfo {
  readonly modelPath: string;
  readonly contextSize: number;
  readonly vocabularySize: number;
  /** Tokens that end an assistant turn (EOS, EOT, `<|im_end|>`, …): sampling stops at each of them. */
  readonly endOfTurnTokens: ReadonlyArray<number>;
  /**
   * The token the chat template closes an assistant turn with (`<|im_end|>` for ChatML,
   * `<end_of_turn>` for Gemma), one of `endOfTurnTokens`: what a model ends its turns with, and what
   * a demonstration should end with. Absent when the policy cannot tell (then use `endOfTurnTokens`).
   */
  readonly turnEndToken?: number;
  /** The role mapping of the chat template (absent when the policy cannot tell). */
  readonly chatRoles?: ChatRoles;
  /**
   * Where the chat template comes from: the model file (`"embedded"`), or a fallback for a file without
   * one (`"gemma"` when the vocabulary has `<start_of_turn>` / `<end_of_turn>`, `"chatml"` otherwise).
   */
  readonly chatTemplate?: "embedded" | "gemma" | "chatml";
}

export interface PolicyShape {
  readonly info: () => PolicyInfo;
  readonly tokenize: (text: string, options?: { readonly special?: boolean }) => Int32Array;
  readonly detokenize: (tokens: ArrayLike<number>) => string;
  /** Render a conversation with the model's chat template, ending with an assistant header when asked. */
  readonly renderChat: (
    messages: ReadonlyArray<ChatMessage>,
    options?: { readonly addGenerationPrompt?: boolean },
  ) => Int32Array;
  /**
   * Tokens that continue a sequence whose last assistant turn was sampled (ending with
   * `lastTokens`) with `messages` (e.g. one tool message) and then a fresh assistant header. Closes the
   * assistant turn first when the model did not emit its end-of-turn token itself.
   */
  readonly renderContinuation: (
    messages: ReadonlyArray<ChatMessage>,
    lastTokens: ArrayLike<number>,
  ) => Int32Array;
  /** Open a sequence on a prompt; its context slot is freed when the scope closes. */
  readonly openSequence: (
    prompt: Int32Array,
  ) => Effect.Effect<PolicySequence, PolicyError | ContextOverflowError, Scope.Scope>;
  /** Teacher-forced log-probabilities: entry i is log p(tokens[from + i] | tokens[< from + i]). */
  readonly score: (
    tokens: Int32Array,
    from: number,
  ) => Effect.Effect<Float32Array, PolicyError | ContextOverflowError>;
  /** Swap weights between rollout batches: a new full GGUF, or a LoRA adapter over the loaded base. */
  readonly reload: (weights: WeightsSource) => Effect.Effect<void, ModelLoadError>;
}

export class Policy extends Context.Service<Policy, PolicyShape>()("@workflow-r1/core/Policy") {}

// ───────────────────────────── learner ─────────────────────────────

export interface LearnerSequence {
  readonly tokens: Int32Array;
  /** Positions whose log-probability is needed (1 = policy token). */
  readonly mask: Uint8Array;
}

export interface StepStats {
  /** Global gradient norm before clipping. */
  readonly gradNorm: number;
  readonly learningRate: number;
  readonly step: number;
}

export interface LearnerShape {
  /** log p(tokens[t] | tokens[< t]) under the current weights where mask[t] = 1, NaN elsewhere. */
  readonly logprobs: (
    batch: ReadonlyArray<LearnerSequence>,
  ) => Effect.Effect<Float32Array[], NativeLearnerError>;
  /**
   * Accumulate the gradient of Σ_t c_t · logp_t (c_t = dLoss/dlogp_t from the algorithm, 0 where
   * mask is 0). Call once per micro-batch, then `step`.
   */
  readonly backward: (
    batch: ReadonlyArray<LearnerSequence>,
    coefficients: ReadonlyArray<ArrayLike<number>>,
  ) => Effect.Effect<void, NativeLearnerError>;
  /** Clip the global gradient norm, apply AdamW, zero the gradients. */
  readonly step: () => Effect.Effect<StepStats, NativeLearnerError>;
  /** Write the weights: a full GGUF, or a GGUF LoRA adapter (LoRA mode). */
  readonly save: (
    path: string,
    options: { readonly format: "gguf" | "lora" },
  ) => Effect.Effect<void, NativeLearnerError>;
  /**
   * The LoRA adapter `save(path, { format: "lora" })` would write, as GGUF bytes in memory (LoRA
   * mode): the trainer hands it to the policy without a file.
   */
  readonly exportAdapter: () => Effect.Effect<Uint8Array, NativeLearnerError>;
  /** Write / read everything needed to resume: weights, optimizer moments, step. */
  readonly saveState: (path: string) => Effect.Effect<void, NativeLearnerError>;
  readonly loadState: (path: string) => Effect.Effect<void, NativeLearnerError>;
}

export class Learner extends Context.Service<Learner, LearnerShape>()("@workflow-r1/core/Learner") {}

// ───────────────────────────── executor ─────────────────────────────

export interface CompletionRequest {
  readonly messages: ReadonlyArray<ChatMessage>;
  readonly temperature?: number;
  readonly maxTokens?: number;
  readonly stop?: ReadonlyArray<string>;
}

export interface Completion {
  readonly text: string;
  readonly finishReason: "stop" | "length";
}

/** The LLM that runs operators (chat completion). */
export interface ExecutorShape {
  readonly complete: (request: CompletionRequest) => Effect.Effect<Completion, ExecutorError>;
}

export class Executor extends Context.Service<Executor, ExecutorShape>()("@workflow-r1/core/Executor") {}

// ───────────────────────────── retriever ─────────────────────────────

export interface Passage {
  readonly id: string;
  readonly title: string;
  readonly text: string;
  readonly score: number;
}

export interface RetrieverShape {
  readonly search: (query: string, topK: number) => Effect.Effect<ReadonlyArray<Passage>, RetrieverError>;
}

export class Retriever extends Context.Service<Retriever, RetrieverShape>()("@workflow-r1/core/Retriever") {}

// ───────────────────────────── environment plugins ─────────────────────────────

/**
 * How the trainer (`workflow-r1 train --env NAME`) finds an environment: a package exports an
 * `environmentPlugin` of this shape. Everything in it is plain data or a layer, so an environment
 * package never depends on the trainer.
 */
export interface EnvironmentPlugin<Options = Record<string, unknown>> {
  readonly name: string;
  /** One line for `--help` and logs. */
  readonly description: string;
  /** The environment for the given options (the config's `environment.options`). */
  readonly layer: (options: Options) => Layer.Layer<Environment, EnvironmentError>;
  /** Tasks to train or evaluate on, deterministic for a given seed. */
  readonly tasks: (
    options: Options,
    split: "train" | "eval",
    seed: number,
  ) => Effect.Effect<ReadonlyArray<Task>, EnvironmentError>;
  /**
   * Ideal assistant turns for a task, when the environment can produce them: used for a short
   * supervised warm start of models that cannot yet follow the protocol.
   */
  readonly demonstrations?: (task: Task, options: Options) => ReadonlyArray<string>;
  /**
   * The Schema of the config's `environment.options`. The trainer decodes the options with it
   * (unknown keys refused) before a run starts, so a typo or a wrong type fails with the option's
   * path instead of training on a silently different task, and hands the decoded value to `layer`,
   * `tasks` and `demonstrations`. Optional: without it the options are passed as written.
   */
  readonly optionsSchema?: Schema.Decoder<Options>;
}
