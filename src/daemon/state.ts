import { credentialRow } from "../credentials/format.js";
import type { CredentialView, StatusStore } from "../http/status.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics/index.js";
import type { Plan } from "../plan.js";
import type { CredentialCheck } from "../probes/credential-check.js";
import type { Scheduler, Task } from "../scheduler.js";
import { KeySet, type TaskKey } from "../task-key.js";
import type { Credential, CredentialKind } from "../types.js";
import type { KindBook, PlannedTasks } from "./sink.js";

/**
 * What the daemon keeps between plans: the runners it knows, their
 * credentials, and the kinds the Users API established. Applying a plan
 * updates /status and credential_info, syncs the scheduler, and drops the
 * series and history of every task that vanished — by TaskKey, nothing else.
 */
export class PlanState implements KindBook, PlannedTasks {
  readonly #kinds = new Map<string, CredentialKind>();
  #credentials = new Map<string, Credential[]>();
  #jobTokenPaths: string[] = [];
  #runners = new Set<string>();
  #errors = "";
  #tasks = new KeySet();

  constructor(
    private readonly metrics: Metrics,
    private readonly status: StatusStore,
    private readonly scheduler: Scheduler,
    private readonly logger: Logger,
  ) {}

  /** "personal" only when GitLab says a human owns it: a kind from the Users API overrides the username's form. */
  learn(check: CredentialCheck): void {
    if (check.error || check.kind === "unknown") return;
    this.#kinds.set(kindId(check), check.kind);
    const creds = this.#credentials.get(check.runner);
    if (creds) this.metrics.setCredentials(check.runner, this.#withKinds(creds), this.#jobTokenPaths);
  }

  /** A task of the running plan (or the daemon's own). */
  has(key: TaskKey): boolean {
    return this.#tasks.has(key);
  }

  of(c: Pick<Credential, "runner" | "registry" | "username" | "kind">): CredentialKind {
    return this.#kinds.get(kindId(c)) ?? c.kind;
  }

  /**
   * Make a plan the running one. `extra` are the daemon's own tasks (the
   * re-plan), synced with the plan's so that the scheduler holds exactly both.
   */
  apply(p: Plan, extra: Task[] = []): { added: number; removed: number } {
    const { metrics, status, logger } = this;
    const views = new Map(
      [...p.credentials].map(([name, creds]) => [
        name,
        this.#withKinds(creds).map((c): CredentialView => credentialRow(c, p.jobTokenPaths)),
      ]),
    );
    status.setRunners(p.runners, views);
    // A runner's broken config.json, helper or config.toml is what the prober is there to find: a finding, not an error of its own.
    if (p.errors.join("\n") !== this.#errors) for (const e of p.errors) logger.warn({ error: e }, "runner source unusable");
    this.#errors = p.errors.join("\n");
    status.inputErrors = p.errors;
    status.gitlabVariables = p.gitlabVariables;
    this.#credentials = p.credentials;
    this.#jobTokenPaths = p.jobTokenPaths;
    for (const [name, creds] of p.credentials) metrics.setCredentials(name, this.#withKinds(creds), p.jobTokenPaths);
    const names = new Set(p.runners.map((r) => r.name));
    for (const gone of this.#runners) {
      if (names.has(gone)) continue;
      metrics.dropRunner(gone);
      logger.info({ runner: gone }, "runner removed");
    }
    this.#runners = names;
    const tasks = [...p.tasks, ...extra];
    this.#tasks = new KeySet(tasks.map((t) => t.key));
    // A registry no task talks to any more takes its rate-limit gauges with it.
    const groups = new Set(tasks.map((t) => t.group));
    for (const registry of metrics.registries()) if (!groups.has(registry)) metrics.dropRegistry(registry);
    const { removed, added } = this.scheduler.sync(tasks);
    for (const key of removed) metrics.drop(key);
    status.retain(this.#tasks);
    if (added.length > 0 || removed.length > 0)
      logger.info({ added: added.length, removed: removed.length, tasks: p.tasks.length }, "plan updated");
    return { added: added.length, removed: removed.length };
  }

  #withKinds(creds: Credential[]): Credential[] {
    // The checks learn kinds under the path the key names (see the credential_check kind).
    return creds.map((c) => ({ ...c, kind: this.of({ ...c, registry: c.path ?? c.registry }) }));
  }
}

function kindId(c: Pick<Credential, "runner" | "registry" | "username">): string {
  return JSON.stringify([c.runner, c.registry, c.username]);
}
