import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ciState } from "../fake-gitlab/pipelines.js";
import { startFakeGitlab, type FakeGitlab } from "../fake-gitlab/server.js";
import { ISSUER, SERVICE, signingKey } from "../fake-gitlab/jwt.js";
import { freePort, run, startProc, waitForListen, type Proc } from "./procs.js";
import { selfSignedCert } from "./tls.js";

/**
 * Real services for the tests, all on 127.0.0.1 or a private unix socket:
 * a dockerd, a docker-registry with htpasswd auth, a docker-registry with
 * token auth whose realm is the fake GitLab's /jwt/auth, and test images
 * pushed to both. JSON-serialisable so vitest can provide() it to workers.
 */
export interface ServicesInfo {
  tmp: string;
  /** unix:///…/docker.sock of the test dockerd. */
  dockerHost: string;
  /** A busybox image imported into the test dockerd. */
  localImage: string;
  /** The rootfs tar it was imported from. */
  busyboxTar: string;
  htpasswd: {
    host: string;
    /** Users in the htpasswd file: user -> password. */
    users: Record<string, string>;
    /** ci/canary:latest, pushed. */
    image: string;
  };
  token: {
    host: string;
    /** ci/canary:latest, pushed (a GitLab-style project path). */
    image: string;
  };
  gitlab: {
    url: string;
    /** A user with push rights on the token registry: username -> password. */
    admin: { username: string; password: string };
  };
}

export interface Services {
  info: ServicesInfo;
  gitlab: FakeGitlab;
  stop(): Promise<void>;
}

/** Debian packages the services need; scripts/test.sh installs them. */
export const REQUIRED_BINARIES = ["dockerd", "docker-registry", "htpasswd", "busybox", "skopeo"];

/** The Debian docker CLI, not whatever else is on PATH (the daemon is Debian's 20.10). */
export function dockerCli(): string {
  return existsSync("/usr/bin/docker") ? "/usr/bin/docker" : "docker";
}

export async function startServices(opts: { withDockerd?: boolean } = {}): Promise<Services> {
  const withDockerd = opts.withDockerd ?? true;
  const tmp = mkdtempSync(join(tmpdir(), "ci-prober-test-"));
  const procs: Proc[] = [];
  let gitlab: FakeGitlab | undefined;
  const stop = async () => {
    await gitlab?.close();
    for (const p of procs.reverse()) await p.stop();
    try {
      rmSync(tmp, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // vfs layers can hold files root cannot remove while a mount lingers; the tmp dir is disposable.
    }
  };
  try {
    // Token signing key and the certificate the registry trusts it through.
    selfSignedCert(tmp, { name: "ci-prober-test-token", days: 2, keyFile: "token.key", certFile: "token.crt", ip: false });
    const key = signingKey(execFileSync("cat", [join(tmp, "token.key")]).toString());
    gitlab = await startFakeGitlab(key);
    // Every daemon of the suite shares this instance: its 2000-a-minute throttle would make their API budgets wait on one another.
    ciState(gitlab.state).limitPerMinute = 1_000_000;
    const admin = gitlab.state.addUser({ username: "ci-admin", password: "admin-pw-0f3c9a", actions: ["pull", "push"] });

    const htUsers = { admin: "htpasswd-admin-pw-71b2", alice: "alice-pw-5d0e88" };
    const htpasswdFile = join(tmp, "htpasswd");
    for (const [user, pw] of Object.entries(htUsers)) {
      execFileSync("htpasswd", ["-bB", ...(existsSync(htpasswdFile) ? [] : ["-c"]), htpasswdFile, user, pw], { stdio: "ignore" });
    }
    const htPort = await freePort();
    procs.push(
      await startRegistry(tmp, "registry-htpasswd", htPort, `auth:\n  htpasswd:\n    realm: ci-prober-test\n    path: ${htpasswdFile}\n`),
    );
    const tokPort = await freePort();
    procs.push(
      await startRegistry(
        tmp,
        "registry-token",
        tokPort,
        `auth:\n  token:\n    realm: ${gitlab.url}/jwt/auth\n    service: ${SERVICE}\n    issuer: ${ISSUER}\n    rootcertbundle: ${join(tmp, "token.crt")}\n`,
      ),
    );

    const busyboxTar = buildBusyboxTar(tmp);
    const info: ServicesInfo = {
      tmp,
      dockerHost: "",
      localImage: "ci-prober-test/busybox:1",
      busyboxTar,
      htpasswd: { host: `127.0.0.1:${htPort}`, users: htUsers, image: `127.0.0.1:${htPort}/ci/canary:latest` },
      token: { host: `127.0.0.1:${tokPort}`, image: `127.0.0.1:${tokPort}/ci/canary:latest` },
      gitlab: { url: gitlab.url, admin: { username: admin.username, password: admin.password } },
    };
    if (withDockerd) {
      const dockerd = await startDockerd(tmp);
      procs.push(dockerd.proc);
      info.dockerHost = dockerd.host;
      await run(dockerCli(), ["-H", dockerd.host, "import", busyboxTar, info.localImage]);
    }
    // Push with skopeo straight from the rootfs tar turned into an image by the daemon when there is one.
    await pushImage(info, info.htpasswd.image, `admin:${htUsers.admin}`);
    await pushImage(info, info.token.image, `${admin.username}:${admin.password}`);
    return { info, gitlab, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** A docker-registry on 127.0.0.1:port; `tls` makes it serve HTTPS with that certificate. */
export async function startRegistry(
  tmp: string,
  name: string,
  port: number,
  authYaml: string,
  tls?: { cert: string; key: string },
): Promise<Proc> {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  const config = join(dir, "config.yml");
  writeFileSync(
    config,
    `version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, "data")}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n${tls ? `  tls:\n    certificate: ${tls.cert}\n    key: ${tls.key}\n` : ""}${authYaml}`,
  );
  const proc = startProc(name, "docker-registry", ["serve", config], join(dir, "log"));
  await waitForListen({ port }, 15_000, proc);
  return proc;
}

/** A dockerd of its own, for tests that must not share the daemon (its leftover sweep removes every ci-prober container). */
export async function startDockerd(
  tmp: string,
  tls?: { port: number; ca: string; cert: string; key: string },
  storageDriver = "vfs",
  /** Above 0: dockerd (and so its containers and builds) runs under `nice`, leaving the CPU to timing-sensitive tests. */
  niceness = 0,
): Promise<{ proc: Proc; host: string }> {
  const dir = join(tmp, "dockerd");
  mkdirSync(dir, { recursive: true });
  const sock = join(dir, "docker.sock");
  // With TLS the engine also listens on 127.0.0.1 and demands a client certificate, as a tcp:// runner engine does.
  const tcp = tls
    ? ["--host", `tcp://127.0.0.1:${tls.port}`, "--tlsverify", "--tlscacert", tls.ca, "--tlscert", tls.cert, "--tlskey", tls.key]
    : [];
  const proc = startProc(
    "dockerd",
    niceness > 0 ? "nice" : "dockerd",
    [
      ...(niceness > 0 ? ["-n", String(niceness), "dockerd"] : []),
      ...tcp,
      "--host",
      `unix://${sock}`,
      "--data-root",
      join(dir, "root"),
      "--exec-root",
      join(dir, "exec"),
      "--pidfile",
      join(dir, "docker.pid"),
      `--storage-driver=${storageDriver}`,
      "--iptables=false",
      "--ip6tables=false",
      "--bridge=none",
    ],
    join(dir, "log"),
  );
  await waitForListen({ path: sock }, 30_000, proc);
  const host = `unix://${sock}`;
  // The socket accepts before the API is ready; ping until it answers.
  for (let i = 0; i < 100; i++) {
    try {
      await run(dockerCli(), ["-H", host, "version", "--format", "{{.Server.Version}}"], { timeoutMs: 5000 });
      return { proc, host };
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error(`dockerd did not answer; see ${proc.logFile}`);
}

/** A rootfs with busybox-static and its applets: enough for `sh -c`, `echo`, `sleep`. */
export function buildBusyboxTar(tmp: string, name = "busybox-rootfs"): string {
  const root = join(tmp, name);
  mkdirSync(join(root, "bin"), { recursive: true });
  mkdirSync(join(root, "tmp"), { recursive: true });
  const busybox = ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p));
  if (!busybox) throw new Error("busybox is not installed (apt-get install busybox-static)");
  copyFileSync(busybox, join(root, "bin", "busybox"));
  chmodSync(join(root, "bin", "busybox"), 0o755);
  for (const applet of ["sh", "echo", "sleep", "cat", "true", "false", "ls", "env", "head", "dd"]) {
    symlinkSync("busybox", join(root, "bin", applet));
  }
  const tar = join(tmp, `${name}.tar`);
  execFileSync("tar", ["-C", root, "-cf", tar, "."]);
  return tar;
}

/** Push the busybox image to a registry, with skopeo from the daemon (or a docker-archive when there is no daemon). */
async function pushImage(info: ServicesInfo, dest: string, creds: string): Promise<void> {
  const archive = join(info.tmp, "busybox-image.tar");
  if (!existsSync(archive)) {
    if (info.dockerHost === "") throw new Error("pushing without dockerd is not supported");
    await run(dockerCli(), ["-H", info.dockerHost, "save", "-o", archive, info.localImage]);
  }
  await run("skopeo", [
    "copy",
    "--quiet",
    "--dest-tls-verify=false",
    "--dest-creds",
    creds,
    `docker-archive:${archive}`,
    `docker://${dest}`,
  ]);
}
