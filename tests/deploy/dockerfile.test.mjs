// The Dockerfile: it builds and tests with the README's own commands (scripts/install-deps.sh,
// scripts/test.sh), and its final stage is minimal, non-root, `cgpu-guard serve`, and carries
// every shared library the built binary loads. No Docker engine runs here: the file is parsed.
//
// Run by ctest (deploy.dockerfile): node --test tests/deploy/dockerfile.test.mjs

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import yaml from "js-yaml";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const read = (path) => readFileSync(join(root, path), "utf8");
const binary = process.env.CGPU_GUARD_BINARY || join(root, "build/cgpu-guard");

// Dockerfile instructions, comments dropped and continuation lines joined, split into stages.
function parseDockerfile(text) {
  const instructions = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (pending === "" && (line === "" || line.startsWith("#"))) continue;
    if (line.endsWith("\\")) {
      pending += line.slice(0, -1) + " ";
      continue;
    }
    const full = (pending + line).trim();
    pending = "";
    const match = /^(\w+)\s+(.*)$/s.exec(full);
    assert.ok(match, `cannot read Dockerfile line ${JSON.stringify(full)}`);
    instructions.push({ op: match[1].toUpperCase(), args: match[2].trim() });
  }
  const stages = [];
  for (const instruction of instructions) {
    if (instruction.op === "FROM") {
      const [image, as, name] = instruction.args.split(/\s+/);
      stages.push({ image, name: as?.toUpperCase() === "AS" ? name : undefined, instructions: [] });
    } else {
      assert.ok(stages.length, `${instruction.op} before any FROM`);
      stages.at(-1).instructions.push(instruction);
    }
  }
  return stages;
}

// "./scripts/test.sh" and "scripts/test.sh" are the same command.
const normalise = (command) => command.trim().replace(/^\.\//, "");
const commands = (run) => run.split("&&").map(normalise);

const stages = parseDockerfile(read("Dockerfile"));
const build = stages[0];
const final = stages.at(-1);

describe("Dockerfile build stage", () => {
  test("two stages, the build on Debian 12 like the README's machines", () => {
    assert.equal(stages.length, 2, "a build stage and a final stage");
    assert.match(build.image, /^debian:(bookworm|12)(-slim)?$/, "the build stage is Debian 12");
    assert.ok(build.name, "the build stage is named, for COPY --from");
  });

  test("it runs the README's install and test commands, in that order", () => {
    const readme = read("README.md");
    const block = /```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? "";
    const readmeTest = block.split("\n").map((l) => l.replace(/#.*/, "").trim())
      .find((l) => /scripts\/test\.sh$/.test(l));
    assert.ok(readmeTest, "the README's first sh block names the test command");
    assert.match(readme, /`scripts\/install-deps\.sh`\s*\n?\s*installs/,
      "the README says scripts/install-deps.sh installs the packages");
    assert.match(read(".ci/run"), /exec scripts\/test\.sh/, ".ci/run runs the same test command");

    const runs = build.instructions.filter((i) => i.op === "RUN").map((i) => commands(i.args));
    const install = runs.findIndex((c) => c[0] === "scripts/install-deps.sh");
    const tests = runs.findIndex((c) => c[0] === normalise(readmeTest));
    assert.ok(install >= 0, "RUN scripts/install-deps.sh (no arguments: build and test dependencies)");
    assert.ok(tests >= 0, `RUN ${normalise(readmeTest)}, the README's test command`);
    assert.ok(install < tests, "install-deps.sh runs before the tests");
  });

  test("install-deps.sh has what it reads when it runs", () => {
    const index = build.instructions.findIndex(
      (i) => i.op === "RUN" && commands(i.args)[0] === "scripts/install-deps.sh");
    const copied = build.instructions.slice(0, index).filter((i) => i.op === "COPY")
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    for (const file of ["scripts/install-deps.sh", "tests/deploy/package.json", "tests/deploy/package-lock.json"]) {
      assert.ok(copied.includes(file), `${file} is copied before RUN scripts/install-deps.sh`);
      assert.ok(existsSync(join(root, file)), `${file} exists`);
    }
    assert.ok(build.instructions.some((i) => i.op === "COPY" && i.args === ". ."),
      "the whole source tree is copied before the tests");
  });

  test(".dockerignore keeps local builds, tools and npm packages out", () => {
    const ignored = read(".dockerignore").split("\n").map((l) => l.trim());
    for (const entry of ["build*/", ".local/", "**/node_modules/"]) {
      assert.ok(ignored.includes(entry), `.dockerignore lists ${entry}`);
    }
  });
});

describe("Dockerfile final stage", () => {
  test("Debian slim or distroless", () => {
    assert.match(final.image, /^(debian:[\w.]+-slim|gcr\.io\/distroless\/[\w.-]+(:[\w.-]+)?)$/);
  });

  test("only the binary comes from the build stage, onto PATH", () => {
    const copies = final.instructions.filter((i) => i.op === "COPY");
    const fromBuild = copies.filter((i) => i.args.startsWith(`--from=${build.name} `));
    assert.deepEqual(fromBuild.map((i) => i.args),
      [`--from=${build.name} /src/build/cgpu-guard /usr/local/bin/cgpu-guard`]);
    for (const copy of copies.filter((i) => !i.args.startsWith("--from="))) {
      assert.match(copy.args, /^scripts\/install-deps\.sh /, `final stage copies ${copy.args}`);
    }
    const runs = final.instructions.filter((i) => i.op === "RUN").map((i) => i.args);
    assert.ok(runs.some((r) => /install-deps\.sh --runtime/.test(r)),
      "the shared libraries come from install-deps.sh --runtime");
  });

  test("runs as a non-root user, the one the chart names", () => {
    const users = final.instructions.filter((i) => i.op === "USER").map((i) => i.args);
    assert.equal(users.length, 1, "one USER instruction");
    const [user, group] = users[0].split(":");
    assert.ok(!["root", "0"].includes(user) && group !== "0", `USER ${users[0]} is not root`);
    const values = yaml.load(read("charts/cgpu-guard/values.yaml"));
    assert.equal(String(values.podSecurityContext.runAsUser), user, "the chart's runAsUser is the image's user");
    if (group) assert.equal(String(values.podSecurityContext.runAsGroup), group, "and its group");
  });

  test('ENTRYPOINT ["cgpu-guard","serve"]', () => {
    const entrypoints = final.instructions.filter((i) => i.op === "ENTRYPOINT");
    assert.equal(entrypoints.length, 1);
    assert.deepEqual(JSON.parse(entrypoints[0].args), ["cgpu-guard", "serve"], "exec form");
    assert.equal(final.instructions.some((i) => i.op === "CMD"), false, "no CMD: flags come from the pod's args");
  });

  test("install-deps.sh --runtime provides every shared library the binary loads", () => {
    assert.ok(existsSync(binary), `${binary} not built`);
    const script = read("scripts/install-deps.sh");
    const list = /runtime_packages=\(([^)]*)\)/.exec(script)?.[1];
    assert.ok(list, "scripts/install-deps.sh defines runtime_packages=(...)");
    // What Debian slim itself has (Priority: required) plus the runtime packages and all they
    // depend on.
    const available = new Set(["libc6", "libgcc-s1", "libstdc++6", "zlib1g"]);
    const queue = list.replace(/#.*/g, "").split(/\s+/).filter(Boolean);
    const expanded = new Set();
    while (queue.length) {
      const pkg = queue.shift();
      if (expanded.has(pkg)) continue;
      expanded.add(pkg);
      available.add(pkg);
      const depends = spawnSync("dpkg-query", ["-W", "-f=${Depends},${Pre-Depends}", pkg], { encoding: "utf8" });
      assert.equal(depends.status, 0, `${pkg} (runtime_packages) is not an installed package here`);
      for (const dep of depends.stdout.split(",")) {
        const name = dep.split("|")[0].trim().split(/[\s:(]/)[0];
        if (name && !expanded.has(name)) queue.push(name);
      }
    }
    const ldd = spawnSync("ldd", [binary], { encoding: "utf8" });
    assert.equal(ldd.status, 0, ldd.stderr);
    const libs = [...ldd.stdout.matchAll(/^\s*(\S+) => (\/\S+)/gm)].map(([, lib, path]) => ({ lib, path }));
    assert.ok(libs.length > 3, `ldd found ${libs.length} libraries`);
    // One dpkg-query for all (it is slow): under /usr merge a file is known by either path.
    const candidates = libs.flatMap(({ path }) => [path.replace(/^\/usr\/lib\//, "/lib/"), path.replace(/^\/lib\//, "/usr/lib/")]);
    const owners = new Map();
    const query = spawnSync("dpkg-query", ["-S", ...new Set(candidates)], { encoding: "utf8" });
    for (const [, pkg, path] of query.stdout.matchAll(/^([^:,\s]+)(?::\S+)?: (\S+)$/gm)) {
      owners.set(path.replace(/^\/usr\/lib\//, "/lib/"), pkg);
    }
    const missing = [];
    for (const { lib, path } of libs) {
      const pkg = owners.get(path.replace(/^\/usr\/lib\//, "/lib/"));
      assert.ok(pkg, `no Debian package owns ${path} (${lib})`);
      if (!available.has(pkg)) missing.push(`${lib} (${pkg})`);
    }
    assert.deepEqual(missing, [], "libraries the final image would lack: add their packages to runtime_packages");
  });
});
