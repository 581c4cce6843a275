import { engineFor } from "../engine/client.js";
import { createCanaryContainer, type CanaryContainer } from "../engine/container.js";
import { oneLine } from "../errors.js";
import { ProbeError } from "../reasons.js";
import type { LocalCanaryConfig } from "../config/resolve.js";
import { runnerPull } from "./engine.js";
import type { ProbeBodyContext } from "./types.js";

export { removeCanaryContainers } from "../engine/container.js";

/**
 * The `local` canary: what the Docker executor does for a job with
 * pull_policy always — pull with the runner's credential, create, start,
 * wait under the probe's deadline, read the output, remove. Success is exit
 * code 0 (and the expected output line, when configured).
 */
export async function localCanary(ctx: ProbeBodyContext<LocalCanaryConfig>): Promise<void> {
  const config = ctx.settings;
  const stages: Record<string, number> = {};
  const docker = await engineFor(ctx.runner, ctx.signal);
  try {
    await timed(ctx, stages, "pull", () => runnerPull(ctx, docker, config.image, false));
    const spec = { image: config.image, command: config.command, network: config.network, runner: ctx.runner.name };
    const container = await timed(ctx, stages, "create", () => createCanaryContainer(docker, ctx.runner.dockerHost, spec, ctx.signal));
    ctx.log.step(`created canary container ${container.id.slice(0, 12)} (network ${config.network})`);
    try {
      await runContainer(ctx, container, stages, config.expectOutput);
    } finally {
      await removeQuietly(ctx, container);
    }
  } finally {
    logStages(ctx, stages);
  }
}

async function runContainer(
  ctx: ProbeBodyContext<LocalCanaryConfig>,
  container: CanaryContainer,
  stages: Record<string, number>,
  expectOutput: string | undefined,
): Promise<void> {
  const short = container.id.slice(0, 12);
  await timed(ctx, stages, "start", () => container.start(ctx.signal));
  let exitCode: number;
  try {
    exitCode = await timed(ctx, stages, "run", () => container.wait(ctx.signal));
  } catch (err) {
    // The deadline passed with the job still running: it is killed and removed by the caller's cleanup.
    if (ctx.signal.aborted)
      throw new ProbeError("timeout", `canary container ${short} still running at the deadline: killed and removed`, { cause: err });
    throw err;
  }
  const lines = await container.output(ctx.signal);
  const last = lines.at(-1) ?? "(no output)";
  ctx.log.step(`canary container ${short} exited ${exitCode}, ${lines.length} output lines`);
  if (exitCode !== 0) throw new ProbeError("container_failed", `canary container exited ${exitCode}: ${last}`);
  if (expectOutput !== undefined && !lines.some((line) => line.includes(expectOutput))) {
    throw new ProbeError("container_failed", `canary container exited 0 without an output line containing "${expectOutput}": ${last}`);
  }
}

// A failed removal must not hide the job's own result; leftovers are removed at the next start or shutdown.
async function removeQuietly(ctx: ProbeBodyContext<LocalCanaryConfig>, container: CanaryContainer): Promise<void> {
  const short = container.id.slice(0, 12);
  try {
    await container.remove();
    ctx.log.step(`removed canary container ${short}`);
  } catch (err) {
    ctx.log.step(`could not remove canary container ${short}: ${oneLine(err)}`);
    ctx.logger.warn({ runner: ctx.runner.name, container: short, error: oneLine(err) }, "canary container not removed");
  }
}

async function timed<T>(
  ctx: ProbeBodyContext<LocalCanaryConfig>,
  stages: Record<string, number>,
  stage: string,
  body: () => Promise<T>,
): Promise<T> {
  const t0 = performance.now();
  try {
    return await body();
  } finally {
    stages[stage] = (performance.now() - t0) / 1000;
    ctx.record.stage(stage, stages[stage]);
  }
}

function logStages(ctx: ProbeBodyContext<LocalCanaryConfig>, stages: Record<string, number>): void {
  const text = Object.entries(stages)
    .map(([stage, seconds]) => `${stage} ${seconds.toFixed(3)}s`)
    .join(", ");
  ctx.log.step(`canary stages: ${text}`);
  ctx.logger.info({ runner: ctx.runner.name, canary: "local", stages }, "canary stages");
}
