import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { describe, expect, test } from "vitest";
import { ROOT } from "../../helpers/alerts/files.js";

// deploy/: the systemd unit, the DaemonSet and the compose file, checked with the tools that read them.

const UNIT = join(ROOT, "deploy/ci-prober.service");
const DAEMONSET = join(ROOT, "deploy/kubernetes/daemonset.yaml");
const COMPOSE_DIR = join(ROOT, "deploy/compose");

/** The unit's [Service] section: key -> values in order (a key may repeat). */
function serviceSection(text: string): Map<string, string[]> {
  const section = text.split(/^\[Service\]$/m)[1]?.split(/^\[/m)[0] ?? "";
  const keys = new Map<string, string[]>();
  for (const line of section.split("\n")) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m?.[1] !== undefined) keys.set(m[1], [...(keys.get(m[1]) ?? []), m[2] ?? ""]);
  }
  return keys;
}

function analyze(args: string[], unitText: string): { code: number | null; stderr: string; stdout: string } {
  const dir = mkdtempSync(join(tmpdir(), "unit-"));
  writeFileSync(join(dir, "ci-prober.service"), unitText);
  const r = spawnSync("systemd-analyze", [...args, join(dir, "ci-prober.service")], { encoding: "utf8", timeout: 30_000 });
  return { code: r.status, stderr: r.stderr, stdout: r.stdout };
}

describe("the systemd unit", () => {
  const text = readFileSync(UNIT, "utf8");

  test("systemd-analyze verify accepts it without a single warning", () => {
    expect(analyze(["verify"], text)).toMatchObject({ code: 0, stderr: "" });
  });

  test("systemd-analyze verify is strict enough to catch a misspelt hardening key", () => {
    const r = analyze(["verify"], text.replace("ProtectSystem=strict", "ProtectSytem=strict"));
    expect(r.stderr).toContain("Unknown key 'ProtectSytem' in section [Service], ignoring.");
  });

  test("it runs as the runner's user, reads the runner's files read-only, reloads with SIGHUP and drops every capability", () => {
    const s = serviceSection(text);
    expect({
      User: s.get("User"),
      ExecStart: s.get("ExecStart"),
      ExecReload: s.get("ExecReload"),
      ProtectSystem: s.get("ProtectSystem"),
      ProtectHome: s.get("ProtectHome"),
      ReadOnlyPaths: s.get("ReadOnlyPaths"),
      NoNewPrivileges: s.get("NoNewPrivileges"),
      CapabilityBoundingSet: s.get("CapabilityBoundingSet"),
      AmbientCapabilities: s.get("AmbientCapabilities"),
    }).toEqual({
      User: ["gitlab-runner"],
      ExecStart: ["/usr/bin/node /opt/ci-prober/dist/src/main.js run"],
      ExecReload: ["/bin/kill -HUP $MAINPID"],
      ProtectSystem: ["strict"],
      ProtectHome: ["read-only"],
      ReadOnlyPaths: ["/etc/gitlab-runner /etc/ci-prober"],
      NoNewPrivileges: ["yes"],
      CapabilityBoundingSet: [""],
      AmbientCapabilities: [""],
    });
  });

  test("systemd-analyze security rates its exposure at most 2.0", () => {
    const r = analyze(["security", "--offline=yes"], text);
    const level = Number(/Overall exposure level for ci-prober\.service: ([\d.]+)/.exec(r.stdout)?.[1]);
    expect(level).toBeLessThanOrEqual(2.0);
  });
});

const mount = z.object({ name: z.string(), mountPath: z.string(), readOnly: z.boolean().optional() });
const httpProbe = z.object({ httpGet: z.object({ path: z.string(), port: z.string(), scheme: z.string() }) });
const daemonSetSchema = z.object({
  apiVersion: z.literal("apps/v1"),
  kind: z.literal("DaemonSet"),
  metadata: z.object({ name: z.string() }),
  spec: z.object({
    selector: z.object({ matchLabels: z.record(z.string(), z.string()) }),
    template: z.object({
      metadata: z.object({ labels: z.record(z.string(), z.string()) }),
      spec: z.object({
        nodeSelector: z.record(z.string(), z.string()),
        securityContext: z.object({ runAsNonRoot: z.literal(true), runAsUser: z.number().int().positive() }),
        containers: z
          .array(
            z.object({
              name: z.string(),
              image: z.string(),
              args: z.array(z.string()),
              ports: z.array(z.object({ name: z.string(), containerPort: z.number(), hostPort: z.number().optional() })),
              securityContext: z.object({
                allowPrivilegeEscalation: z.literal(false),
                readOnlyRootFilesystem: z.literal(true),
                capabilities: z.object({ drop: z.array(z.string()) }),
              }),
              livenessProbe: httpProbe,
              readinessProbe: httpProbe,
              volumeMounts: z.array(mount),
            }),
          )
          .length(1),
        volumes: z.array(
          z.object({ name: z.string(), hostPath: z.object({ path: z.string(), type: z.string() }).optional() }).passthrough(),
        ),
      }),
    }),
  }),
});

describe("the Kubernetes DaemonSet", () => {
  const ds = daemonSetSchema.parse(parseYaml(readFileSync(DAEMONSET, "utf8")));
  const pod = ds.spec.template.spec;
  const container = pod.containers[0];

  test("its selector matches its pods, and every mount names a volume", () => {
    expect(pod.containers.length).toBe(1);
    expect(ds.spec.template.metadata.labels).toMatchObject(ds.spec.selector.matchLabels);
    const volumes = new Set(pod.volumes.map((v) => v.name));
    expect(container?.volumeMounts.filter((m) => !volumes.has(m.name))).toEqual([]);
  });

  test("it mounts the runner's files read-only at the host's own paths, as the systemd unit reads them", () => {
    const readOnly = serviceSection(readFileSync(UNIT, "utf8")).get("ReadOnlyPaths")?.[0]?.split(" ") ?? [];
    const mounts = new Map(container?.volumeMounts.map((m) => [m.mountPath, m]));
    for (const path of [...readOnly, "/home/gitlab-runner/.docker"]) expect([path, mounts.get(path)?.readOnly]).toEqual([path, true]);
    const hostPaths = Object.fromEntries(pod.volumes.flatMap((v) => (v.hostPath ? [[v.name, v.hostPath.path]] : [])));
    expect(hostPaths).toEqual({
      "gitlab-runner": "/etc/gitlab-runner",
      "docker-config": "/home/gitlab-runner/.docker",
      "docker-sock": "/var/run/docker.sock",
    });
    for (const m of container?.volumeMounts ?? [])
      if (hostPaths[m.name] !== undefined && m.name !== "docker-sock") expect(m.mountPath).toBe(hostPaths[m.name]);
  });

  test("it runs non-root with no capabilities, serves the default port behind the web config, and probes /-/healthy and /-/ready", () => {
    expect(container?.securityContext.capabilities.drop).toEqual(["ALL"]);
    expect(container?.ports).toEqual([{ name: "http", containerPort: 9839, hostPort: 9839 }]);
    expect(container?.args).toEqual(["run", "--config", "/etc/ci-prober/ci-prober.yml", "--web.config.file", "/etc/ci-prober/web/web.yml"]);
    expect([container?.livenessProbe.httpGet.path, container?.readinessProbe.httpGet.path]).toEqual(["/-/healthy", "/-/ready"]);
  });
});

describe("the docker compose file", () => {
  test("docker-compose config accepts it, and every file it mounts from the repository exists", () => {
    const cli = ["docker-compose", "docker"].find((c) => spawnSync("sh", ["-c", `command -v ${c}`]).status === 0);
    expect(cli).toBe("docker-compose");
    const out = execFileSync("docker-compose", ["config"], {
      cwd: COMPOSE_DIR,
      encoding: "utf8",
      env: { ...process.env, RUNNER_UID: "999" },
    });
    const config = z
      .object({ services: z.record(z.string(), z.object({ volumes: z.array(z.string()).optional(), image: z.string().optional() })) })
      .parse(parseYaml(out));
    expect(Object.keys(config.services).sort()).toEqual(["alertmanager", "ci-prober", "grafana", "prometheus"]);
    const fromRepo = Object.values(config.services)
      .flatMap((s) => s.volumes ?? [])
      .map((v) => v.split(":")[0] ?? "")
      .filter((p) => p.startsWith(ROOT));
    expect(fromRepo.filter((p) => !existsSync(p))).toEqual([]);
    expect(fromRepo.map((p) => p.slice(ROOT.length + 1)).sort()).toEqual([
      "deploy/compose/ci-prober.yml",
      "deploy/compose/grafana-datasource.yml",
      "deploy/compose/prometheus.yml",
      "grafana/ci-prober.json",
      "grafana/provisioning/dashboards.yml",
      "prometheus/alertmanager.yml",
      "prometheus/alerts.yml",
    ]);
  });

  test("its Prometheus config passes promtool with the project's rules beside it", () => {
    const dir = mkdtempSync(join(tmpdir(), "compose-prom-"));
    copyFileSync(join(COMPOSE_DIR, "prometheus.yml"), join(dir, "prometheus.yml"));
    copyFileSync(resolve(ROOT, "prometheus/alerts.yml"), join(dir, "alerts.yml"));
    const r = spawnSync("promtool", ["check", "config", join(dir, "prometheus.yml")], { encoding: "utf8", timeout: 30_000 });
    expect([r.status, r.stdout]).toEqual([0, expect.stringContaining("SUCCESS")]);
  });
});
