import { inject, test } from "vitest";
import Docker from "dockerode";

const s = inject("services");

function auth(username: string, password: string, serveraddress: string) {
  return Buffer.from(JSON.stringify({ username, password, serveraddress })).toString("base64url");
}

async function pull(d: Docker, image: string, a?: string) {
  try {
    const stream = await d.createImage(a ? { key: a } : {}, { fromImage: image });
    let text = "";
    for await (const chunk of stream) text += String(chunk);
    console.log("PULL", image, "STREAM", text.slice(0, 3000));
  } catch (e) {
    console.log("PULL", image, "ERR", (e as Error).message, (e as { statusCode?: number }).statusCode);
  }
}

test("explore", async () => {
  const d = new Docker({ socketPath: s.dockerHost.slice(7) });
  const g = s.gitlab.url;
  await fetch(`${g}/-/test/users`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ username: "exp1", password: "exp1-password-123" }) });
  for (const [u, p, h] of [["alice", s.htpasswd.users.alice!, s.htpasswd.host], ["alice", "wrong", s.htpasswd.host], ["exp1", "exp1-password-123", s.token.host], ["exp1", "bad", s.token.host]] as const) {
    try {
      console.log("AUTH", u, p, h, JSON.stringify(await d.checkAuth({ username: u, password: p, serveraddress: h })));
    } catch (e) {
      console.log("AUTH", u, p, h, "ERR", (e as Error).message, (e as { statusCode?: number }).statusCode);
    }
  }
  await pull(d, s.htpasswd.image, auth("alice", s.htpasswd.users.alice!, s.htpasswd.host));
  await pull(d, s.htpasswd.image, auth("alice", "wrong", s.htpasswd.host));
  await pull(d, s.htpasswd.image);
  await pull(d, s.htpasswd.host + "/ci/nothere:latest", auth("alice", s.htpasswd.users.alice!, s.htpasswd.host));
  await pull(d, s.token.image, auth("exp1", "exp1-password-123", s.token.host));
  await fetch(`${g}/-/test/users/exp1/state`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ state: "blocked" }) });
  await pull(d, s.token.image, auth("exp1", "exp1-password-123", s.token.host));
  try { console.log("AUTH blocked", JSON.stringify(await d.checkAuth({ username: "exp1", password: "exp1-password-123", serveraddress: s.token.host }))); } catch (e) { console.log("AUTH blocked ERR", (e as Error).message, (e as { statusCode?: number }).statusCode); }
  await pull(d, s.token.host + "/ci/nothere:latest");
  await pull(d, "127.0.0.1:1/ci/x:latest");
  const bad = new Docker({ socketPath: "/nonexistent/docker.sock" });
  try { await bad.ping(); } catch (e) { console.log("SOCK", (e as Error).message, (e as { code?: string }).code); }
}, 60000);
