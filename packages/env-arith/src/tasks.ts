/**
 * Seeded tasks: a chain of keys, each holding the next key, the last one holding a number. The
 * agent follows the chain with the lookup tool and answers the number.
 */
import type { Task } from "@workflow-r1/core";
import type { ResolvedArithOptions } from "./options.js";

/** mulberry32: a tiny seeded PRNG, so tasks are identical for a given seed on every machine. */
export const rng = (seed: number): (() => number) => {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
};

/** FNV-1a: assigns every possible task to exactly one split, so train and eval never overlap. */
export const fnv1a = (text: string): number => {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return hash;
};

export const splitOf = (signature: string): "train" | "eval" =>
  fnv1a(signature) % 5 === 0 ? "eval" : "train";

/** What an episode needs to know about a task (kept in `Task.metadata`). */
export interface LookupTable {
  /** key → the next key or, for the last key, the value. */
  readonly table: Readonly<Record<string, string>>;
  readonly start: string;
}

const letters = "abcdefghijklmnopqrstuvwxyz";

const randomKey = (next: () => number): string =>
  letters[Math.floor(next() * 26)] + letters[Math.floor(next() * 26)];

export const question = (start: string): string =>
  `Find the value of key ${start}. <tool>lookup: KEY</tool> shows what KEY holds. Reply <answer>VALUE</answer>.`;

/** The tasks of a split, deterministic for (options, split, seed). */
export const makeTasks = (
  options: ResolvedArithOptions,
  split: "train" | "eval",
  seed: number,
): ReadonlyArray<Task> => {
  const size = split === "train" ? options.trainSize : options.evalSize;
  const next = rng(seed);
  const tasks: Task[] = [];
  const seen = new Set<string>();
  for (let attempt = 0; tasks.length < size; attempt++) {
    if (attempt > size * 1000) break; // the task space is smaller than the requested size
    const keys: string[] = [];
    while (keys.length < options.hops) {
      const key = randomKey(next);
      if (!keys.includes(key)) keys.push(key);
    }
    const value = String(10 + Math.floor(next() * 90));
    const signature = `${keys.join(">")}=${value}`;
    if (splitOf(signature) !== split || seen.has(signature)) continue;
    seen.add(signature);
    const table: Record<string, string> = {};
    keys.forEach((key, i) => {
      table[key] = keys[i + 1] ?? value;
    });
    const lookup: LookupTable = { table, start: keys[0] };
    tasks.push({
      id: `arith-${split}-${seed}-${tasks.length}`,
      question: question(keys[0]),
      goldenAnswers: [value],
      metadata: { lookup },
    });
  }
  return tasks;
};

/** The lookup table of a task made by {@link makeTasks}, or undefined for any other task. */
export const lookupOf = (task: Task): LookupTable | undefined => {
  const lookup = task.metadata?.["lookup"] as LookupTable | undefined;
  return lookup && typeof lookup.start === "string" && typeof lookup.table === "object" ? lookup : undefined;
};

/** Ideal assistant turns: follow every key, then answer. */
export const demonstrations = (task: Task): ReadonlyArray<string> => {
  const lookup = lookupOf(task);
  if (!lookup) return [];
  const turns: string[] = [];
  let key = lookup.start;
  while (Object.hasOwn(lookup.table, key)) {
    turns.push(`<tool>lookup: ${key}</tool>`);
    key = lookup.table[key];
  }
  turns.push(`<answer>${key}</answer>`);
  return turns;
};
