/**
 * Progress of an evaluation: a live bar (cli-progress) in an interactive terminal, plain lines
 * in CI and logs, so a CI log stays readable and grep-able.
 */
import { SingleBar } from "cli-progress";
import type { ProgressEvent } from "./runner.js";

export type ProgressMode = "auto" | "bar" | "lines" | "none";

export interface EvalProgress {
  readonly onProgress: (event: ProgressEvent) => void;
  readonly stop: () => void;
}

export interface ProgressOptions {
  readonly mode?: ProgressMode;
  /** Where plain lines and the bar go (default: process.stderr). */
  readonly stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** In lines mode, print every this many questions (default: about every 10%). */
  readonly every?: number;
}

/** Running means over the questions scored so far, for the progress text. */
const running = () => {
  let n = 0;
  let em = 0;
  let f1 = 0;
  return {
    add: (event: ProgressEvent) => {
      if (!event.result) return;
      n++;
      em += event.result.em;
      f1 += event.result.f1;
    },
    reset: () => {
      n = 0;
      em = 0;
      f1 = 0;
    },
    text: () =>
      n === 0 ? "" : `EM ${((100 * em) / n).toFixed(1)} F1 ${((100 * f1) / n).toFixed(1)} (${n} new)`,
  };
};

export const createEvalProgress = (options: ProgressOptions = {}): EvalProgress => {
  const stream = options.stream ?? process.stderr;
  const mode =
    options.mode === undefined || options.mode === "auto"
      ? stream.isTTY && !process.env.CI
        ? "bar"
        : "lines"
      : options.mode;
  if (mode === "none") return { onProgress: () => {}, stop: () => {} };
  const stats = running();
  let current = "";
  if (mode === "lines") {
    let lastPrinted = -1;
    return {
      onProgress: (event) => {
        const label = `${event.benchmark}/${event.method}`;
        if (label !== current) {
          current = label;
          stats.reset();
          lastPrinted = -1;
        }
        stats.add(event);
        const every = options.every ?? Math.max(1, Math.ceil(event.total / 10));
        const first = event.result === undefined;
        if (first || event.done === event.total || event.done - lastPrinted >= every) {
          lastPrinted = event.done;
          const resumed =
            first && event.resumed > 0 ? ` (${event.resumed} resumed from the results file)` : "";
          stream.write(
            `[eval] ${label} ${event.done}/${event.total}${resumed} ${stats.text()}\n`.replace(/ +\n$/, "\n"),
          );
        }
      },
      stop: () => {},
    };
  }
  const bar = new SingleBar({
    format: "{label} [{bar}] {value}/{total} | {stats}",
    stream,
    hideCursor: true,
    clearOnComplete: false,
  });
  let started = false;
  return {
    onProgress: (event) => {
      const label = `${event.benchmark}/${event.method}`;
      if (label !== current) {
        if (started) bar.stop();
        current = label;
        stats.reset();
        bar.start(event.total, event.done, { label, stats: "" });
        started = true;
      }
      stats.add(event);
      bar.update(event.done, { label, stats: stats.text() });
    },
    stop: () => {
      if (started) bar.stop();
    },
  };
};
