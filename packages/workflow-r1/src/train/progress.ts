import { SingleBar } from "cli-progress";

/**
 * Progress of a long job: a live bar in an interactive terminal, plain lines in CI and logs
 * (so a CI log stays readable and grep-able). Both show the time left, estimated from the mean
 * time per step since this progress started (steps done before a resume do not count).
 */
export interface Progress {
  update(step: number, summary: string): void;
  log(line: string): void;
  stop(): void;
}

/** `95` → `1m35s`; `4000` → `1h06m`. */
export const formatDuration = (seconds: number): string => {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
};

/** Estimated seconds left after `done` of `total` steps, `elapsed` seconds after `start` steps. */
export const estimateRemaining = (start: number, done: number, total: number, elapsed: number): number =>
  done > start ? ((total - done) * elapsed) / (done - start) : Number.NaN;

export const createProgress = (
  total: number,
  label: string,
  options: { start?: number; interactive?: boolean; write?: (text: string) => void } = {},
): Progress => {
  const write = options.write ?? ((text: string) => process.stderr.write(text));
  const interactive = options.interactive ?? (Boolean(process.stderr.isTTY) && !process.env.CI);
  const start = options.start ?? 0;
  const began = performance.now();
  const eta = (step: number) =>
    formatDuration(estimateRemaining(start, step, total, (performance.now() - began) / 1000));
  if (!interactive) {
    return {
      update: (step, summary) =>
        write(`[${label}] step ${step}/${total} ${summary}${step < total ? ` (eta ${eta(step)})` : ""}\n`),
      log: (line) => write(`${line}\n`),
      stop: () => {},
    };
  }
  const bar = new SingleBar({
    format: `${label} [{bar}] {value}/{total} | eta {remaining} | {summary}`,
    stream: process.stderr,
    hideCursor: true,
    clearOnComplete: false,
  });
  bar.start(total, start, { summary: "", remaining: "?" });
  return {
    update: (step, summary) => bar.update(step, { summary, remaining: eta(step) }),
    log: (line) => {
      bar.stop();
      process.stderr.write(`${line}\n`);
      bar.start(total, bar.getProgress() * total, { summary: "", remaining: "?" });
    },
    stop: () => bar.stop(),
  };
};
