import { jsonWithSchema } from "../json.js";
import { ProbeError } from "../reasons.js";
import { Secret } from "../secret.js";
import { tokenResponseSchema } from "./schema.js";
import { type Agents, endpointOf, httpError, readBody, send } from "./transport.js";

/** What a token request authenticates with: a password (Basic) or an identity token (OAuth2 refresh token). */
export interface TokenCredential {
  username: string;
  secret: Secret;
  identityToken: boolean;
}

export interface TokenRequest {
  realm: string;
  service?: string;
  /** `repository:NAME:pull` for a pull; absent for a login, as `docker login` sends. */
  scope?: string;
  /** Absent: an anonymous token, as Docker asks for when it holds no credential. */
  credential?: TokenCredential;
  signal: AbortSignal;
  log(message: string): void;
}

// Docker's client id for the refresh-token grant is "docker"; we name ourselves.
const CLIENT_ID = "ci-prober";
const TOKEN_BODY_LIMIT = 1024 * 1024;

/**
 * A bearer token from the challenge's realm (Docker registry token spec):
 * GET with Basic auth for a password, POST form grant_type=refresh_token for an
 * identity token. Accepts `token` or `access_token`. The token is a Secret from
 * the moment it is read.
 */
export async function fetchToken(agents: Agents, req: TokenRequest): Promise<Secret> {
  const realm = parseRealm(req.realm);
  const useRefresh = req.credential?.identityToken === true;
  const endpoint = endpointOf(useRefresh ? "POST" : "GET", realm);
  const res = useRefresh ? await postRefresh(agents, realm, req) : await getToken(agents, realm, req);
  req.log(`token ${endpoint} -> ${res.status}`);
  if (res.status !== 200) throw await httpError(res, endpoint);
  const body = await readBody(res, TOKEN_BODY_LIMIT, endpoint);
  // Never echo the body: it may hold a token under a name we did not expect.
  const answer = jsonWithSchema(body.toString("utf8"), tokenResponseSchema, {
    notJson: `${endpoint}: token response is not JSON`,
    badShape: () => `${endpoint}: token response has neither token nor access_token`,
  });
  return new Secret(answer.token ?? answer.access_token ?? "");
}

function parseRealm(realm: string): URL {
  let url: URL;
  try {
    url = new URL(realm);
  } catch {
    throw new ProbeError("bad_response", `token realm ${JSON.stringify(realm.slice(0, 200))} is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new ProbeError("bad_response", `token realm ${url.origin} is not http(s)`);
  if (url.username !== "" || url.password !== "")
    throw new ProbeError("bad_response", `token realm ${url.origin}${url.pathname} carries credentials`);
  return url;
}

function getToken(agents: Agents, realm: URL, req: TokenRequest) {
  const url = new URL(realm);
  if (req.service !== undefined) url.searchParams.set("service", req.service);
  if (req.scope !== undefined) url.searchParams.set("scope", req.scope);
  const cred = req.credential;
  if (cred !== undefined && cred.username !== "") url.searchParams.set("account", cred.username);
  const authorization = cred !== undefined ? basicAuthorization(cred.username, cred.secret) : undefined;
  return send(agents, url, { signal: req.signal, followRedirects: true, ...(authorization !== undefined ? { authorization } : {}) });
}

function postRefresh(agents: Agents, realm: URL, req: TokenRequest) {
  const cred = req.credential;
  const form = new URLSearchParams({ grant_type: "refresh_token", refresh_token: cred?.secret.reveal() ?? "", client_id: CLIENT_ID });
  if (req.service !== undefined) form.set("service", req.service);
  if (req.scope !== undefined) form.set("scope", req.scope);
  // GitLab's /jwt/auth names the user with the token; "<token>" is Docker's placeholder for "no user".
  if (cred !== undefined && cred.username !== "" && cred.username !== "<token>") form.set("username", cred.username);
  return send(agents, realm, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: form.toString(),
    signal: req.signal,
  });
}

/** `Basic base64(user:secret)`; the encoded pair is registered for scrubbing before it is used. */
export function basicAuthorization(username: string, secret: Secret): string {
  const encoded = new Secret(Buffer.from(`${username}:${secret.reveal()}`).toString("base64"));
  return `Basic ${encoded.reveal()}`;
}
