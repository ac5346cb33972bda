/**
 * A deterministic OpenAI-compatible chat-completions server on 127.0.0.1 for integration tests:
 * it answers every request from the last user message and counts requests.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface ExecutorServer {
  readonly url: string;
  readonly requests: () => number;
  readonly close: () => Promise<void>;
}

export const startExecutorServer = async (
  answer: (lastUserMessage: string) => string,
): Promise<ExecutorServer> => {
  let requests = 0;
  const server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => {
      body += chunk;
    });
    req.on("end", () => {
      requests++;
      if (req.method !== "POST" || !req.url?.endsWith("/chat/completions")) {
        res.writeHead(404).end();
        return;
      }
      const parsed = JSON.parse(body) as { messages: Array<{ role: string; content: string }> };
      const last = [...parsed.messages].reverse().find((m) => m.role === "user")?.content ?? "";
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          id: `cmpl-${requests}`,
          object: "chat.completion",
          model: "test",
          choices: [
            { index: 0, message: { role: "assistant", content: answer(last) }, finish_reason: "stop" },
          ],
        }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests: () => requests,
    close: () => new Promise((resolve, reject) => server.close((e) => (e ? reject(e) : resolve()))),
  };
};
