import { isIP } from "node:net";
import { connect } from "node:tls";
import { DOCKER_HUB, DOCKER_HUB_API_HOST } from "../image.js";
import { ProbeError } from "../reasons.js";
import { registryScheme } from "./client.js";

export interface CertificateExpiryOptions {
  /** PEM of the registry's CA (registries[host].ca); only used for the handshake, not to judge the certificate. */
  ca?: string;
  signal: AbortSignal;
  /** registries[host].insecure: such a registry is spoken to over plain HTTP and has no certificate. */
  insecure?: boolean;
  /** Overrides the scheme registryScheme() gives (tests speak TLS on 127.0.0.1). */
  scheme?: "http" | "https";
}

/**
 * The notAfter (epoch ms) of the certificate a registry presents, or
 * undefined for a plain-HTTP registry. The certificate is read, not verified:
 * an expired or untrusted one must still report its date, which is the point.
 */
export async function certificateExpiry(host: string, opts: CertificateExpiryOptions): Promise<{ notAfter: number } | undefined> {
  if (
    (opts.scheme ?? registryScheme(host, { insecure: opts.insecure ?? false, ...(opts.ca !== undefined ? { ca: opts.ca } : {}) })) ===
    "http"
  )
    return undefined;
  opts.signal.throwIfAborted();
  const { hostname, port } = splitHost(host === DOCKER_HUB ? DOCKER_HUB_API_HOST : host);
  const validTo = await new Promise<string>((resolve, reject) => {
    const socket = connect({
      host: hostname,
      port,
      ...(isIP(hostname) === 0 ? { servername: hostname } : {}),
      ...(opts.ca !== undefined ? { ca: opts.ca } : {}),
      rejectUnauthorized: false,
    });
    const onAbort = () => socket.destroy(opts.signal.reason instanceof Error ? opts.signal.reason : new Error("aborted"));
    opts.signal.addEventListener("abort", onAbort, { once: true });
    socket.once("secureConnect", () => {
      const cert = socket.getPeerCertificate();
      socket.end();
      socket.destroy();
      resolve(cert.valid_to ?? "");
    });
    socket.once("error", reject);
    socket.once("close", () => opts.signal.removeEventListener("abort", onAbort));
  });
  const notAfter = Date.parse(validTo);
  if (Number.isNaN(notAfter)) throw new ProbeError("tls", `${host}: the certificate has no readable expiry (${JSON.stringify(validTo)})`);
  return { notAfter };
}

function splitHost(host: string): { hostname: string; port: number } {
  const url = new URL(`https://${host}`);
  const hostname = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  return { hostname, port: url.port === "" ? 443 : Number(url.port) };
}
