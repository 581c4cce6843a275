import { resolve as resolvePath } from "node:path";
import { embeddedDefault } from "../config/discover.js";
import { loadConfigFile } from "../config/read.js";
import { EMBEDDED_DEFAULT, type Config } from "../config/resolve.js";
import { startDaemon, type Daemon } from "../daemon/daemon.js";
import { oneLine } from "../errors.js";
import { checkWebConfig } from "../http/web-server.js";
import { createLogger, type Logger } from "../log.js";

/**
 * The daemon until SIGTERM or SIGINT; 0 after a clean stop. SIGHUP re-reads
 * the config file: a valid one replaces the running daemon, a bad one is
 * logged and the old config keeps probing.
 */
export async function runCommand(loaded: Config, webConfigFlag?: string): Promise<number> {
  const config = withWebConfig(loaded, webConfigFlag);
  const logger = createLogger(process.env.CI_PROBER_LOG_LEVEL ?? config.logLevel);
  let daemon: Daemon = await startDaemon(config, logger);
  let current = config;
  for (;;) {
    const signal = await nextSignal();
    if (signal !== "SIGHUP") {
      logger.info({ signal }, "stopping");
      break;
    }
    const next = await reload(current, webConfigFlag, logger);
    if (!next) continue;
    await daemon.stop();
    daemon = await startDaemon(next, logger);
    current = next;
    logger.info({ config: next.file }, "config reloaded");
  }
  await daemon.stop();
  return 0;
}

/** `--web.config.file` wins over `web_config_file:`, also after a reload. */
function withWebConfig(config: Config, flag: string | undefined): Config {
  return flag === undefined ? config : { ...config, webConfigFile: resolvePath(flag) };
}

async function reload(current: Config, webConfigFlag: string | undefined, logger: Logger): Promise<Config | undefined> {
  try {
    const next = withWebConfig(current.file === EMBEDDED_DEFAULT ? embeddedDefault() : loadConfigFile(current.file), webConfigFlag);
    // The server is started anew with the reloaded config: a web config that broke since must not stop it.
    if (next.webConfigFile !== undefined) await checkWebConfig(next.webConfigFile, logger);
    return next;
  } catch (err) {
    logger.error({ config: current.file, error: oneLine(err) }, "config reload failed; keeping the running config");
    return undefined;
  }
}

function nextSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const signals: NodeJS.Signals[] = ["SIGTERM", "SIGINT", "SIGHUP"];
    const on = (signal: NodeJS.Signals) => {
      for (const s of signals) process.off(s, on);
      resolve(signal);
    };
    for (const s of signals) process.on(s, on);
  });
}
