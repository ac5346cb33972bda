/** A real HTTP server on 127.0.0.1 with a scripted handler, for integration tests. */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface Recorded {
  readonly url: string;
  readonly headers: IncomingMessage["headers"];
  readonly body: unknown;
  readonly at: number;
}

export type Handler = (request: Recorded, index: number, res: ServerResponse) => void | Promise<void>;

export interface TestServer {
  readonly url: string;
  readonly requests: Recorded[];
  readonly close: () => Promise<void>;
}

export const startServer = async (handler: Handler): Promise<TestServer> => {
  const requests: Recorded[] = [];
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {}
    const recorded = { url: req.url ?? "", headers: req.headers, body, at: Date.now() };
    requests.push(recorded);
    await handler(recorded, requests.length - 1, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
};

export const json = (
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) => {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(typeof body === "string" ? body : JSON.stringify(body));
};

export const chatAnswer = (content: string, finishReason = "stop") => ({
  id: "cmpl-test",
  object: "chat.completion",
  choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: finishReason }],
});
