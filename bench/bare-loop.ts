/*
 * The peer of `npm run bench -- scale`: the least a Node program can do to
 * send the requests of one ci-prober round for N runners — per runner a login
 * (GET /v2/, the token or Basic, GET /v2/ again) and a pull (GET /v2/, a
 * pull-scoped token or Basic, the manifest, each blob through sha256 against
 * its digest) — over one keep-alive node:http agent, `concurrency` at once.
 * No config, no credential files, no metrics: a floor, not a prober.
 * Usage: node bare-loop.js plan.json; prints {"requests":N,"tokens":N,"failures":N}.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { Agent, type IncomingMessage, request } from "node:http";

interface PlanRunner {
  registry: string;
  repository: string;
  tag: string;
  username: string;
  password: string;
}

interface Plan {
  concurrency: number;
  runners: PlanRunner[];
}

const MANIFEST_ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
const agent = new Agent({ keepAlive: true, maxSockets: 64 });
let requests = 0;
let tokens = 0;
let failures = 0;

function get(url: URL, headers: Record<string, string>): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers: { "user-agent": "bare-loop", ...headers }, signal: AbortSignal.timeout(30_000) }, resolve);
    // A kept-alive socket the server closed while idle: send again on a new one, as any HTTP client does.
    req.once("error", (err: Error & { code?: string }) =>
      req.reusedSocket && err.code === "ECONNRESET" ? get(url, headers).then(resolve, reject) : reject(err),
    );
    req.end();
  });
}

async function text(res: IncomingMessage): Promise<string> {
  const parts: Buffer[] = [];
  for await (const chunk of res as AsyncIterable<Buffer>) parts.push(chunk);
  return Buffer.concat(parts).toString("utf8");
}

/** The Authorization for a registry: Basic, or a Bearer token from the challenge's realm. */
async function authorize(r: PlanRunner, scope: string | undefined): Promise<string> {
  requests++;
  const ping = await get(new URL(`http://${r.registry}/v2/`), {});
  const challenge = ping.headers["www-authenticate"] ?? "";
  ping.resume();
  const basic = `Basic ${Buffer.from(`${r.username}:${r.password}`).toString("base64")}`;
  if (!/^Bearer /i.test(challenge)) return basic;
  const param = (name: string) => new RegExp(`${name}="([^"]*)"`).exec(challenge)?.[1];
  const realm = new URL(param("realm") ?? "");
  realm.searchParams.set("service", param("service") ?? "");
  if (scope !== undefined) realm.searchParams.set("scope", scope);
  realm.searchParams.set("account", r.username);
  tokens++;
  const res = await get(realm, { authorization: basic });
  if (res.statusCode !== 200) throw new Error(`token: ${res.statusCode}`);
  const body = JSON.parse(await text(res)) as { token?: string; access_token?: string };
  return `Bearer ${body.token ?? body.access_token ?? ""}`;
}

async function login(r: PlanRunner): Promise<void> {
  const authorization = await authorize(r, undefined);
  requests++;
  const res = await get(new URL(`http://${r.registry}/v2/`), { authorization });
  res.resume();
  if (res.statusCode !== 200) throw new Error(`login: ${res.statusCode}`);
}

async function pull(r: PlanRunner): Promise<void> {
  const authorization = await authorize(r, `repository:${r.repository}:pull`);
  requests++;
  const res = await get(new URL(`http://${r.registry}/v2/${r.repository}/manifests/${r.tag}`), { authorization, accept: MANIFEST_ACCEPT });
  if (res.statusCode !== 200) throw new Error(`manifest: ${res.statusCode}`);
  const manifest = JSON.parse(await text(res)) as { config: { digest: string; size: number }; layers: { digest: string; size: number }[] };
  for (const desc of [manifest.config, ...manifest.layers]) {
    requests++;
    const blob = await get(new URL(`http://${r.registry}/v2/${r.repository}/blobs/${desc.digest}`), { authorization });
    const hash = createHash("sha256");
    let size = 0;
    for await (const chunk of blob as AsyncIterable<Buffer>) {
      size += chunk.length;
      hash.update(chunk);
    }
    if (size !== desc.size || `sha256:${hash.digest("hex")}` !== desc.digest) throw new Error(`blob ${desc.digest}: digest mismatch`);
  }
}

async function main(): Promise<void> {
  const plan = JSON.parse(readFileSync(process.argv[2] ?? "", "utf8")) as Plan;
  const jobs = plan.runners.flatMap((r) => [() => login(r), () => pull(r)]);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const job = jobs[next++];
      await job?.().catch((err: unknown) => {
        if (failures++ === 0) process.stderr.write(`bare loop: first failure: ${err instanceof Error ? err.message : String(err)}\n`);
      });
    }
  };
  await Promise.all(Array.from({ length: plan.concurrency }, worker));
  agent.destroy();
  process.stdout.write(`${JSON.stringify({ requests, tokens, failures })}\n`);
  process.exitCode = failures > 0 ? 1 : 0;
}

void main();
