import { inject, test, expect } from "vitest";
import { run } from "../../services/procs.js";
import { dockerCli } from "../../services/index.js";

const services = inject("services");

test("the test registries serve the pushed image to its owner and refuse a wrong password", async () => {
  const ok = await run("skopeo", [
    "inspect",
    "--tls-verify=false",
    "--creds",
    `alice:${services.htpasswd.users.alice}`,
    `docker://${services.htpasswd.image}`,
  ]);
  expect(JSON.parse(ok).Architecture).toBe("amd64");
  await expect(
    run("skopeo", ["inspect", "--tls-verify=false", "--creds", "alice:wrong", `docker://${services.htpasswd.image}`]),
  ).rejects.toThrow(/unauthorized|authentication required/i);
  const tok = await run("skopeo", [
    "inspect",
    "--tls-verify=false",
    "--creds",
    `${services.gitlab.admin.username}:${services.gitlab.admin.password}`,
    `docker://${services.token.image}`,
  ]);
  expect(JSON.parse(tok).Architecture).toBe("amd64");
});

test("the test dockerd runs the busybox image", async () => {
  const out = await run(dockerCli(), [
    "-H",
    services.dockerHost,
    "run",
    "--rm",
    "--network",
    "none",
    services.localImage,
    "sh",
    "-c",
    "echo hello",
  ]);
  expect(out).toBe("hello\n");
});
