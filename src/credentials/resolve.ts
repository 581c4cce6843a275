import type { Credential, Runner } from "../types.js";
import { authsCredential, keyPath, keysMatching, lookupPaths, sourceOf, type LoadedDockerConfig } from "./docker-config.js";
import { helperGet, helperList, isValidHelperName, type HelperOptions } from "./helper.js";
import { kindFromUsername } from "./kind.js";
import type { DockerConfigFile } from "./schema.js";

/**
 * Registry name used for a credential whose source applies to every registry
 * but could not be read: a broken Docker config, a failed helper.
 */
export const ANY_REGISTRY = "*";

/** Where the job's own credential comes from; GitLab Runner calls it the job payload. */
export const JOB_TOKEN_SOURCE = "CI_JOB_TOKEN";

/** What answers for one registry path inside one source: a credential, or a key that holds nothing (the pull goes anonymous). */
export interface Answer {
  source: string;
  credential: Credential | undefined;
}

/**
 * One source of credentials, resolved whole as GitLab Runner resolves it
 * (helpers/docker/auth: ResolveConfigs): every key of every layer is read, and
 * a failure anywhere drops the whole source.
 */
export interface ResolvedSource {
  where: string;
  /** The runner drops this source: bad JSON, an `auth` that does not decode, a failed helper or store. */
  dropped: boolean;
  /** Set when what failed is the source as a whole (a file that does not parse, a store whose `list` failed). */
  failure?: Credential;
  /**
   * Per registry path, what answers in this source, the winner first (credHelpers, then credsStore, then
   * auths). In a dropped source a key that itself failed answers with a credential carrying `error`.
   */
  answers: Map<string, Answer[]>;
}

/** Every credential of a runner, marked in use or shadowed, and the look-up a probe uses. */
export interface Resolved {
  credentials: Credential[];
  /** The credential a job would use for an image or registry path; undefined when it pulls anonymously. */
  lookup(target: string): Credential | undefined;
}

/**
 * Apply the rule of SPEC.md (Which credential a runner uses) to sources in
 * their order: for each path, the first source holding it wins and within it
 * the first answer; every other credential at that path is shadowed by the
 * winner. A dropped source is listed with its failure and never wins.
 */
export function resolve(sources: ResolvedSource[]): Resolved {
  const winners = new Map<string, Answer>();
  for (const s of sources) {
    if (s.dropped) continue;
    for (const [path, answers] of s.answers) if (!winners.has(path) && answers[0]) winners.set(path, answers[0]);
  }
  const credentials: Credential[] = [];
  for (const s of sources) {
    if (s.failure) credentials.push({ ...s.failure, inUse: false, shadowedBy: null });
    for (const [path, answers] of s.answers) {
      for (const a of answers) {
        if (!a.credential) continue;
        const winner = s.dropped ? undefined : winners.get(path);
        const inUse = winner === a;
        credentials.push({ ...a.credential, path, inUse, shadowedBy: inUse || !winner ? null : winner.source });
      }
    }
  }
  const marked = new Map(credentials.filter((c) => c.inUse).map((c) => [c.path, c]));
  return {
    credentials,
    lookup(target) {
      const paths = lookupPaths(target);
      for (const path of paths) {
        if (!winners.has(path)) continue;
        const used = marked.get(path);
        // The job token's secret exists only inside a job: a probe can only go anonymous where it would be used.
        return used?.source.startsWith(`${JOB_TOKEN_SOURCE}#`) ? undefined : used;
      }
      // Nothing answers: the job pulls anonymously, unless a dropped source might have held it — that is what the probe reports.
      for (const s of sources) if (s.dropped) return whyDropped(s, paths);
      return undefined;
    },
  };
}

/** The error a dropped source stands for at these paths: its key's own, else the whole source's, else its first. */
function whyDropped(s: ResolvedSource, paths: string[]): Credential | undefined {
  const errors = (path: string) => (s.answers.get(path) ?? []).map((a) => a.credential).filter((c) => c?.error);
  for (const path of paths) {
    const own = errors(path)[0];
    if (own) return { ...own, path, inUse: false, shadowedBy: null };
  }
  if (s.failure) return { ...s.failure, inUse: false, shadowedBy: null };
  for (const path of s.answers.keys()) {
    const first = errors(path)[0];
    if (first) return { ...first, path, inUse: false, shadowedBy: null };
  }
  return undefined;
}

/** Resolve one Docker config (a DOCKER_AUTH_CONFIG value or a config.json): auths, overridden by credsStore, overridden by credHelpers. */
export async function resolveDockerConfig(runner: Runner, loaded: LoadedDockerConfig, opts: HelperOptions): Promise<ResolvedSource> {
  if (loaded.state === "broken") {
    return {
      where: loaded.where,
      dropped: true,
      failure: failed(runner, loaded.where, "credential_invalid", loaded.message),
      answers: new Map(),
    };
  }
  const { where, config } = loaded;
  const layers = await Promise.all([
    helperAnswers(runner, where, config, opts),
    storeAnswers(runner, where, config, opts),
    authsAnswers(runner, where, config),
  ]);
  const failure = layers.find((l) => l.failure)?.failure;
  const answers = new Map<string, Answer[]>();
  let dropped = failure !== undefined;
  for (const layer of layers) {
    for (const [path, answer] of layer.answers) {
      if (answer.credential?.error) dropped = true;
      answers.set(path, [...(answers.get(path) ?? []), answer]);
    }
  }
  return { where, dropped, ...(failure ? { failure } : {}), answers };
}

/** The job token (source c of SPEC.md) for the GitLab instance's registry and dependency proxy paths. */
export function jobTokenSource(runner: Runner, paths: readonly string[]): ResolvedSource {
  const answers = new Map<string, Answer[]>();
  for (const path of paths) {
    const source = `${JOB_TOKEN_SOURCE}#registry[${JSON.stringify(path)}]`;
    const credential: Credential = {
      runner: runner.name,
      registry: hostOf(path),
      username: "gitlab-ci-token",
      kind: "job_token",
      secretType: "password",
      source,
    };
    answers.set(path, [{ source, credential }]);
  }
  return { where: JOB_TOKEN_SOURCE, dropped: false, answers };
}

/**
 * What one layer of a Docker config answers. A key that fails answers with its error (and drops the
 * whole config); `failure` is a layer that failed as a whole (a store whose `list` failed).
 */
interface Layer {
  answers: [string, Answer][];
  failure?: Credential;
}

/** Keys of one layer grouped by path: the key written exactly as its path first, then file order. */
function byPath(keys: string[]): [string, string[]][] {
  const paths = [...new Set(keys.map(keyPath))];
  return paths.map((path) => [path, keysMatching(keys, path)]);
}

function authsAnswers(runner: Runner, where: string, config: DockerConfigFile): Layer {
  const answers: [string, Answer][] = [];
  for (const [path, keys] of byPath(Object.keys(config.auths ?? {}))) {
    for (const key of keys) {
      // An `auth` that does not decode answers with its error: Docker's loader rejects the whole file for it, and so does GitLab Runner.
      answers.push([path, { source: sourceOf(where, "auths", key), credential: authsCredential(runner, where, key, config.auths?.[key]) }]);
    }
  }
  return { answers };
}

async function storeAnswers(runner: Runner, where: string, config: DockerConfigFile, opts: HelperOptions): Promise<Layer> {
  const store = config.credsStore;
  if (!store) return { answers: [] };
  const source = sourceOf(where, "credsStore");
  if (!isValidHelperName(store)) return { answers: [], failure: failed(runner, where, "credential_invalid", invalidHelper(source, store)) };
  const listed = await helperList(store, opts);
  if (listed.kind === "failed")
    return { answers: [], failure: failed(runner, where, "helper_failed", `${source}: ${listed.message}`, store) };
  const answers: [string, Answer][] = [];
  for (const [path, keys] of byPath(Object.keys(listed.servers))) {
    for (const key of keys) {
      answers.push([path, { source, credential: await fromHelper(runner, store, key, source, opts) }]);
    }
  }
  return { answers };
}

async function helperAnswers(runner: Runner, where: string, config: DockerConfigFile, opts: HelperOptions): Promise<Layer> {
  const entries = Object.entries(config.credHelpers ?? {});
  const got = await Promise.all(
    entries.map(([key, helper]) => {
      const source = sourceOf(where, "credHelpers", key);
      // GitLab Runner refuses a helper name that is a path (and so the whole file); it is never run.
      if (!isValidHelperName(helper))
        return Promise.resolve(keyFailed(runner, key, source, "credential_invalid", invalidHelper(source, helper), helper));
      return fromHelper(runner, helper, key, source, opts);
    }),
  );
  const byKey = new Map(entries.map(([key], i) => [key, got[i]]));
  const answers: [string, Answer][] = [];
  for (const [path, keys] of byPath(entries.map(([key]) => key))) {
    for (const key of keys) answers.push([path, { source: sourceOf(where, "credHelpers", key), credential: byKey.get(key) }]);
  }
  return { answers };
}

/** Ask a helper for one server URL; its "not found" is a key that holds nothing, as in Docker. */
async function fromHelper(
  runner: Runner,
  helper: string,
  serverUrl: string,
  source: string,
  opts: HelperOptions,
): Promise<Credential | undefined> {
  const answer = await helperGet(helper, serverUrl, opts);
  if (answer.kind === "not_found") return undefined;
  if (answer.kind === "failed") return keyFailed(runner, serverUrl, source, "helper_failed", `${source}: ${answer.message}`, helper);
  // An identity token is used differently on the wire (OAuth refresh token), so it keeps its own secret type.
  const secretType = answer.identityToken ? "identity_token" : "helper";
  return {
    runner: runner.name,
    registry: hostOf(keyPath(serverUrl)),
    username: answer.username,
    kind: kindFromUsername(answer.username),
    secretType,
    source,
    helper,
    secret: answer.secret,
  };
}

/** A key whose helper failed or may not run. */
function keyFailed(
  runner: Runner,
  key: string,
  source: string,
  reason: "credential_invalid" | "helper_failed",
  message: string,
  helper: string,
): Credential {
  return {
    runner: runner.name,
    registry: hostOf(keyPath(key)),
    username: "",
    kind: "unknown",
    secretType: "helper",
    source,
    helper,
    error: { reason, message },
  };
}

function invalidHelper(source: string, helper: string): string {
  return `${source}: helper name ${JSON.stringify(helper)} is a path; Docker runs docker-credential-NAME from PATH`;
}

/** The row for a dropped source: it stands for every registry, because it could have held any. */
function failed(
  runner: Runner,
  where: string,
  reason: "credential_invalid" | "helper_failed",
  message: string,
  helper?: string,
): Credential {
  return {
    runner: runner.name,
    registry: ANY_REGISTRY,
    username: "",
    kind: "unknown",
    secretType: helper !== undefined ? "helper" : "password",
    source: where,
    ...(helper !== undefined ? { helper } : {}),
    error: { reason, message },
  };
}

/** The registry host of a path: `registry.example.jp/team-a` → `registry.example.jp`. */
export function hostOf(path: string): string {
  return path.split("/")[0] ?? path;
}

/**
 * Whether a stored credential hides the job token for some images: it wins at
 * a path of the GitLab registry or dependency proxy, or below one (a path key
 * such as `registry.example.jp/group` shadows it for that group's images).
 */
export function shadowsJobToken(c: Credential, jobTokenPaths: readonly string[]): boolean {
  if (!c.inUse || c.path === undefined || c.source.startsWith(`${JOB_TOKEN_SOURCE}#`)) return false;
  const path = c.path;
  return jobTokenPaths.some((p) => path === p || path.startsWith(`${p}/`));
}
