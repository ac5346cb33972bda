/**
 * The authors' schedule (`--preset workflow-r1-paper`) runs end to end as far as this machine
 * allows: the preset as shipped, with a tiny generated model instead of the policy GGUF, the CPU
 * instead of CUDA, a few tasks instead of 512, and a local OpenAI-compatible executor — the real
 * workflow-r1 environment, data split, operators and trainer otherwise.
 */
import * as fs from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { presetFile } from "../src/presets.js";
import { runTrain } from "../src/train/run.js";
import { run } from "./fixtures/effects.js";

const DATA = path.resolve(import.meta.dirname, "../../../../shared/data/qa");

let url = "";
const requests: string[] = [];
const server = createServer(async (req, res) => {
  for await (const _ of req);
  requests.push(req.url ?? "");
  res.writeHead(200, { "content-type": "application/json" });
  res.end(
    req.url?.endsWith("/models")
      ? JSON.stringify({ object: "list", data: [{ id: "executor" }] })
      : JSON.stringify({
          choices: [
            {
              index: 0,
              message: { role: "assistant", content: "<think>t</think><answer>Paris</answer>" },
              finish_reason: "stop",
            },
          ],
        }),
  );
});
beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe("the paper preset, scaled down to this machine", () => {
  it.skipIf(!fs.existsSync(DATA))(
    "trains a step and evaluates on the held-out parts",
    async () => {
      const out = fs.mkdtempSync(path.join(os.tmpdir(), "wr1-paper-"));
      try {
        const rows = await runTrain({
          file: await run(presetFile("workflow-r1-paper")),
          overrides: {
            out,
            steps: 1,
            evalEvery: 1,
            evalTasks: 3,
            model: {
              path: "",
              gpu: false,
              tiny: { dim: 32, layers: 1, heads: 2, kvHeads: 1, ffn: 64, context: 4096 },
              contextSize: 4096,
              kvCacheType: "f32",
              threads: 1,
            },
            environment: {
              options: {
                dataDir: DATA,
                trainTasks: 8,
                evalTasks: 3,
                executor: { baseUrl: url, model: "executor", apiKey: "none" },
              },
            },
            rollout: { tasksPerStep: 2, groupSize: 2, maxConcurrentEpisodes: 4, maxTurns: 2, maxTokens: 48 },
            learner: { threads: 1, microBatchTokens: 8192 },
          },
        });
        expect(rows.map((r) => r["step"])).toEqual([0, 1]);
        const step = rows[1]!;
        expect(step["reward/format"]).toBeDefined();
        expect(Number.isFinite(Number(step["grad_norm"] ?? 0))).toBe(true);
        // The plugin checked the executor endpoint before building the environment.
        expect(requests[0]).toBe("/v1/models");
        const config = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8"));
        expect(config.learner).toMatchObject({ learningRate: 1e-6, weightDecay: 0.01, beta2: 0.999 });
      } finally {
        fs.rmSync(out, { recursive: true, force: true });
      }
    },
    300_000,
  );
});
