/**
 * Seeded arithmetic chains: a start value and `steps` operations applied left to right, written
 * fully parenthesised (`((7+5)*2)-3`), every intermediate result in [0, maxValue].
 */
import { mulberry32, type Task } from "@workflow-r1/core";
import type { Operator, ResolvedArithOptions } from "./options.js";

/** FNV-1a: assigns every possible task to exactly one split, so train and eval never overlap. */
export const fnv1a = (text: string): number => {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return hash;
};

/** One fifth of all expressions are eval tasks, the rest train tasks. */
export const splitOf = (expression: string): "train" | "eval" =>
  fnv1a(expression) % 5 === 0 ? "eval" : "train";

export interface ArithStep {
  readonly op: Operator;
  readonly operand: number;
}

/** What an episode needs to know about a task (kept in `Task.metadata.arith`). */
export interface ArithChain {
  readonly start: number;
  readonly steps: ReadonlyArray<ArithStep>;
  /** values[i] is the result after step i; the last one is the answer. */
  readonly values: ReadonlyArray<number>;
}

export const apply = (a: number, op: Operator, b: number): number =>
  op === "+" ? a + b : op === "-" ? a - b : a * b;

/** `((7+5)*2)-3`: left to right, every step in parentheses but the last. */
export const expression = (chain: Pick<ArithChain, "start" | "steps">): string =>
  chain.steps.reduce(
    (text, step, i) => `${i === 0 ? text : `(${text})`}${step.op}${step.operand}`,
    String(chain.start),
  );

export const question = (chain: Pick<ArithChain, "start" | "steps">): string =>
  `Compute ${expression(chain)}. One <calc>a+b</calc> per step, then <answer>n</answer>.`;

/** The operands `op` may take at `value` without leaving [0, maxValue] (×1 would be a free step). */
const operandRange = (options: ResolvedArithOptions, value: number, op: Operator): [number, number] =>
  op === "+"
    ? [1, Math.min(options.maxOperand, options.maxValue - value)]
    : op === "-"
      ? [1, Math.min(options.maxOperand, value)]
      : [2, Math.min(options.maxOperand, Math.floor(options.maxValue / Math.max(value, 1)))];

/**
 * A random chain: each step draws an operator among those that can stay in range, then an operand
 * in its range, so every draw is valid. Undefined when no operator fits (e.g. only `-` at 0).
 */
const drawChain = (options: ResolvedArithOptions, next: () => number): ArithChain | undefined => {
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1));
  const start = int(1, options.maxOperand);
  const steps: ArithStep[] = [];
  const values: number[] = [];
  let value = start;
  for (let i = 0; i < options.steps; i++) {
    const feasible = options.ops.filter((op) => {
      const [low, high] = operandRange(options, value, op);
      return low <= high;
    });
    if (feasible.length === 0) return undefined;
    const op = feasible[Math.floor(next() * feasible.length)];
    const operand = int(...operandRange(options, value, op));
    value = apply(value, op, operand);
    steps.push({ op, operand });
    values.push(value);
  }
  return { start, steps, values };
};

/**
 * The tasks of a split, deterministic for (options, split, seed). Fewer than requested when the
 * split holds fewer distinct expressions (e.g. `steps: 1` with small operands).
 */
export const makeTasks = (
  options: ResolvedArithOptions,
  split: "train" | "eval",
  seed: number,
): ReadonlyArray<Task> => {
  const size = split === "train" ? options.trainSize : options.evalSize;
  const next = mulberry32(seed);
  const tasks: Task[] = [];
  const seen = new Set<string>();
  // Stop once 20 000 draws in a row found nothing new: the split holds no more distinct tasks.
  for (let misses = 0; tasks.length < size && misses < 20_000; misses++) {
    const chain = drawChain(options, next);
    if (!chain) continue;
    const text = expression(chain);
    if (splitOf(text) !== split || seen.has(text)) continue;
    seen.add(text);
    misses = -1;
    tasks.push({
      id: `arith-${split}-${seed}-${tasks.length}`,
      question: question(chain),
      goldenAnswers: [String(chain.values[chain.values.length - 1])],
      metadata: { arith: chain, expression: text },
    });
  }
  return tasks;
};

/** The chain of a task made by {@link makeTasks}, or undefined for any other task. */
export const chainOf = (task: Task): ArithChain | undefined => {
  const chain = task.metadata?.["arith"] as ArithChain | undefined;
  return chain && typeof chain.start === "number" && Array.isArray(chain.steps) && Array.isArray(chain.values)
    ? chain
    : undefined;
};

/** Ideal assistant turns: one calculator call per step, then the answer. */
export const demonstrations = (task: Task): ReadonlyArray<string> => {
  const chain = chainOf(task);
  if (!chain) return [];
  const turns = chain.steps.map(
    (step, i) => `<calc>${i === 0 ? chain.start : chain.values[i - 1]}${step.op}${step.operand}</calc>`,
  );
  turns.push(`<answer>${chain.values[chain.values.length - 1]}</answer>`);
  return turns;
};
