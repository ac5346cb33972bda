/**
 * Chat rendering to token ids with a model's Jinja chat template (the one embedded in the GGUF,
 * ChatML otherwise). Message contents are tokenized as plain text (never as special tokens), so an
 * observation that contains `<|im_end|>` cannot forge a turn boundary; the template's own text is
 * tokenized with special tokens enabled.
 */

import { Template } from "@huggingface/jinja";
import type { ChatMessage } from "@workflow-r1/core";
import { CHATML_TEMPLATE } from "@workflow-r1/gguf";

export interface ChatTokenizer {
  readonly tokenize: (text: string, special: boolean) => ReadonlyArray<number>;
  /** Text of the end-of-turn token (e.g. `<|im_end|>`), used by {@link ChatRenderer.continuation}. */
  readonly endOfTurnText?: string;
  readonly endOfTurnTokens: ReadonlyArray<number>;
  readonly bosText?: string;
  readonly eosText?: string;
}

const SENTINEL = (i: number) => `\uE000MSG${i}\uE001`;
const SENTINEL_RE = /\uE000MSG(\d+)\uE001/g;

export class ChatRenderer {
  private readonly template: Template;
  constructor(
    readonly source: string | undefined,
    private readonly tok: ChatTokenizer,
  ) {
    this.template = new Template(source ?? CHATML_TEMPLATE);
  }

  /** Render `messages` to text pieces: template text (special) and message contents (plain). */
  private pieces(messages: ReadonlyArray<ChatMessage>, addGenerationPrompt: boolean) {
    const rendered = this.template.render({
      messages: messages.map((m, i) => ({ role: m.role, content: SENTINEL(i) })),
      add_generation_prompt: addGenerationPrompt,
      bos_token: this.tok.bosText ?? "",
      eos_token: this.tok.eosText ?? "",
    });
    const pieces: Array<{ text: string; special: boolean; message?: number }> = [];
    let last = 0;
    const seen = new Set<number>();
    for (const m of rendered.matchAll(SENTINEL_RE)) {
      const index = Number(m[1]);
      if (m.index > last) pieces.push({ text: rendered.slice(last, m.index), special: true });
      pieces.push({ text: messages[index].content, special: false, message: index });
      seen.add(index);
      last = m.index + m[0].length;
    }
    if (last < rendered.length) pieces.push({ text: rendered.slice(last), special: true });
    // A template that transforms contents (e.g. trims them) hides the sentinels: render for real.
    if (seen.size !== messages.length) {
      const text = this.template.render({
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        add_generation_prompt: addGenerationPrompt,
        bos_token: this.tok.bosText ?? "",
        eos_token: this.tok.eosText ?? "",
      });
      return [{ text, special: true }];
    }
    return pieces;
  }

  private tokens(pieces: ReadonlyArray<{ text: string; special: boolean }>): Int32Array {
    const out: number[] = [];
    for (const p of pieces) if (p.text.length > 0) out.push(...this.tok.tokenize(p.text, p.special));
    return Int32Array.from(out);
  }

  render(messages: ReadonlyArray<ChatMessage>, addGenerationPrompt: boolean): Int32Array {
    return this.tokens(this.pieces(messages, addGenerationPrompt));
  }

  /**
   * Tokens that follow a sampled assistant turn: whatever the template writes after the assistant's
   * content (its end-of-turn marker, dropped when the model already emitted it), then `messages`,
   * then a fresh assistant header.
   */
  continuation(messages: ReadonlyArray<ChatMessage>, lastTokens: ArrayLike<number>): Int32Array {
    const anchor: ChatMessage[] = [
      { role: "user", content: "u" },
      { role: "assistant", content: "a" },
    ];
    const all = this.pieces([...anchor, ...messages], true);
    const at = all.findIndex((p) => p.message === 1);
    if (at < 0) throw new Error("the chat template does not render assistant contents verbatim");
    const tail = all.slice(at + 1).map((p) => ({ ...p }));
    const last = lastTokens.length > 0 ? lastTokens[lastTokens.length - 1] : undefined;
    const endedTurn = last !== undefined && this.tok.endOfTurnTokens.includes(last);
    const eot = this.tok.endOfTurnText;
    if (endedTurn && eot !== undefined && tail.length > 0 && tail[0].special && tail[0].text.startsWith(eot))
      tail[0].text = tail[0].text.slice(eot.length);
    return this.tokens(tail);
  }
}
