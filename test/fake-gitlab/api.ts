import type { IncomingMessage, ServerResponse } from "node:http";
import type { GitlabState } from "./state.js";

/**
 * GitLab REST API v4 routes of the fake instance. Returns false when the path
 * is not one it serves (the server then answers 404).
 */
export function handleApi(_state: GitlabState, _req: IncomingMessage, _res: ServerResponse, _url: URL, _body: string): boolean {
  return false;
}
