import { resolve as resolvePath } from "node:path";
import { embeddedDefault } from "../config/discover.js";
import { loadConfigFile } from "../config/read.js";
import { EMBEDDED_DEFAULT, type Config } from "../config/resolve.js";
import { startDaemon } from "../daemon/daemon.js";
import { checkWebConfig } from "../http/web-server.js";
import { createLogger, type Logger } from "../log.js";

/**
 * The daemon until SIGTERM or SIGINT; 0 after a clean stop. SIGHUP re-reads
 * the config file and re-plans in place (as POST /-/reload does): a bad one is
 * logged and the running config keeps probing.
 */
export async function runCommand(loaded: Config, webConfigFlag?: string): Promise<number> {
  const config = withWebConfig(loaded, webConfigFlag);
  const logger = createLogger(process.env.CI_PROBER_LOG_LEVEL ?? config.logLevel);
  const daemon = await startDaemon(config, logger, { reread: (current) => reread(current, webConfigFlag, logger) });
  for (;;) {
    const signal = await nextSignal();
    if (signal !== "SIGHUP") {
      logger.info({ signal }, "stopping");
      break;
    }
    // A failed reload is logged by the daemon and changes nothing; the next SIGHUP tries again.
    await daemon.reload().catch(() => undefined);
  }
  await daemon.stop();
  return 0;
}

/** `--web.config.file` wins over `web_config_file:`, also after a reload. */
function withWebConfig(config: Config, flag: string | undefined): Config {
  return flag === undefined ? config : { ...config, webConfigFile: resolvePath(flag) };
}

/** The config file read again; a web config that broke since fails the reload, so the server never serves open. */
async function reread(current: Config, webConfigFlag: string | undefined, logger: Logger): Promise<Config> {
  const next = withWebConfig(current.file === EMBEDDED_DEFAULT ? embeddedDefault() : loadConfigFile(current.file), webConfigFlag);
  if (next.webConfigFile !== undefined) await checkWebConfig(next.webConfigFile, logger);
  return next;
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
