import { readFile } from "node:fs/promises";
import { dirname, isAbsolute, join } from "node:path";
import { parseDocument } from "yaml";
import { z } from "zod";
import { parseDuration } from "../duration.js";
import { errnoText, InputError } from "../errors.js";
import { registerSecret } from "../secret.js";
import { zodPath } from "../zod-text.js";

// The web config file of Prometheus' exporter-toolkit (its docs/web-configuration.md and
// web/tls_config.go), decoded as strictly as its yaml.UnmarshalStrict: an unknown key is an error.

export const CLIENT_AUTH_TYPES = [
  "NoClientCert",
  "RequestClientCert",
  "RequireAnyClientCert",
  "RequireClientCert",
  "VerifyClientCertIfGiven",
  "RequireAndVerifyClientCert",
] as const;
export type ClientAuthType =
  | "NoClientCert"
  | "RequestClientCert"
  | "RequireAnyClientCert"
  | "VerifyClientCertIfGiven"
  | "RequireAndVerifyClientCert";

const TLS_VERSIONS = { TLS10: "TLSv1", TLS11: "TLSv1.1", TLS12: "TLSv1.2", TLS13: "TLSv1.3" } as const;
type NodeTlsVersion = (typeof TLS_VERSIONS)[keyof typeof TLS_VERSIONS];

const CURVES: Record<string, string> = { CurveP256: "P-256", CurveP384: "P-384", CurveP521: "P-521", X25519: "X25519" };

// Go's tls.CipherSuites() names and OpenSSL's for the same suite. Go does not let TLS 1.3 suites be
// configured (it accepts the names and always offers all three); null keeps that behaviour.
const CIPHERS: Record<string, string | null> = {
  TLS_RSA_WITH_AES_128_CBC_SHA: "AES128-SHA",
  TLS_RSA_WITH_AES_256_CBC_SHA: "AES256-SHA",
  TLS_RSA_WITH_AES_128_GCM_SHA256: "AES128-GCM-SHA256",
  TLS_RSA_WITH_AES_256_GCM_SHA384: "AES256-GCM-SHA384",
  TLS_AES_128_GCM_SHA256: null,
  TLS_AES_256_GCM_SHA384: null,
  TLS_CHACHA20_POLY1305_SHA256: null,
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: "ECDHE-ECDSA-AES128-SHA",
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: "ECDHE-ECDSA-AES256-SHA",
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: "ECDHE-RSA-AES128-SHA",
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: "ECDHE-RSA-AES256-SHA",
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: "ECDHE-ECDSA-AES128-GCM-SHA256",
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: "ECDHE-ECDSA-AES256-GCM-SHA384",
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: "ECDHE-RSA-AES128-GCM-SHA256",
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: "ECDHE-RSA-AES256-GCM-SHA384",
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-ECDSA-CHACHA20-POLY1305",
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-RSA-CHACHA20-POLY1305",
};
/** What Node offers for TLS 1.3 by default; always kept, as Go keeps its TLS 1.3 suites whatever cipher_suites says. */
const TLS13_SUITES = "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256";

// exporter-toolkit's extraHTTPHeaders: only these, and for two of them only these values (keys are case-sensitive there too).
const HEADERS: Record<string, readonly string[] | null> = {
  "Strict-Transport-Security": null,
  "X-Content-Type-Options": ["nosniff"],
  "X-Frame-Options": ["deny", "sameorigin"],
  "X-XSS-Protection": null,
  "Content-Security-Policy": null,
};

// Go's bcrypt accepts $2$, $2a$, $2b$, $2y$ with a cost of 4..31 (bcrypt.Cost); the hash itself is 53 characters.
const BCRYPT = /^\$2[aby]?\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;

const stringList = z.array(z.string()).nullish();
const tlsVersion = z.enum(Object.keys(TLS_VERSIONS) as [keyof typeof TLS_VERSIONS], {
  message: "expected one of TLS10, TLS11, TLS12, TLS13",
});

const tlsSchema = z.strictObject({
  cert: z.string().optional(),
  key: z.string().optional(),
  client_ca: z.string().optional(),
  cert_file: z.string().optional(),
  key_file: z.string().optional(),
  client_auth_type: z.enum(["", ...CLIENT_AUTH_TYPES], { message: `expected one of ${CLIENT_AUTH_TYPES.join(", ")}` }).optional(),
  client_ca_file: z.string().optional(),
  client_allowed_sans: stringList,
  min_version: tlsVersion.optional(),
  max_version: tlsVersion.optional(),
  cipher_suites: z
    .array(z.string().refine((s) => s in CIPHERS, { message: "expected a cipher suite of Go's tls.CipherSuites()" }))
    .nullish(),
  prefer_server_cipher_suites: z.boolean().optional(),
  curve_preferences: z
    .array(z.string().refine((s) => s in CURVES, { message: "expected one of CurveP256, CurveP384, CurveP521, X25519" }))
    .nullish(),
});

const webConfigSchema = z.strictObject({
  tls_server_config: tlsSchema.nullish(),
  http_server_config: z.strictObject({ http2: z.boolean().optional(), headers: z.record(z.string(), z.string()).nullish() }).nullish(),
  // The message never quotes the value: it is a password hash.
  basic_auth_users: z
    .record(z.string(), z.string().regex(BCRYPT, { message: "expected a bcrypt hash (htpasswd -nBC 10 \"\" | tr -d ':\\n')" }))
    .nullish(),
  rate_limit: z
    .strictObject({
      interval: z
        .string()
        .refine((s) => parseDuration(s) !== undefined, { message: "expected a duration like 1s" })
        .optional(),
      burst: z.number().int().min(0).optional(),
    })
    .nullish(),
});

/** TLS for the HTTP server, as exporter-toolkit's ConfigToTLSConfig would build it. Paths are absolute. */
export interface TlsSettings {
  certFile?: string;
  /** Inline PEM (`cert:`), used when cert_file is absent. */
  cert?: string;
  keyFile?: string;
  key?: string;
  clientCaFile?: string;
  clientCa?: string;
  clientAuth: ClientAuthType;
  /** A client certificate must carry one of these SANs (DNS, IP, e-mail or URI). */
  allowedSans?: string[];
  minVersion: NodeTlsVersion;
  maxVersion: NodeTlsVersion;
  /** OpenSSL cipher string; undefined keeps Node's defaults. */
  ciphers?: string;
  ecdhCurve?: string;
  honorCipherOrder: boolean;
}

export interface WebConfig {
  /** Absent: plain HTTP. */
  tls?: TlsSettings;
  /** user -> bcrypt hash; empty: no basic auth. */
  users: ReadonlyMap<string, string>;
  headers: Readonly<Record<string, string>>;
  /** Token bucket: one request per interval, bursts of `burst`; absent or interval 0: no limit. */
  rateLimit?: { intervalMs: number; burst: number };
}

/**
 * A web config file that cannot be used. The message is one line naming the file; it never quotes a hash
 * or key. An InputError: at start it is ci-prober's own config, exit 2.
 */
export class WebConfigError extends InputError {
  constructor(file: string, what: string) {
    super(`web config ${file}: ${what}`);
    this.name = "WebConfigError";
  }
}

/** Parse the text of a web config file (relative paths resolve against its directory, as exporter-toolkit's SetDirectory does). */
export function parseWebConfig(file: string, text: string): WebConfig {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  // Only the first line of a YAML error: the lines after it quote the file, which holds hashes.
  if (doc.errors.length > 0) throw new WebConfigError(file, `invalid YAML: ${firstLine(doc.errors[0]?.message ?? "")}`);
  const parsed = webConfigSchema.safeParse(doc.toJS() ?? {});
  if (!parsed.success) throw new WebConfigError(file, issueText(parsed.error));
  const raw = parsed.data;
  for (const hash of Object.values(raw.basic_auth_users ?? {})) registerSecret(hash);
  if (raw.tls_server_config?.key) registerSecret(raw.tls_server_config.key);
  const headers = raw.http_server_config?.headers ?? {};
  checkHeaders(file, headers);
  const interval = raw.rate_limit?.interval !== undefined ? (parseDuration(raw.rate_limit.interval) ?? 0) : 0;
  return {
    ...(raw.tls_server_config ? tlsSettings(file, raw.tls_server_config) : {}),
    users: new Map(Object.entries(raw.basic_auth_users ?? {})),
    headers,
    ...(interval > 0 ? { rateLimit: { intervalMs: interval, burst: raw.rate_limit?.burst ?? 0 } } : {}),
  };
}

/** Read and parse a web config file. */
export async function readWebConfig(file: string): Promise<WebConfig> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new WebConfigError(file, errnoText(err));
  }
  return parseWebConfig(file, text);
}

function tlsSettings(file: string, t: z.output<typeof tlsSchema>): { tls?: TlsSettings } {
  const enabled = [t.cert_file, t.cert, t.key_file, t.key, t.client_ca_file, t.client_ca, t.client_auth_type].some(
    (v) => v !== undefined && v !== "",
  );
  if (!enabled) return {};
  if (!t.cert_file && !t.cert) throw new WebConfigError(file, "tls_server_config: missing one of cert or cert_file");
  if (!t.key_file && !t.key) throw new WebConfigError(file, "tls_server_config: missing one of key or key_file");
  const clientAuth = t.client_auth_type === "RequireClientCert" ? "RequireAnyClientCert" : t.client_auth_type || "NoClientCert";
  if ((t.client_ca_file || t.client_ca) && clientAuth === "NoClientCert") {
    throw new WebConfigError(
      file,
      "tls_server_config: client_ca_file is set but client_auth_type is NoClientCert (use RequireAndVerifyClientCert)",
    );
  }
  const dir = dirname(file);
  const at = (p: string | undefined) => (p ? (isAbsolute(p) ? p : join(dir, p)) : undefined);
  const suites = (t.cipher_suites ?? []).flatMap((s) => (CIPHERS[s] ? [CIPHERS[s]] : []));
  const settings: TlsSettings = {
    clientAuth,
    minVersion: TLS_VERSIONS[t.min_version ?? "TLS12"],
    maxVersion: TLS_VERSIONS[t.max_version ?? "TLS13"],
    honorCipherOrder: t.prefer_server_cipher_suites ?? true,
  };
  const certFile = at(t.cert_file);
  const keyFile = at(t.key_file);
  const caFile = at(t.client_ca_file);
  if (certFile) settings.certFile = certFile;
  else if (t.cert) settings.cert = t.cert;
  if (keyFile) settings.keyFile = keyFile;
  else if (t.key) settings.key = t.key;
  if (caFile) settings.clientCaFile = caFile;
  else if (t.client_ca) settings.clientCa = t.client_ca;
  if (t.client_allowed_sans) settings.allowedSans = t.client_allowed_sans;
  if (suites.length > 0) settings.ciphers = `${TLS13_SUITES}:${suites.join(":")}`;
  if (t.curve_preferences?.length) settings.ecdhCurve = t.curve_preferences.map((c) => CURVES[c]).join(":");
  return { tls: settings };
}

function checkHeaders(file: string, headers: Record<string, string>): void {
  for (const [name, value] of Object.entries(headers)) {
    if (!(name in HEADERS)) throw new WebConfigError(file, `http_server_config.headers: HTTP header "${name}" can not be configured`);
    const allowed = HEADERS[name];
    if (allowed && !allowed.includes(value)) {
      throw new WebConfigError(
        file,
        `http_server_config.headers.${name}: expected one of ${allowed.join(", ")}, got ${JSON.stringify(value)}`,
      );
    }
  }
}

/** The PEM material TLS needs, read from the files now (a rotated certificate is picked up at the next connection). */
export interface TlsMaterial {
  cert: string;
  key: string;
  ca?: string;
}

export async function readTlsMaterial(file: string, tls: TlsSettings): Promise<TlsMaterial> {
  const read = async (path: string, key: string) => {
    try {
      return await readFile(path, "utf8");
    } catch (err) {
      throw new WebConfigError(file, `tls_server_config.${key} ${path}: ${errnoText(err)}`);
    }
  };
  const cert = tls.certFile ? await read(tls.certFile, "cert_file") : (tls.cert ?? "");
  const key = tls.keyFile ? await read(tls.keyFile, "key_file") : (tls.key ?? "");
  registerSecret(key);
  const ca = tls.clientCaFile ? await read(tls.clientCaFile, "client_ca_file") : tls.clientCa;
  return { cert, key, ...(ca !== undefined ? { ca } : {}) };
}

function issueText(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return "invalid";
  const message =
    issue.code === "unrecognized_keys"
      ? `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `"${k}"`).join(", ")}`
      : issue.message;
  // The root has no path to name: exporter-toolkit says just the message there.
  return issue.path.length > 0 ? `${zodPath(issue.path)}: ${message}` : message;
}

function firstLine(text: string): string {
  return text.split("\n")[0]?.trim() ?? "";
}
