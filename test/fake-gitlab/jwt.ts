import { createHash, createPrivateKey, createPublicKey, randomUUID, sign, type KeyObject } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { GitlabState } from "./state.js";

/**
 * GitLab's /jwt/auth, the token endpoint of its container registry: Basic
 * credentials in, an RS256 JWT with the granted `access` out. Like GitLab it
 * answers a bad or blocked credential with 401 and "HTTP Basic: Access denied".
 */

export const ISSUER = "gitlab-issuer";
export const SERVICE = "container_registry";

export const ACCESS_DENIED_MESSAGE =
  "HTTP Basic: Access denied. If a password was provided for Git authentication, the password was incorrect or you're required to use a token instead of a password. If a token was provided, it was either incorrect, expired, or improperly scoped.";

export interface SigningKey {
  privateKey: KeyObject;
  kid: string;
}

export function signingKey(privateKeyPem: string): SigningKey {
  const privateKey = createPrivateKey(privateKeyPem);
  return { privateKey, kid: libtrustKeyId(createPublicKey(privateKey)) };
}

/** The key id distribution 2.x looks up: libtrust's fingerprint of the public key (SHA-256 of the DER SPKI, 240 bits, base32, 4-char groups). */
export function libtrustKeyId(publicKey: KeyObject): string {
  const der = publicKey.export({ type: "spki", format: "der" });
  const hash = createHash("sha256").update(der).digest().subarray(0, 30);
  const b32 = base32(hash);
  return b32.match(/.{4}/g)?.join(":") ?? b32;
}

function base32(buf: Buffer): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of buf) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString("base64url");
}

export function signJwt(key: SigningKey, claims: Record<string, unknown>): string {
  const header = b64url(JSON.stringify({ alg: "RS256", typ: "JWT", kid: key.kid }));
  const payload = b64url(JSON.stringify(claims));
  const signature = sign("sha256", Buffer.from(`${header}.${payload}`), key.privateKey);
  return `${header}.${payload}.${b64url(signature)}`;
}

interface Scope {
  type: string;
  name: string;
  actions: string[];
}

function parseScope(scope: string): Scope | undefined {
  // repository:group/project:pull,push — the name may hold a host:port, so split from both ends.
  const first = scope.indexOf(":");
  const last = scope.lastIndexOf(":");
  if (first < 0 || last === first) return undefined;
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(",") };
}

export function handleJwtAuth(
  state: GitlabState,
  key: SigningKey,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  body: string,
): void {
  const deny = () => {
    res.writeHead(401, { "content-type": "application/json", "www-authenticate": 'Basic realm="GitLab"' });
    res.end(JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: ACCESS_DENIED_MESSAGE }] }));
  };
  const auth = req.headers.authorization ?? "";
  let user;
  // Who tried, for tests that count failed authentications per user (a username is no secret).
  let tried = "";
  if (req.method === "POST") {
    // OAuth2 refresh-token form, as Docker sends for an identitytoken.
    const form = new URLSearchParams(body);
    const username = form.get("username") ?? "";
    tried = username;
    const token = form.get("refresh_token") ?? form.get("password") ?? "";
    user = state.authenticate(username, token);
  } else if (auth.startsWith("Basic ")) {
    const decoded = Buffer.from(auth.slice(6), "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    tried = colon < 0 ? "" : decoded.slice(0, colon);
    user = colon < 0 ? undefined : state.authenticate(decoded.slice(0, colon), decoded.slice(colon + 1));
  } else {
    deny();
    return;
  }
  if (!user) {
    state.log.push({ at: Date.now(), event: "jwt_denied", username: tried });
    deny();
    return;
  }
  // Docker sends service and scope in the query of a GET, and in the form body of a refresh-token POST.
  const params = req.method === "POST" ? new URLSearchParams(body) : url.searchParams;
  const service = params.get("service") ?? url.searchParams.get("service") ?? SERVICE;
  const access = [...params.getAll("scope"), ...(req.method === "POST" ? url.searchParams.getAll("scope") : [])]
    .map(parseScope)
    .filter((s): s is Scope => s !== undefined && s.type === "repository")
    .map((s) => ({ type: s.type, name: s.name, actions: s.actions.filter((a) => user.actions.includes(a)) }))
    .filter((s) => s.actions.length > 0);
  const now = Math.floor(Date.now() / 1000);
  const token = signJwt(key, {
    iss: ISSUER,
    sub: user.username,
    aud: service,
    iat: now,
    nbf: now - 5,
    exp: now + 300,
    jti: randomUUID(),
    access,
  });
  state.log.push({ at: Date.now(), event: "jwt_issued", username: user.username });
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ token }));
}
