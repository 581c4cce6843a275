import type { CredentialKind } from "../types.js";

/**
 * Who stands behind a credential, from the username's form alone (SPEC.md,
 * Words). `personal` and `service_account` need the GitLab Users API, so a
 * username of no known form stays `unknown` here.
 */
export function kindFromUsername(username: string): CredentialKind {
  if (/^gitlab\+deploy-token-\d+$/.test(username)) return "deploy_token";
  // Project and group access token users: project_123_bot, project_123_bot1 (older GitLab), project_123_bot_0a1b…, group_45_bot_….
  if (/^(project|group)_\d+_bot/.test(username)) return "bot";
  if (username === "gitlab-ci-token") return "job_token";
  return "unknown";
}
