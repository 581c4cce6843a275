import { normalizeRegistry } from "../image.js";
import type { Credential, Runner } from "../types.js";
import {
  authsCredential,
  keyPath,
  keysMatching,
  loadDockerConfigs,
  lookupPaths,
  sourceOf,
  type LoadedDockerConfig,
} from "./docker-config.js";
import { helperGet, helperList, isValidHelperName, type HelperListAnswer, type HelperOptions } from "./helper.js";
import { kindFromUsername } from "./kind.js";
import type { DockerConfigFile } from "./schema.js";

export { expandRunners } from "./runner-config.js";
export { kindFromUsername } from "./kind.js";
export { credentialRow, type CredentialRow } from "./format.js";

/**
 * Options for reading credentials: the caller's AbortSignal (the probe
 * deadline), how long one credential-helper call may take, and optionally the
 * environment helpers run with (its PATH finds them).
 */
export type CredentialOptions = HelperOptions;

/**
 * Registry name used for a credential whose source applies to every registry
 * but could not be read: a broken Docker config, a credsStore whose `list` failed.
 */
export const ANY_REGISTRY = "*";

/**
 * Every credential the runner holds, in precedence order: its DOCKER_AUTH_CONFIG,
 * then its config.json; within each credHelpers, credsStore, auths (file order).
 * Credentials a higher source shadows are listed too: an operator looking for a
 * stale password wants to see it. A source that cannot be read gives a
 * Credential with `error`; this never throws except when opts.signal aborts.
 */
export async function runnerCredentials(runner: Runner, opts: CredentialOptions): Promise<Credential[]> {
  const configs = await loadDockerConfigs(runner, opts.signal);
  const groups = await Promise.all(configs.map((loaded) => credentialsOf(runner, loaded, opts)));
  return groups.flat();
}

/**
 * The credential the runner would use for a registry host, or for an image path
 * (`registry.example.jp/ci/canary`, where GitLab Runner also matches keys naming
 * a path inside a registry). GitLab Runner's rule (helpers/docker/auth): the most
 * specific matching key wins; for equally specific keys DOCKER_AUTH_CONFIG comes
 * before config.json, and within one config credHelpers before credsStore before
 * auths. Keys match after normalisation (scheme and path of URL keys dropped,
 * `https://index.docker.io/v1/` is docker.io); when two keys of one layer match
 * equally, the one written exactly as the registry wins, then file order.
 *
 * A key that matches but holds nothing (a helper's "not found", an empty auths
 * entry) shadows the sources after it, as in GitLab Runner: the job pulls without
 * credentials, so this returns undefined. A source that is broken as a whole (bad
 * JSON, failing credsStore `list`) could hold the registry, so it answers at the
 * registry-host level with its error; GitLab Runner would silently skip it, which
 * is the failure the prober exists to make visible.
 */
export async function credentialFor(runner: Runner, target: string, opts: CredentialOptions): Promise<Credential | undefined> {
  const configs = await loadDockerConfigs(runner, opts.signal);
  const paths = lookupPaths(target);
  const host = paths[paths.length - 1] ?? normalizeRegistry(target);
  const lists = new Map<DockerConfigFile, Promise<HelperListAnswer>>();
  const listOf = (config: DockerConfigFile, helper: string) => {
    let answer = lists.get(config);
    if (!answer) lists.set(config, (answer = helperList(helper, opts)));
    return answer;
  };
  for (const path of paths) {
    for (const loaded of configs) {
      const hit = await lookup({ runner, loaded, path, atHost: path === host, host, opts, listOf });
      if (hit.found) return hit.credential;
    }
  }
  return undefined;
}

type Hit = { found: false } | { found: true; credential: Credential | undefined };
const MISS: Hit = { found: false };

/** One look-up of one path in one Docker config; `atHost` marks the registry-host level, where broken sources answer. */
interface Lookup {
  runner: Runner;
  loaded: LoadedDockerConfig;
  path: string;
  atHost: boolean;
  host: string;
  opts: CredentialOptions;
  listOf: (config: DockerConfigFile, helper: string) => Promise<HelperListAnswer>;
}

type Loaded = { where: string; config: DockerConfigFile };

async function lookup(l: Lookup): Promise<Hit> {
  if (l.loaded.state === "broken") return l.atHost ? { found: true, credential: brokenConfig(l.runner, l.host, l.loaded) } : MISS;
  for (const layer of [inCredHelpers, inCredsStore, inAuths]) {
    const hit = await layer(l, l.loaded);
    if (hit.found) return hit;
  }
  return MISS;
}

async function inCredHelpers(l: Lookup, { where, config }: Loaded): Promise<Hit> {
  const key = keysMatching(Object.keys(config.credHelpers ?? {}), l.path)[0];
  const helper = key === undefined ? undefined : config.credHelpers?.[key];
  if (key === undefined || helper === undefined) return MISS;
  return { found: true, credential: await fromHelper(l.runner, helper, key, sourceOf(where, "credHelpers", key), l.opts) };
}

async function inCredsStore(l: Lookup, { where, config }: Loaded): Promise<Hit> {
  const store = config.credsStore;
  if (!store) return MISS;
  const listed = await l.listOf(config, store);
  if (listed.kind === "failed") return l.atHost ? { found: true, credential: storeFailed(l.runner, l.host, where, store, listed.message) } : MISS;
  const key = keysMatching(storeKeys(config, listed.servers), l.path)[0];
  if (key === undefined) return MISS;
  const credential = await fromHelper(l.runner, store, key, sourceOf(where, "credsStore"), l.opts);
  // A listed key the store then does not find shadows auths, as in GitLab Runner; an unlisted leftover falls through to its empty auths entry.
  return credential || key in listed.servers ? { found: true, credential } : MISS;
}

async function inAuths(l: Lookup, { where, config }: Loaded): Promise<Hit> {
  const key = keysMatching(Object.keys(config.auths ?? {}), l.path)[0];
  if (key === undefined) return MISS;
  return { found: true, credential: authsCredential(l.runner, where, key, config.auths?.[key]) };
}

async function credentialsOf(runner: Runner, loaded: LoadedDockerConfig, opts: CredentialOptions): Promise<Credential[]> {
  if (loaded.state === "broken") return [brokenConfig(runner, ANY_REGISTRY, loaded)];
  const { where, config } = loaded;
  const helpers = Promise.all(
    Object.entries(config.credHelpers ?? {}).map(([key, helper]) => fromHelper(runner, helper, key, sourceOf(where, "credHelpers", key), opts)),
  );
  const store = config.credsStore ? storeCredentials(runner, where, config, config.credsStore, opts) : Promise.resolve([]);
  const auths = Object.entries(config.auths ?? {}).map(([key, entry]) => authsCredential(runner, where, key, entry));
  const [fromHelpers, fromStore] = await Promise.all([helpers, store]);
  return [...fromHelpers, ...fromStore, ...auths].filter((c): c is Credential => c !== undefined);
}

async function storeCredentials(runner: Runner, where: string, config: DockerConfigFile, store: string, opts: CredentialOptions): Promise<(Credential | undefined)[]> {
  const listed = await helperList(store, opts);
  if (listed.kind === "failed") return [storeFailed(runner, ANY_REGISTRY, where, store, listed.message)];
  const source = sourceOf(where, "credsStore");
  return Promise.all(storeKeys(config, listed.servers).map((key) => fromHelper(runner, store, key, source, opts)));
}

/**
 * Registries a credsStore is asked about: what its `list` names, plus the empty
 * `auths` entries `docker login` leaves in config.json beside a credsStore (for
 * a registry the list already names under another spelling, the list's key is used).
 */
function storeKeys(config: DockerConfigFile, servers: Record<string, string>): string[] {
  const listed = Object.keys(servers);
  const listedPaths = new Set(listed.map(keyPath));
  const leftovers = Object.entries(config.auths ?? {})
    .filter(([key, entry]) => isEmptyAuth(entry) && !listedPaths.has(keyPath(key)))
    .map(([key]) => key);
  return [...listed, ...leftovers];
}

function isEmptyAuth(entry: NonNullable<DockerConfigFile["auths"]>[string] | undefined): boolean {
  return entry === undefined || entry === null || (!entry.auth && !entry.username && !entry.password && !entry.identitytoken);
}

/** Ask a helper for one server URL; a helper's "not found" is no credential. */
async function fromHelper(runner: Runner, helper: string, serverUrl: string, source: string, opts: CredentialOptions): Promise<Credential | undefined> {
  const base = { runner: runner.name, registry: normalizeRegistry(serverUrl), source, helper };
  if (!isValidHelperName(helper)) {
    const message = `${source}: helper name ${JSON.stringify(helper)} is a path; Docker runs docker-credential-NAME from PATH`;
    return { ...base, username: "", kind: "unknown", secretType: "helper", error: { reason: "credential_invalid", message } };
  }
  const answer = await helperGet(helper, serverUrl, opts);
  if (answer.kind === "not_found") return undefined;
  if (answer.kind === "failed") {
    return { ...base, username: "", kind: "unknown", secretType: "helper", error: { reason: "helper_failed", message: `${source}: ${answer.message}` } };
  }
  // An identity token is used differently on the wire (OAuth refresh token), so it keeps its own secret type.
  const secretType = answer.identityToken ? "identity_token" : "helper";
  return { ...base, username: answer.username, kind: kindFromUsername(answer.username), secretType, secret: answer.secret };
}

function brokenConfig(runner: Runner, registry: string, loaded: { where: string; message: string }): Credential {
  return {
    runner: runner.name,
    registry,
    username: "",
    kind: "unknown",
    secretType: "password",
    source: loaded.where,
    error: { reason: "credential_invalid", message: loaded.message },
  };
}

function storeFailed(runner: Runner, registry: string, where: string, helper: string, message: string): Credential {
  const source = sourceOf(where, "credsStore");
  return { runner: runner.name, registry, username: "", kind: "unknown", secretType: "helper", source, helper, error: { reason: "helper_failed", message: `${source}: ${message}` } };
}
