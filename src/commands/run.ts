import type { Config } from "../config/load.js";
import { startDaemon } from "../daemon.js";
import { createLogger } from "../log.js";

/** The daemon until SIGTERM or SIGINT; 0 after a clean stop. */
export async function runCommand(config: Config): Promise<number> {
  const logger = createLogger(process.env.CI_PROBER_LOG_LEVEL ?? config.logLevel);
  const daemon = await startDaemon(config, logger);
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      logger.info({ signal }, "stopping");
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
      resolve();
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
  await daemon.stop();
  return 0;
}
