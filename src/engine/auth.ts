import { ProbeError } from "../reasons.js";
import { registerSecret } from "../secret.js";
import type { Credential } from "../types.js";
import { engineError, type Docker } from "./client.js";
import { authResponseSchema } from "./schema.js";

/** The Engine API's AuthConfig, as the docker CLI sends it: a password, or an identity token. */
export interface EngineAuth {
  username?: string;
  password?: string;
  identitytoken?: string;
  /** Registry host[:port], no scheme. */
  serveraddress: string;
}

/**
 * The AuthConfig for a runner's credential. A credential whose source could
 * not be read throws with the reason found when reading it. Docker's
 * convention for identity tokens held by a helper is the username "<token>".
 */
export function engineAuth(credential: Credential): EngineAuth {
  if (credential.error) throw new ProbeError(credential.error.reason, credential.error.message);
  if (!credential.secret) throw new ProbeError("credential_missing", `no secret in ${credential.source}`);
  const serveraddress = credential.registry;
  const secret = credential.secret.reveal();
  if (credential.secretType === "identity_token" || credential.username === "<token>") {
    const named = credential.username !== "<token>" && credential.username !== "";
    return { ...(named ? { username: credential.username } : {}), identitytoken: secret, serveraddress };
  }
  return { username: credential.username, password: secret, serveraddress };
}

/**
 * The X-Registry-Auth header value: base64url of the JSON AuthConfig, WITH
 * padding. The daemon decodes it with Go's base64.URLEncoding, which rejects
 * unpadded input, and then silently pulls anonymously ("no basic auth
 * credentials") — Node's "base64url" encoding drops the padding. The value is
 * registered as a secret so scrub() removes it wherever it might surface.
 */
export function registryAuthHeader(auth: EngineAuth): string {
  const header = Buffer.from(JSON.stringify(auth)).toString("base64").replace(/\+/g, "-").replace(/\//g, "_");
  registerSecret(header);
  return header;
}

/** POST /auth: the daemon logs in to the registry with the credential, as `docker login` has it do. */
export async function checkLogin(docker: Docker, dockerHost: string, auth: EngineAuth, signal: AbortSignal): Promise<string> {
  signal.throwIfAborted();
  let answer: unknown;
  try {
    // A fresh object: docker-modem deletes abortSignal from the options it is given.
    answer = await docker.checkAuth({ ...auth, abortSignal: signal });
  } catch (err) {
    throw engineError(err, dockerHost, `login to ${auth.serveraddress}`);
  }
  const parsed = authResponseSchema.safeParse(answer);
  if (!parsed.success)
    throw new ProbeError("bad_response", `login to ${auth.serveraddress}: the engine's /auth answer is not an AuthResponse`);
  return parsed.data.Status ?? "";
}
