import { readFile } from "node:fs/promises";
import { normalizeRegistry } from "../image.js";
import { registerSecret, Secret } from "../secret.js";
import type { Credential, Runner } from "../types.js";
import { zodIssueText } from "../zod-text.js";
import { kindFromUsername } from "./kind.js";
import { dockerConfigSchema, type AuthEntry, type DockerConfigFile } from "./schema.js";

/**
 * One Docker config a runner reads credentials from, in GitLab Runner's order:
 * its DOCKER_AUTH_CONFIG value, then the runner user's config.json.
 * `where` names it exactly: a file path, or
 * `/etc/gitlab-runner/config.toml#runners[0].environment.DOCKER_AUTH_CONFIG`.
 */
export type LoadedDockerConfig =
  | { state: "ok"; where: string; config: DockerConfigFile }
  | { state: "broken"; where: string; message: string };

export type Layer = "credHelpers" | "credsStore" | "auths";

/**
 * The source of one credential: where its Docker config is, then `#` and the
 * key inside that JSON document, e.g.
 * `/home/gitlab-runner/.docker/config.json#auths["registry.example.jp"]`,
 * `…/config.json#credsStore`, or for a DOCKER_AUTH_CONFIG in config.toml
 * `/etc/gitlab-runner/config.toml#runners[0].environment.DOCKER_AUTH_CONFIG#auths["registry.example.jp"]`.
 * Keys are quoted exactly as written in the file.
 */
export function sourceOf(where: string, layer: Layer, key?: string): string {
  return key === undefined ? `${where}#${layer}` : `${where}#${layer}[${JSON.stringify(key)}]`;
}

/** The runner's Docker configs in precedence order; a config.json that does not exist contributes nothing. */
export async function loadDockerConfigs(runner: Runner, signal: AbortSignal): Promise<LoadedDockerConfig[]> {
  const out: LoadedDockerConfig[] = [];
  if (runner.dockerAuthConfig) out.push(parseDockerConfig(runner.dockerAuthConfig.value, runner.dockerAuthConfig.source));
  if (runner.dockerConfig !== undefined) {
    const loaded = (await readDockerConfigFile(runner.dockerConfig, signal)) ?? (await readLegacyDockercfg(runner.dockerConfig, signal));
    if (loaded) out.push(loaded);
  }
  return out;
}

/**
 * GitLab Runner falls back to `~/.dockercfg` when `~/.docker/config.json` is
 * absent: the pre-1.7 format, a bare object of registry → auth entry.
 */
async function readLegacyDockercfg(configJson: string, signal: AbortSignal): Promise<LoadedDockerConfig | undefined> {
  if (!configJson.endsWith("/.docker/config.json")) return undefined;
  const file = `${configJson.slice(0, -"/.docker/config.json".length)}/.dockercfg`;
  const loaded = await readDockerConfigFile(file, signal, true);
  return loaded;
}

async function readDockerConfigFile(file: string, signal: AbortSignal, legacy = false): Promise<LoadedDockerConfig | undefined> {
  let text: string;
  try {
    text = await readFile(file, { encoding: "utf8", signal });
  } catch (err) {
    signal.throwIfAborted();
    const code = (err as NodeJS.ErrnoException).code;
    // No config.json means no `docker login` happened: no credential, which a probe reports as credential_missing if it needs one.
    if (code === "ENOENT") return undefined;
    return {
      state: "broken",
      where: file,
      message: `${file}: cannot read: ${code === "EACCES" ? "permission denied" : code === "EISDIR" ? "is a directory" : (code ?? "unknown error")}`,
    };
  }
  return legacy ? parseDockerConfig(legacyAsConfig(text), file) : parseDockerConfig(text, file);
}

/** A .dockercfg text as a config.json text; text that is not a JSON object is left for parseDockerConfig to report. */
function legacyAsConfig(text: string): string {
  try {
    const data: unknown = JSON.parse(text);
    return data !== null && typeof data === "object" && !Array.isArray(data) ? JSON.stringify({ auths: data }) : text;
  } catch {
    return text;
  }
}

/** Parse a Docker config.json text the way the Docker CLI decodes it (unknown keys ignored, wrong types rejected). */
export function parseDockerConfig(text: string, where: string): LoadedDockerConfig {
  // An empty file is what Docker treats as an empty config (io.EOF is not an error).
  if (text.trim() === "") return { state: "ok", where, config: {} };
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    return { state: "broken", where, message: `${where}: ${jsonErrorText(text, err)}` };
  }
  const parsed = dockerConfigSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { state: "broken", where, message: `${where}: ${zodIssueText(issue, "not a Docker config")}` };
  }
  registerAuthValues(parsed.data);
  return { state: "ok", where, config: parsed.data };
}

/**
 * V8's JSON.parse messages can quote the input ("Unexpected token 'x', "{"auth": …" is not valid JSON"),
 * and the input holds secrets; keep only the fixed description and turn the position into line and column.
 */
function jsonErrorText(text: string, err: unknown): string {
  const message = err instanceof Error ? err.message : "";
  if (/end of JSON input/.test(message)) return "invalid JSON: unexpected end of input";
  const at = /^(.*?) in JSON at position (\d+)/.exec(message);
  if (!at) return "invalid JSON";
  const position = Number(at[2]);
  const before = text.slice(0, position);
  const line = before.split("\n").length;
  const column = position - before.lastIndexOf("\n");
  return `invalid JSON at line ${line} column ${column}: ${at[1]}`;
}

// The base64 `auth` value is itself a secret (it decodes to user:password); scrub() must know it even when it does not decode.
function registerAuthValues(config: DockerConfigFile): void {
  for (const entry of Object.values(config.auths ?? {})) {
    if (entry?.auth) registerSecret(entry.auth);
  }
}

/**
 * The credential an `auths` entry holds, decoded as the Docker CLI's decodeAuth
 * does (strict base64, "user:password" with a non-empty user). An entry with
 * nothing in it (what `docker login` leaves beside a credsStore) holds none.
 */
export function authsCredential(runner: Runner, where: string, key: string, entry: AuthEntry | null | undefined): Credential | undefined {
  const source = sourceOf(where, "auths", key);
  const base = { runner: runner.name, registry: normalizeRegistry(key), source };
  let username = entry?.username ?? "";
  let password = entry?.password ?? "";
  if (entry?.auth) {
    const decoded = decodeAuth(entry.auth);
    if (typeof decoded === "string") {
      return {
        ...base,
        username: "",
        kind: "unknown",
        secretType: "password",
        error: { reason: "credential_invalid", message: `${source}: auth ${decoded}` },
      };
    }
    ({ username, password } = decoded);
  }
  if (entry?.identitytoken) {
    return { ...base, username, kind: kindFromUsername(username), secretType: "identity_token", secret: new Secret(entry.identitytoken) };
  }
  if (username === "" && password === "") return undefined;
  return { ...base, username, kind: kindFromUsername(username), secretType: "password", secret: new Secret(password) };
}

/** user:password from an `auth` value, or what is wrong with it (never the value itself). */
function decodeAuth(auth: string): { username: string; password: string } | string {
  // Go's base64.StdEncoding: padded, standard alphabet; Buffer.from() would silently accept anything.
  if (auth.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(auth)) return "is not valid base64";
  const text = Buffer.from(auth, "base64").toString("utf8");
  const colon = text.indexOf(":");
  if (colon <= 0) return `does not decode to "user:password"`;
  // Docker trims NUL padding some writers leave after the password.
  return { username: text.slice(0, colon), password: text.slice(colon + 1).replace(/^\0+|\0+$/g, "") };
}

/**
 * A config key as GitLab Runner matches it (convertToRegistryPath): a key with
 * a scheme is only its host (`https://index.docker.io/v1/` → `docker.io`,
 * `https://registry.example.jp/v2/` → `registry.example.jp`); a key without
 * one may name a path inside a registry (`registry.example.jp/team`), and a
 * port stays part of the host (`registry.example.jp:5000`).
 */
export function keyPath(key: string): string {
  if (/^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(key)) return normalizeRegistry(key);
  let path = key.trim().replace(/\/+$/, "");
  const slash = path.lastIndexOf("/");
  const colon = path.lastIndexOf(":");
  if (slash !== -1 && colon > slash) path = path.slice(0, colon);
  const first = path.indexOf("/");
  if (first === -1) return normalizeRegistry(path);
  return `${normalizeRegistry(path.slice(0, first))}${path.slice(first)}`;
}

/**
 * The paths a target is looked up under, most specific first, as GitLab Runner
 * walks an image name: `registry.example.jp/ci/canary:latest` →
 * `registry.example.jp/ci/canary`, `registry.example.jp/ci`, `registry.example.jp`.
 * A bare registry host gives just itself.
 */
export function lookupPaths(target: string): string[] {
  const withoutDigest = target.split("@")[0] ?? target;
  let path = keyPath(isHubShorthand(withoutDigest) ? `docker.io/${withoutDigest}` : withoutDigest);
  const paths: string[] = [];
  for (;;) {
    paths.push(path);
    const slash = path.lastIndexOf("/");
    if (slash === -1) return paths;
    path = path.slice(0, slash);
  }
}

/**
 * `busybox`, `library/busybox`: Docker's rule, the first component is a host
 * only with a dot or a port, or as localhost. A target without a slash is a
 * registry unless it is a single bare word.
 */
function isHubShorthand(target: string): boolean {
  if (/^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(target)) return false;
  const first = target.split("/")[0] ?? "";
  return !first.includes(".") && !first.includes(":") && first !== "localhost";
}

/** Keys of one layer of a Docker config that match a path, the key written exactly as the path first, then file order. */
export function keysMatching(keys: readonly string[], path: string): string[] {
  const matching = keys.filter((k) => keyPath(k) === path);
  return [...matching.filter((k) => k === path), ...matching.filter((k) => k !== path)];
}
