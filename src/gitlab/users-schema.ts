import { z } from "zod";

/**
 * GitLab v4 payloads of the Users, personal access token and deploy token APIs,
 * as far as the credential checks read them. Objects are loose: GitLab adds
 * fields between versions, and an administrator sees more of them than a user.
 */

/**
 * One user from `GET /users?username=` or `GET /users/:id`. `state` is in every
 * entity (UserBasic): active, blocked, ldap_blocked, deactivated, banned,
 * blocked_pending_approval — kept a string, GitLab adds states. `bot` is in the
 * User entity (`GET /users/:id`) and in an administrator's list, not in a
 * non-administrator's list; `identities`, `is_admin`, `external` and
 * `last_activity_on` only reach administrators.
 */
export const gitlabUserSchema = z.object({
  id: z.number().int(),
  username: z.string(),
  name: z.string().optional(),
  state: z.string(),
  locked: z.boolean().optional(),
  bot: z.boolean().optional(),
  /** Not in GitLab's REST entities today; read if a version sends it. */
  user_type: z.string().optional(),
  is_admin: z.boolean().optional(),
  external: z.boolean().optional(),
  last_activity_on: z.string().nullable().optional(),
  identities: z.array(z.object({ provider: z.string(), extern_uid: z.string().nullable() })).optional(),
});
export type GitlabUser = z.infer<typeof gitlabUserSchema>;

export const gitlabUserListSchema = z.array(gitlabUserSchema);

/**
 * `GET /personal_access_tokens/self`: the token sent as PRIVATE-TOKEN describes
 * itself (personal, project and group access tokens alike). `expires_at` is a
 * date, `YYYY-MM-DD`, or null for a token that never expires.
 */
export const personalAccessTokenSchema = z.object({
  id: z.number().int(),
  name: z.string(),
  revoked: z.boolean(),
  active: z.boolean(),
  scopes: z.array(z.string()),
  user_id: z.number().int(),
  created_at: z.string().optional(),
  last_used_at: z.string().nullable().optional(),
  expires_at: z.string().nullable(),
});
export type PersonalAccessToken = z.infer<typeof personalAccessTokenSchema>;

/** One entry of `GET /deploy_tokens`; `expires_at` is a datetime, `2020-02-14T00:00:00.000Z`, or null. */
export const deployTokenSchema = z.object({
  id: z.number().int(),
  name: z.string(),
  username: z.string(),
  expires_at: z.string().nullable(),
  revoked: z.boolean(),
  expired: z.boolean(),
  scopes: z.array(z.string()).optional(),
});
export type DeployToken = z.infer<typeof deployTokenSchema>;

export const deployTokenListSchema = z.array(deployTokenSchema);
