import { embeddedDefault } from "../config/discover.js";
import { loadConfigFile } from "../config/read.js";
import { EMBEDDED_DEFAULT, type Config } from "../config/resolve.js";
import { startDaemon, type Daemon } from "../daemon/daemon.js";
import { oneLine } from "../errors.js";
import { createLogger, type Logger } from "../log.js";

/**
 * The daemon until SIGTERM or SIGINT; 0 after a clean stop. SIGHUP re-reads
 * the config file: a valid one replaces the running daemon, a bad one is
 * logged and the old config keeps probing.
 */
export async function runCommand(config: Config): Promise<number> {
  const logger = createLogger(process.env.CI_PROBER_LOG_LEVEL ?? config.logLevel);
  let daemon: Daemon = await startDaemon(config, logger);
  let current = config;
  for (;;) {
    const signal = await nextSignal();
    if (signal !== "SIGHUP") {
      logger.info({ signal }, "stopping");
      break;
    }
    const next = reload(current, logger);
    if (!next) continue;
    await daemon.stop();
    daemon = await startDaemon(next, logger);
    current = next;
    logger.info({ config: next.file }, "config reloaded");
  }
  await daemon.stop();
  return 0;
}

function reload(current: Config, logger: Logger): Config | undefined {
  try {
    return current.file === EMBEDDED_DEFAULT ? embeddedDefault() : loadConfigFile(current.file);
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
