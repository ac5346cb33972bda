/**
 * The one seeded pseudo-random generator of workflow-r1. Its whole state is one 32-bit number, so a
 * checkpoint can store it and a resumed run draws exactly what the uninterrupted run would have.
 * Every platform draws the same sequence for the same seed.
 *
 * Two step functions, both public-domain 32-bit designs: `mulberry32` (the default: task
 * generation, dataset shuffles, bootstrap resampling) and `splitmix32` (the trainer's task order and
 * sampler seeds, tiny-model weights). Both are kept so that every existing seed reproduces the runs
 * and models it produced before the generators were shared.
 */
export type RandomAlgorithm = "mulberry32" | "splitmix32";

export class Random {
  private state: number;
  readonly algorithm: RandomAlgorithm;

  // Plain fields rather than parameter properties: some tests run core's sources with Node's type stripping.
  constructor(seed: number, algorithm: RandomAlgorithm = "mulberry32") {
    this.state = seed >>> 0;
    this.algorithm = algorithm;
  }

  /** Uniform in [0, 1). */
  next(): number {
    if (this.algorithm === "mulberry32") {
      this.state = (this.state + 0x6d2b79f5) >>> 0;
      let t = this.state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    }
    this.state = (this.state + 0x9e3779b9) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return ((z ^ (z >>> 16)) >>> 0) / 4294967296;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Integer in [min, max], both included. */
  intIn(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  /** A fresh 31-bit seed (e.g. for a sampler, per step). */
  seed(): number {
    return this.int(0x7fffffff);
  }

  /** Standard normal (Box–Muller; two draws). */
  normal(): number {
    const u = Math.max(this.next(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }

  /** One element, uniformly. */
  pick<A>(items: ReadonlyArray<A>): A {
    return items[this.int(items.length)] as A;
  }

  /** Fisher–Yates, in place (from the last element down); returns `items`. */
  shuffle<A>(items: A[]): A[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j] as A, items[i] as A];
    }
    return items;
  }

  /** The state to store (`new Random(state, algorithm)` continues the sequence). */
  getState(): number {
    return this.state;
  }
}

/** `next` of a fresh mulberry32 `Random`, as a plain function (for code that takes `() => number`). */
export const mulberry32 = (seed: number): (() => number) => {
  const random = new Random(seed, "mulberry32");
  return () => random.next();
};

/** A seeded shuffle of a copy of `items` (mulberry32): the same order for the same seed. */
export const shuffled = <A>(items: ReadonlyArray<A>, seed: number): A[] =>
  new Random(seed).shuffle([...items]);
