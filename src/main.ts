#!/usr/bin/env node
import { parseArgs } from "node:util";
import type { Config } from "./config/resolve.js";
import { InputError, oneLine } from "./errors.js";
import { VERSION } from "./version.js";

const USAGE = `Usage: ci-prober [command] [--config FILE] [--web.config.file FILE] [--json] [--gitlab]

Probes what a GitLab CI job is about to do — docker login and pull with each
runner's stored credentials, canary jobs and pipelines — and exports the
results as Prometheus metrics.

Commands:
  run            the daemon: schedule probes, serve /metrics /status (default)
  once           one round of every probe; a table (or --json); exit 1 if any failed
  credentials    every credential each runner would use, and where it is stored
  check-config   validate the config and print the resolved runners

Options:
  --config FILE  config file (default: $CI_PROBER_CONFIG, then ./ci-prober.yml,
                 else discover this host's runners)
  --web.config.file FILE
                 TLS and basic auth for the HTTP endpoints (run), in Prometheus
                 exporter-toolkit's format; overrides web_config_file
  --json         machine-readable output (once, credentials)
  --gitlab       credentials: add the DOCKER_AUTH_CONFIG values GitLab holds
  --help         this text
  --version      print the version

Exit status: 0 ok, 1 a probe failed or a runner's file or helper could not be read,
2 bad ci-prober config or usage.`;

type Command = "run" | "once" | "credentials" | "check-config";
const COMMANDS: readonly Command[] = ["run", "once", "credentials", "check-config"];

/** Parse argv and run a command; resolves to the exit status. */
export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  // biome-ignore lint/suspicious/noImplicitAnyLet: its type is parseArgs' result for the options given below, assigned in the try.
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: "string", short: "c" },
        "web.config.file": { type: "string" },
        json: { type: "boolean" },
        gitlab: { type: "boolean" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "V" },
      },
    });
  } catch (err) {
    const option = /Unknown option '([^']+)'/.exec(oneLine(err))?.[1];
    process.stderr.write(`ci-prober: ${option !== undefined ? `unknown option ${option}` : oneLine(err)}\n${USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`ci-prober ${VERSION} (node ${process.version})\n`);
    return 0;
  }
  const command = (positionals[0] ?? "run") as Command;
  if (!COMMANDS.includes(command) || positionals.length > 1) {
    process.stderr.write(`ci-prober: unknown command "${positionals.join(" ")}"\n${USAGE}\n`);
    return 2;
  }
  if (values["web.config.file"] !== undefined && command !== "run") {
    process.stderr.write(`ci-prober: --web.config.file applies to run, not ${command}\n`);
    return 2;
  }
  if (values.json && (command === "run" || command === "check-config")) {
    process.stderr.write(`ci-prober: --json applies to once and credentials, not ${command}\n`);
    return 2;
  }
  if (values.gitlab && command !== "credentials") {
    process.stderr.write(`ci-prober: --gitlab applies to credentials, not ${command}\n`);
    return 2;
  }
  try {
    const config = await loadConfig(values.config, env);
    switch (command) {
      case "run":
        return await (await import("./commands/run.js")).runCommand(config, values["web.config.file"]);
      case "once":
        return await (await import("./commands/once.js")).onceCommand(config, values.json ?? false);
      case "credentials":
        return await (await import("./commands/credentials.js")).credentialsCommand(config, {
          json: values.json ?? false,
          gitlab: values.gitlab ?? false,
        });
      case "check-config":
        return await (await import("./commands/check-config.js")).checkConfigCommand(config);
    }
  } catch (err) {
    if (err instanceof InputError) {
      process.stderr.write(`ci-prober: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

// Loaded on demand: zod and yaml cost ~0.1 s at start, which --help and --version need not pay.
async function loadConfig(flag: string | undefined, env: NodeJS.ProcessEnv): Promise<Config> {
  const [{ embeddedDefault, resolveConfigPath }, { loadConfigFile }] = await Promise.all([
    import("./config/discover.js"),
    import("./config/read.js"),
  ]);
  const file = resolveConfigPath({ ...(flag !== undefined ? { flag } : {}), env });
  return file === undefined ? embeddedDefault(env) : loadConfigFile(file, env);
}

// Run when executed as the bin, not when imported by tests.
const invoked = process.argv[1] ?? "";
if (/(?:^|[\\/])(main\.js|ci-prober)$/.test(invoked)) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`ci-prober: internal error: ${oneLine(err)}\n`);
      process.exitCode = 3;
    },
  );
}
