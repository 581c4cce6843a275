import { execFileSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readlinkSync,
  realpathSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";

/** The uid and gid of the `node` user, as in the official node images. */
export const NODE_UID = 1000;

/**
 * A root filesystem for a Node base image made from this machine's own node (and npm), so the
 * Dockerfile builds without Docker Hub: node and the shared libraries ldd names, npm, busybox for
 * /bin/sh and the few tools a RUN line needs, and a `node` user with uid 1000.
 */
export function buildNodeBaseTar(tmp: string): string {
  const root = join(tmp, "node-base-rootfs");
  const node = realpathSync(process.execPath);
  copyInto(root, node, "/usr/bin/node");
  for (const lib of sharedLibraries(node)) copyInto(root, lib, lib);
  const npm = npmRoot(node);
  cpSync(npm, join(root, "usr/lib/node_modules/npm"), { recursive: true, verbatimSymlinks: true });
  symlinkSync("../lib/node_modules/npm/bin/npm-cli.js", join(root, "usr/bin/npm"));
  symlinkSync("../lib/node_modules/npm/bin/npx-cli.js", join(root, "usr/bin/npx"));
  const busybox = ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p));
  if (!busybox) throw new Error("busybox is not installed (apt-get install busybox-static)");
  copyInto(root, busybox, "/bin/busybox");
  for (const applet of ["sh", "ls", "cat", "cp", "mv", "rm", "mkdir", "id", "env", "chmod", "grep", "sed", "uname", "true"]) {
    symlinkSync("busybox", join(root, "bin", applet));
  }
  // npm's bin scripts start with #!/usr/bin/env node.
  symlinkSync("/bin/busybox", join(root, "usr/bin/env"));
  mkdirSync(join(root, "etc"), { recursive: true });
  // This machine's trust store: npm ci in the build reaches the registry the way the host does.
  const bundle = trustStore();
  if (bundle) copyInto(root, bundle, CA_BUNDLE);
  writeFileSync(join(root, "etc/passwd"), `root:x:0:0:root:/root:/bin/sh\nnode:x:${NODE_UID}:${NODE_UID}::/home/node:/bin/sh\n`);
  writeFileSync(join(root, "etc/group"), `root:x:0:\nnode:x:${NODE_UID}:\n`);
  mkdirSync(join(root, "home/node"), { recursive: true });
  chownSync(join(root, "home/node"), NODE_UID, NODE_UID);
  mkdirSync(join(root, "tmp"), { recursive: true });
  chmodSync(join(root, "tmp"), 0o1777);
  mkdirSync(join(root, "root"), { recursive: true });
  const tar = join(tmp, "node-base.tar");
  execFileSync("tar", ["--numeric-owner", "-C", root, "-cf", tar, "."]);
  return tar;
}

/** Where the base image keeps the CA bundle; `docker import --change` points NODE_EXTRA_CA_CERTS at it. */
export const CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt";

function trustStore(): string | undefined {
  return [process.env.NODE_EXTRA_CA_CERTS, process.env.SSL_CERT_FILE, CA_BUNDLE].find(
    (p): p is string => p !== undefined && p !== "" && existsSync(p),
  );
}

function copyInto(root: string, from: string, to: string): void {
  const dest = join(root, to);
  mkdirSync(dirname(dest), { recursive: true });
  copyFileSync(realpathSync(from), dest);
  chmodSync(dest, 0o755);
}

/** The absolute paths ldd prints for a binary, the loader included. */
function sharedLibraries(binary: string): string[] {
  const out = execFileSync("ldd", [binary]).toString();
  return [...out.matchAll(/(\/[^\s]+\.so[^\s]*)/g)].map((m) => m[1] ?? "").filter((p) => p !== "" && existsSync(p));
}

function npmRoot(node: string): string {
  for (const candidate of [
    join(dirname(node), "../lib/node_modules/npm"),
    "/usr/lib/node_modules/npm",
    "/usr/local/lib/node_modules/npm",
  ]) {
    if (existsSync(join(candidate, "bin/npm-cli.js"))) return realpathSync(candidate);
  }
  const npmBin = execFileSync("sh", ["-c", "command -v npm"]).toString().trim();
  return realpathSync(join(dirname(readlinkSync(npmBin)), ".."));
}
