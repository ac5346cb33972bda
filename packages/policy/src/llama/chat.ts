/**
 * Chat rendering to token ids with a model's Jinja chat template (the one embedded in the GGUF; for a
 * file without one, a Gemma template when the vocabulary has Gemma's turn markers, ChatML otherwise).
 * Message contents are tokenized as plain text (never as special tokens), so an observation that
 * contains `<|im_end|>` cannot forge a turn boundary; the template's own text is tokenized with special
 * tokens enabled.
 *
 * The API keeps the semantic roles (system, user, assistant, tool) and maps them to what the template
 * handles (see {@link ChatRoles}), found once from the template's source and by rendering probes: a
 * template that raises on a role, drops it or folds it only decides the mapping, it never fails a run.
 */

import { Template } from "@huggingface/jinja";
import type { ChatMessage, ChatRoles } from "@workflow-r1/core";
import { CHATML_TEMPLATE } from "@workflow-r1/gguf";

export type { ChatRoles } from "@workflow-r1/core";

export interface ChatTokenizer {
  readonly tokenize: (text: string, special: boolean) => ReadonlyArray<number>;
  /** Tokens at which sampling stops (the model's end-of-generation tokens). */
  readonly endOfTurnTokens: ReadonlyArray<number>;
  /** A token's text as the template writes it (special tokens rendered, e.g. `<|im_end|>`). */
  readonly tokenText: (token: number) => string;
  /** Whether a token is a special (control) token; default: one of `endOfTurnTokens`. */
  readonly isSpecial?: (token: number) => boolean;
  /** The model's own end-of-turn token (EOT, else EOS): the turn end when the template shows none. */
  readonly fallbackTurnEnd?: number;
  readonly bosText?: string;
  readonly eosText?: string;
}

/**
 * Gemma's chat format, for a Gemma GGUF without `tokenizer.chat_template` (llama.cpp detects the same
 * format from the `<start_of_turn>` token): BOS, user and model turns only, the system prompt and a
 * blank line folded into the first user turn, any other role an error.
 */
export const GEMMA_TEMPLATE =
  "{{ bos_token }}" +
  "{%- if messages[0]['role'] == 'system' -%}" +
  "{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}{%- set loop_messages = messages[1:] -%}" +
  "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}" +
  "{%- for message in loop_messages -%}" +
  "{%- if message['role'] == 'user' -%}{%- set role = 'user' -%}" +
  "{%- elif message['role'] == 'assistant' or message['role'] == 'model' -%}{%- set role = 'model' -%}" +
  "{%- else -%}{{ raise_exception('Gemma renders only user and model turns, not ' + message['role']) }}{%- endif -%}" +
  "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') + message['content'] + '<end_of_turn>\\n' }}" +
  "{%- endfor -%}" +
  "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}";

export type ChatTemplateKind = "embedded" | "gemma" | "chatml";

/** The template to render with: the embedded one, else Gemma's when the vocabulary has its markers, else ChatML. */
export const chatTemplateFor = (
  embedded: string | undefined,
  hasSpecialToken: (text: string) => boolean,
): { source: string; kind: ChatTemplateKind } => {
  if (embedded !== undefined && embedded.trim().length > 0) return { source: embedded, kind: "embedded" };
  if (hasSpecialToken("<start_of_turn>") && hasSpecialToken("<end_of_turn>"))
    return { source: GEMMA_TEMPLATE, kind: "gemma" };
  return { source: CHATML_TEMPLATE, kind: "chatml" };
};

/**
 * Whether a template's source compares a message role with "tool" (Qwen2.5's `message.role == "tool"`,
 * Mistral's `message["role"] == "tool"`, `role in [..., "tool"]`): a template that only echoes whatever
 * role it is given (plain ChatML) renders a tool turn the model was never trained on.
 */
export const templateHandlesToolRole = (source: string): boolean => {
  for (const [block] of source.matchAll(/\{[{%][\s\S]*?[%}]\}/g))
    if (/role/.test(block) && /(==|!=|\bin\b)/.test(block) && /["']tool["']/.test(block)) return true;
  return false;
};

const SENTINEL = (i: number) => `\uE000MSG${i}\uE001`;
const SENTINEL_RE = /\uE000MSG(\d+)\uE001/g;

interface Piece {
  text: string;
  special: boolean;
  message?: number;
}

export class ChatRenderer {
  private readonly template: Template;
  /** How the semantic roles are rendered by this template. */
  readonly roles: ChatRoles;
  /** The token the template closes an assistant turn with (undefined when neither the template nor the model names one). */
  readonly turnEndToken: number | undefined;
  /** The text of {@link turnEndToken}, dropped from a continuation when the model emitted it itself. */
  private readonly turnEndText: string | undefined;

  constructor(
    readonly source: string | undefined,
    private readonly tok: ChatTokenizer,
    /** Where `source` comes from (for {@link kind}); undefined `source` means ChatML. */
    readonly kind: ChatTemplateKind = source === undefined ? "chatml" : "embedded",
  ) {
    this.template = new Template(source ?? CHATML_TEMPLATE);
    const text = source ?? CHATML_TEMPLATE;
    this.roles = {
      system: this.rendersSystemTurn() ? "system" : "folded",
      tool: templateHandlesToolRole(text) && this.rendersToolTurn() ? "tool" : "user",
    };
    this.turnEndToken = this.findTurnEnd() ?? tok.fallbackTurnEnd;
    this.turnEndText = this.turnEndToken === undefined ? undefined : tok.tokenText(this.turnEndToken);
  }

  /** `messages` with the template's roles: tool as user unless handled, system folded unless rendered. */
  mapRoles(messages: ReadonlyArray<ChatMessage>): ChatMessage[] {
    const out: ChatMessage[] = [];
    let pendingSystem: string | undefined;
    for (const m of messages) {
      if (m.role === "system" && this.roles.system === "folded") {
        // The leading system prompt waits for the first user message; a later one is a user turn.
        if (out.length === 0)
          pendingSystem = pendingSystem === undefined ? m.content : `${pendingSystem}\n\n${m.content}`;
        else out.push({ role: "user", content: m.content });
        continue;
      }
      const role = m.role === "tool" && this.roles.tool === "user" ? "user" : m.role;
      if (pendingSystem !== undefined) {
        if (role === "user") {
          out.push({ role, content: `${pendingSystem}\n\n${m.content}` });
          pendingSystem = undefined;
          continue;
        }
        out.push({ role: "user", content: pendingSystem });
        pendingSystem = undefined;
      }
      out.push({ role, content: m.content });
    }
    if (pendingSystem !== undefined) out.push({ role: "user", content: pendingSystem });
    return out;
  }

  /** The template's output for `messages` as given (no role mapping). */
  private renderText(messages: ReadonlyArray<ChatMessage>, addGenerationPrompt: boolean): string {
    return this.template.render({
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      add_generation_prompt: addGenerationPrompt,
      bos_token: this.tok.bosText ?? "",
      eos_token: this.tok.eosText ?? "",
    });
  }

  /** Render template-role `messages` to text pieces: template text (special) and message contents (plain). */
  private pieces(messages: ReadonlyArray<ChatMessage>, addGenerationPrompt: boolean): Piece[] {
    const rendered = this.renderText(
      messages.map((m, i) => ({ role: m.role, content: SENTINEL(i) })),
      addGenerationPrompt,
    );
    const pieces: Piece[] = [];
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
    if (seen.size !== messages.length)
      return [{ text: this.renderText(messages, addGenerationPrompt), special: true }];
    return pieces;
  }

  /** Pieces of a probe conversation, or undefined when the template raises on it. */
  private probe(messages: ReadonlyArray<ChatMessage>): Piece[] | undefined {
    try {
      return this.pieces(messages, false);
    } catch {
      return undefined;
    }
  }

  /**
   * A system message is a turn of its own when the template renders it before the user's content with
   * markup in between (ChatML's `<|im_end|>\n<|im_start|>user\n`); raising, dropping it, or writing
   * only whitespace between the two (Gemma's own template folds it so) means it is folded.
   */
  private rendersSystemTurn(): boolean {
    const pieces = this.probe([
      { role: "system", content: "s" },
      { role: "user", content: "u" },
    ]);
    if (pieces === undefined) return false;
    const s = pieces.findIndex((p) => p.message === 0);
    const u = pieces.findIndex((p) => p.message === 1);
    if (s < 0 || u < s) return false;
    return pieces.slice(s + 1, u).some((p) => p.special && p.text.trim().length > 0);
  }

  /** The template renders a tool message after an assistant turn (with its content verbatim). */
  private rendersToolTurn(): boolean {
    const pieces = this.probe([
      { role: "user", content: "u" },
      { role: "assistant", content: "a" },
      { role: "tool", content: "t" },
    ]);
    return pieces?.some((p) => p.message === 2) ?? false;
  }

  /** The first special token the template writes after an assistant's content (before the next user turn). */
  private findTurnEnd(): number | undefined {
    const pieces = this.probe(
      this.mapRoles([
        { role: "user", content: "u" },
        { role: "assistant", content: "a" },
        { role: "user", content: "v" },
      ]),
    );
    const at = pieces?.findIndex((p) => p.message === 1) ?? -1;
    const next = at < 0 ? undefined : pieces?.[at + 1];
    if (next === undefined || !next.special) return undefined;
    const isSpecial = this.tok.isSpecial ?? ((t: number) => this.tok.endOfTurnTokens.includes(t));
    return this.tok.tokenize(next.text, true).find(isSpecial);
  }

  private tokens(pieces: ReadonlyArray<{ text: string; special: boolean }>): Int32Array {
    const out: number[] = [];
    for (const p of pieces) if (p.text.length > 0) out.push(...this.tok.tokenize(p.text, p.special));
    return Int32Array.from(out);
  }

  render(messages: ReadonlyArray<ChatMessage>, addGenerationPrompt: boolean): Int32Array {
    return this.tokens(this.pieces(this.mapRoles(messages), addGenerationPrompt));
  }

  /**
   * Tokens that follow a sampled assistant turn: whatever the template writes after the assistant's
   * content (its end-of-turn marker, dropped when the model already emitted that token), then
   * `messages` (roles mapped: an observation right after the assistant turn), then a fresh assistant
   * header.
   */
  continuation(messages: ReadonlyArray<ChatMessage>, lastTokens: ArrayLike<number>): Int32Array {
    const anchor: ChatMessage[] = [
      { role: "user", content: "u" },
      { role: "assistant", content: "a" },
    ];
    const all = this.pieces([...anchor, ...this.mapRoles(messages)], true);
    const at = all.findIndex((p) => p.message === 1);
    if (at < 0) throw new Error("the chat template does not render assistant contents verbatim");
    const tail = all.slice(at + 1).map((p) => ({ ...p }));
    const last = lastTokens.length > 0 ? lastTokens[lastTokens.length - 1] : undefined;
    const eot = this.turnEndText;
    if (
      last !== undefined &&
      last === this.turnEndToken &&
      eot !== undefined &&
      tail.length > 0 &&
      tail[0].special &&
      tail[0].text.startsWith(eot)
    )
      tail[0].text = tail[0].text.slice(eot.length);
    return this.tokens(tail);
  }
}
