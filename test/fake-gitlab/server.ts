import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { handleApi } from "./api.js";
import { handleJwtAuth, type SigningKey } from "./jwt.js";
import { GitlabState, type NewUser, type UserState } from "./state.js";
import { variablesState, type NewVariable } from "./variables.js";

/**
 * A fake GitLab on 127.0.0.1: /jwt/auth (the registry's token realm),
 * /api/v4 (api.ts), and /-/test/* for tests to create and block users.
 */
export interface FakeGitlab {
  url: string;
  state: GitlabState;
  server: Server;
  close(): Promise<void>;
}

export async function startFakeGitlab(key: SigningKey, port = 0): Promise<FakeGitlab> {
  const state = new GitlabState();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      try {
        route(state, key, req, res, body);
      } catch (err) {
        res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ message: err instanceof Error ? err.message : String(err) }));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const { port: bound } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${bound}`,
    state,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function route(state: GitlabState, key: SigningKey, req: IncomingMessage, res: ServerResponse, body: string): void {
  const url = new URL(req.url ?? "/", "http://127.0.0.1");
  if (!url.pathname.startsWith("/-/test/")) {
    const seen: GitlabState["requests"][number] = { at: Date.now(), method: req.method ?? "GET", path: url.pathname };
    state.requests.push(seen);
    res.once("finish", () => (seen.status = res.statusCode));
  }
  if (url.pathname === "/jwt/auth") {
    handleJwtAuth(state, key, req, res, url, body);
    return;
  }
  if (url.pathname.startsWith("/-/test/")) {
    testControl(state, req, res, url, body);
    return;
  }
  if (url.pathname.startsWith("/api/v4/") && handleApi(state, req, res, url, body)) return;
  res.writeHead(404, { "content-type": "application/json" });
  res.end(JSON.stringify({ message: "404 Not Found" }));
}

/**
 * Test control, not part of GitLab:
 *   POST /-/test/users                      {username, password?, state?, bot?, deployToken?, actions?, expiresAt?} -> user
 *   POST /-/test/users/:username/state      {state}
 *   POST /-/test/tokens                     {username} -> {token}   (a PRIVATE-TOKEN for the API)
 *   POST /-/test/users/:username/revoke     revoke the token that is this user's password (access or deploy token)
 *   POST /-/test/tree                       {groups?: [full_path], projects?: [path_with_namespace]} -> ids (groups above made too)
 *   POST /-/test/variables                  {holder: instance|group|project, path?, key, value, masked?, hidden?, environment_scope?, …}
 *   POST /-/test/registry                   {host}: the container registry projects name in container_registry_image_prefix
 *   POST /-/test/users/:username/password   {password}: the account's secret changes
 *   GET  /-/test/requests?path=/jwt/auth     the requests answered at that path: [{at, method, path, status}]
 *   GET  /-/test/log?event=jwt_denied        the events logged: [{at, event, username}]
 */
function testControl(state: GitlabState, req: IncomingMessage, res: ServerResponse, url: URL, body: string): void {
  const json = (status: number, value: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(value));
  };
  const input = body === "" ? {} : (JSON.parse(body) as Record<string, unknown>);
  if (req.method === "POST" && url.pathname === "/-/test/users") {
    json(201, state.addUser(input as unknown as NewUser));
    return;
  }
  const stateMatch = /^\/-\/test\/users\/([^/]+)\/state$/.exec(url.pathname);
  if (req.method === "POST" && stateMatch?.[1]) {
    json(200, state.setState(decodeURIComponent(stateMatch[1]), input.state as UserState));
    return;
  }
  const revokeMatch = /^\/-\/test\/users\/([^/]+)\/revoke$/.exec(url.pathname);
  if (req.method === "POST" && revokeMatch?.[1]) {
    json(200, state.revoke(decodeURIComponent(revokeMatch[1])));
    return;
  }
  const passwordMatch = /^\/-\/test\/users\/([^/]+)\/password$/.exec(url.pathname);
  if (req.method === "POST" && passwordMatch?.[1]) {
    const user = state.users.get(decodeURIComponent(passwordMatch[1]));
    if (!user) {
      json(404, { message: "no such user" });
      return;
    }
    user.password = String(input.password);
    json(200, { username: user.username });
    return;
  }
  if (req.method === "GET" && url.pathname === "/-/test/requests") {
    const path = url.searchParams.get("path");
    json(
      200,
      state.requests.filter((r) => path === null || r.path === path),
    );
    return;
  }
  if (req.method === "GET" && url.pathname === "/-/test/log") {
    const event = url.searchParams.get("event");
    json(
      200,
      state.log.filter((e) => event === null || e.event === event),
    );
    return;
  }
  if (req.method === "POST" && url.pathname === "/-/test/tree") {
    // Groups and projects by full path, in bulk (a crawl benchmark makes thousands): {groups?: string[], projects?: string[]}.
    const v = variablesState(state);
    const groups = ((input.groups as string[] | undefined) ?? []).map((g) => v.addGroup(g).id);
    const projects = ((input.projects as string[] | undefined) ?? []).map((p) => v.addProject(p).id);
    json(201, { groups, projects });
    return;
  }
  if (req.method === "POST" && url.pathname === "/-/test/variables") {
    json(201, { key: variablesState(state).addVariable(input as unknown as NewVariable).key });
    return;
  }
  if (req.method === "POST" && url.pathname === "/-/test/registry") {
    variablesState(state).registryHost = typeof input.host === "string" ? input.host : null;
    json(200, { host: variablesState(state).registryHost });
    return;
  }
  if (req.method === "POST" && url.pathname === "/-/test/tokens") {
    json(201, { token: state.issueApiToken(String(input.username)) });
    return;
  }
  json(404, { message: "no such test endpoint" });
}
