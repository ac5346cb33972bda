import { SingleBar } from "cli-progress";

/**
 * Progress of a long job: a live bar in an interactive terminal, plain lines in CI and logs
 * (so a CI log stays readable and grep-able).
 */
export interface Progress {
  update(step: number, summary: string): void;
  log(line: string): void;
  stop(): void;
}

export const createProgress = (total: number, label: string, options: { start?: number } = {}): Progress => {
  const interactive = Boolean(process.stderr.isTTY) && !process.env.CI;
  if (!interactive) {
    return {
      update: (step, summary) => process.stderr.write(`[${label}] step ${step}/${total} ${summary}\n`),
      log: (line) => process.stderr.write(`${line}\n`),
      stop: () => {},
    };
  }
  const bar = new SingleBar({
    format: `${label} [{bar}] {value}/{total} | {summary}`,
    stream: process.stderr,
    hideCursor: true,
    clearOnComplete: false,
  });
  bar.start(total, options.start ?? 0, { summary: "" });
  return {
    update: (step, summary) => bar.update(step, { summary }),
    log: (line) => {
      bar.stop();
      process.stderr.write(`${line}\n`);
      bar.start(total, bar.getProgress() * total, { summary: "" });
    },
    stop: () => bar.stop(),
  };
};
