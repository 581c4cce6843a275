import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * A throwaway CA with a server certificate for 127.0.0.1 and a client
 * certificate, laid out as gitlab-runner's tls_cert_path expects for the
 * client (ca.pem, cert.pem, key.pem) and in `server/` for a dockerd.
 */
export function makeTlsMaterial(dir: string): { client: string; server: { ca: string; cert: string; key: string } } {
  const client = join(dir, "client");
  const server = join(dir, "server");
  mkdirSync(client, { recursive: true });
  mkdirSync(server, { recursive: true });
  const ssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "ignore" });
  const ca = join(dir, "ca.pem");
  const caKey = join(dir, "ca-key.pem");
  ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", caKey, "-out", ca, "-subj", "/CN=ci-prober test CA");
  const issue = (name: string, where: string, ext: string) => {
    const key = join(where, "key.pem");
    const csr = join(where, "req.csr");
    const extFile = join(where, "ext.cnf");
    writeFileSync(extFile, ext);
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", `/CN=${name}`);
    ssl(
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      ca,
      "-CAkey",
      caKey,
      "-CAcreateserial",
      "-days",
      "2",
      "-out",
      join(where, "cert.pem"),
      "-extfile",
      extFile,
    );
    execFileSync("cp", [ca, join(where, "ca.pem")]);
  };
  issue("127.0.0.1", server, "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  issue("ci-prober", client, "extendedKeyUsage=clientAuth\n");
  return { client, server: { ca: join(server, "ca.pem"), cert: join(server, "cert.pem"), key: join(server, "key.pem") } };
}

/** A self-signed certificate and its key (`openssl req -x509`), for 127.0.0.1 unless `ip` is false. */
export function selfSignedCert(
  dir: string,
  opts: { name: string; days: number; keyFile?: string; certFile?: string; ip?: boolean },
): { key: string; cert: string } {
  const key = join(dir, opts.keyFile ?? "key.pem");
  const cert = join(dir, opts.certFile ?? "cert.pem");
  const san = opts.ip === false ? [] : ["-addext", "subjectAltName=IP:127.0.0.1"];
  const days = String(opts.days);
  const args = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", days, "-subj", `/CN=${opts.name}`, ...san];
  execFileSync("openssl", [...args, "-keyout", key, "-out", cert], { stdio: "ignore" });
  return { key, cert };
}
