import { z } from "zod";

// Registry and token-server payloads, parsed once where they enter (OCI
// distribution spec, Docker registry token spec). Unknown keys are kept out.

const digest = z.string().regex(/^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/, { message: "expected a digest like sha256:…" });

export const descriptorSchema = z.object({
  mediaType: z.string().optional(),
  digest,
  size: z.number().int().nonnegative(),
  platform: z
    .object({
      os: z.string(),
      architecture: z.string(),
      variant: z.string().optional(),
    })
    .optional(),
});

/** OCI image manifest / Docker image manifest v2 schema 2. */
export const imageManifestSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema),
});

/** OCI image index / Docker manifest list. */
export const indexSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  manifests: z.array(descriptorSchema),
});

/** A token server's answer: `token` (Docker) or `access_token` (OAuth2); either may be the only one. */
export const tokenResponseSchema = z
  .object({
    token: z.string().min(1).optional(),
    access_token: z.string().min(1).optional(),
    expires_in: z.number().optional(),
  })
  .refine((t) => t.token !== undefined || t.access_token !== undefined, { message: "expected token or access_token" });

/** `{errors:[{code,message}]}` from a registry; GitLab's `{message}` or OAuth2's `{error, error_description}` from a token server. */
export const errorBodySchema = z.union([
  z.object({ errors: z.array(z.object({ code: z.string().optional(), message: z.string().optional() })).min(1) }),
  z.object({ error: z.string(), error_description: z.string().optional() }),
  z.object({ message: z.string() }),
]);

export type Descriptor = z.output<typeof descriptorSchema>;
export type ImageManifest = z.output<typeof imageManifestSchema>;
export type ImageIndex = z.output<typeof indexSchema>;
