/**
 * A small byte-level BPE tokenizer in the GPT-2 layout llama.cpp reads (`tokenizer.ggml.model` =
 * `gpt2`): 256 byte tokens, merges learned deterministically from a built-in English corpus, then
 * special tokens such as `<|im_start|>`, `<|im_end|>` and `<|endoftext|>`.
 */

/** GPT-2's reversible byte → printable-unicode map (`bytes_to_unicode`). */
export const byteToUnicode: ReadonlyArray<string> = (() => {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const out = new Array<string>(256);
  bs.forEach((b, i) => {
    out[b] = String.fromCodePoint(cs[i]);
  });
  return out;
})();

/** ChatML as used by Qwen2.5 (without its tool-calling branches). */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export const DEFAULT_SPECIAL_TOKENS: ReadonlyArray<string> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/** Text the default merges are learned from: agent-style English with the tags our environments use. */
const CORPUS = `The agent reads the question, thinks, calls a tool and answers.
<think> I should search for the answer first. </think>
<tool> search: who wrote the play Hamlet </tool>
<answer> William Shakespeare </answer>
The quick brown fox jumps over the lazy dog. What is the capital of France? The capital of France is Paris.
In reinforcement learning the policy samples a trajectory, the environment returns a reward, and the
learner updates the weights with the advantage of each token. Question: where is the Eiffel Tower?
Answer: the Eiffel Tower is in Paris. There are many things in the world that the model can learn.
`;

const PRETOKENIZE = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/**
 * Learn up to `count` BPE merges from `corpus` (ties broken by the pair's string order so the
 * result is deterministic). Returns merges as `"left right"` in GPT-2 token strings.
 */
export const learnMerges = (count: number, corpus: string = CORPUS): string[] => {
  const encoder = new TextEncoder();
  const words = new Map<string, number>();
  for (const m of corpus.matchAll(PRETOKENIZE)) {
    const w = Array.from(encoder.encode(m[0]), (b) => byteToUnicode[b]).join("\u0000");
    words.set(w, (words.get(w) ?? 0) + 1);
  }
  let seqs = [...words.entries()].map(([w, n]) => ({ parts: w.split("\u0000"), n }));
  const merges: string[] = [];
  while (merges.length < count) {
    const pairs = new Map<string, number>();
    for (const { parts, n } of seqs)
      for (let i = 0; i + 1 < parts.length; i++) {
        const key = `${parts[i]} ${parts[i + 1]}`;
        pairs.set(key, (pairs.get(key) ?? 0) + n);
      }
    let best: string | undefined;
    let bestN = 1;
    for (const [key, n] of pairs)
      if (n > bestN || (n === bestN && best !== undefined && key < best)) [best, bestN] = [key, n];
    if (best === undefined) break;
    merges.push(best);
    const [a, b] = best.split(" ");
    seqs = seqs.map(({ parts, n }) => {
      const out: string[] = [];
      for (let i = 0; i < parts.length; i++) {
        if (i + 1 < parts.length && parts[i] === a && parts[i + 1] === b) {
          out.push(a + b);
          i++;
        } else out.push(parts[i]);
      }
      return { parts: out, n };
    });
  }
  return merges;
};

export interface ByteBpeVocabulary {
  readonly tokens: string[];
  /** llama.cpp token types: 1 normal, 3 control, 6 byte. */
  readonly tokenTypes: number[];
  readonly merges: string[];
  /** id of each special token by its text. */
  readonly special: Record<string, number>;
}

export interface TinyTokenizerOptions {
  /** Merges: a number to learn from the built-in corpus (default: fill the vocabulary), or explicit `"a b"` pairs. */
  readonly merges?: number | ReadonlyArray<string>;
  /** Special (control) tokens, appended last. Default `<|endoftext|>`, `<|im_start|>`, `<|im_end|>`. */
  readonly specialTokens?: ReadonlyArray<string>;
  /** Jinja chat template stored in `tokenizer.chat_template`; default ChatML; `false` to omit. */
  readonly chatTemplate?: string | false;
}

/** Build a vocabulary of exactly `size` tokens (bytes, merges, reserved fillers, specials). */
export const buildByteBpeVocabulary = (
  size: number,
  options: TinyTokenizerOptions = {},
): ByteBpeVocabulary => {
  const specials = options.specialTokens ?? DEFAULT_SPECIAL_TOKENS;
  const room = size - 256 - specials.length;
  if (room < 0)
    throw new RangeError(
      `vocab ${size} is too small: 256 byte tokens + ${specials.length} special tokens need ${256 + specials.length}`,
    );
  const tokens = [...byteToUnicode];
  const tokenTypes = tokens.map(() => 1);
  const seen = new Set(tokens);
  let merges: string[];
  if (Array.isArray(options.merges)) merges = [...(options.merges as ReadonlyArray<string>)];
  else merges = learnMerges(typeof options.merges === "number" ? Math.min(options.merges, room) : room);
  if (merges.length > room) throw new RangeError(`${merges.length} merges do not fit in vocab ${size}`);
  for (const merge of merges) {
    const parts = merge.split(" ");
    if (parts.length !== 2 || !seen.has(parts[0]) || !seen.has(parts[1]))
      throw new RangeError(`merge "${merge}" must join two tokens already in the vocabulary`);
    const joined = parts[0] + parts[1];
    if (seen.has(joined)) continue;
    seen.add(joined);
    tokens.push(joined);
    tokenTypes.push(1);
  }
  for (let i = 0; tokens.length < size - specials.length; i++) {
    tokens.push(`<|reserved_${i}|>`);
    tokenTypes.push(3);
  }
  const special: Record<string, number> = {};
  for (const s of specials) {
    special[s] = tokens.length;
    tokens.push(s);
    tokenTypes.push(3);
  }
  return { tokens, tokenTypes, merges, special };
};
