// Helpers for the deployment tests: running helm, parsing what it renders, checking objects
// against the Kubernetes schemas (kubernetes-models), evaluating CEL, reading certificates.
//
// helm and kubectl come from scripts/install-deps.sh (.local/tools/bin); HELM and KUBECTL
// override them. The npm packages are tests/deploy/node_modules (npm ci, same script).

import { spawn, spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { get } from "node:http";
import { request } from "node:https";
import { createServer } from "node:net";
import { checkServerIdentity } from "node:tls";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import { run as celRun } from "@bufbuild/cel";
import yaml from "js-yaml";

const here = dirname(fileURLToPath(import.meta.url));
export const root = resolve(here, "../..");
export const chartDir = join(root, "charts/cgpu-guard");
const tools = join(root, ".local/tools/bin");
export const helmPath = process.env.HELM || join(tools, "helm");
export const kubectlPath = process.env.KUBECTL || join(tools, "kubectl");
export const binaryPath = process.env.CGPU_GUARD_BINARY || join(root, "build/cgpu-guard");
// scripts/install-deps.sh installs it with Debian's prometheus package; PROMTOOL overrides it.
export const promtoolPath = process.env.PROMTOOL || "/usr/bin/promtool";

for (const [what, path] of [["helm", helmPath], ["kubectl", kubectlPath]]) {
  if (!existsSync(path)) {
    throw new Error(`${what} not found at ${path}: run scripts/install-deps.sh`);
  }
}

// helm keeps a cache and config under $HOME; give it a throwaway one.
const helmHome = mkdtempSync(join(tmpdir(), "cgpu-guard-helm-"));
process.on("exit", () => rmSync(helmHome, { recursive: true, force: true }));
const helmEnv = {
  ...process.env,
  HELM_CACHE_HOME: join(helmHome, "cache"),
  HELM_CONFIG_HOME: join(helmHome, "config"),
  HELM_DATA_HOME: join(helmHome, "data"),
};

export function run(command, args, options = {}) {
  const result = spawnSync(command, args, {
    encoding: "utf8",
    env: helmEnv,
    cwd: root,
    maxBuffer: 64 << 20,
    ...options,
  });
  if (result.error) throw result.error;
  return result;
}

function describeRun(command, args, result) {
  return `${command} ${args.join(" ")} exited ${result.status}:\n${result.stderr}${result.stdout}`;
}

// `helm template RELEASE charts/cgpu-guard -n NAMESPACE ARGS...` -> the objects it renders.
// The chart refuses to render without image.repository (no image is published): every render
// here names this one first, and a test may set another or none after it.
export const testImage = "registry.test/gpu/cgpu-guard";  // as in values-image.yaml
const imageArgs = ["-f", join(here, "values-image.yaml")];

export function helmTemplate({ release = "cgpu-guard", namespace = "cgpu-guard", args = [], chart = chartDir } = {}) {
  const full = ["template", release, chart, "--namespace", namespace, ...imageArgs, ...args];
  const result = run(helmPath, full);
  if (result.status !== 0) throw new Error(describeRun("helm", full, result));
  // Hooks (the uninstall Job and its grant, the helm test pod) are not part of the release's
  // objects: Helm creates them only at their event. Kept apart, as Helm keeps them.
  const all = parseDocuments(result.stdout);
  const isHook = (o) => o.metadata?.annotations?.["helm.sh/hook"] !== undefined;
  return { text: result.stdout, objects: all.filter((o) => !isHook(o)), hooks: all.filter(isHook) };
}

// The same, expected to fail: returns helm's error output.
export function helmTemplateError({ release = "x", namespace = "x", args = [] } = {}) {
  const full = ["template", release, chartDir, "--namespace", namespace, ...imageArgs, ...args];
  const result = run(helmPath, full);
  if (result.status === 0) {
    throw new Error(`helm ${full.join(" ")} succeeded but should have failed`);
  }
  return result.stderr;
}

// helmTemplateError started now and run a few at a time, alongside the tests that run meanwhile:
// each render is mostly helm starting up, and a table of refused values needs nothing but the
// answers. Returns a promise of helm's error output, rejected if the render succeeded.
const renderSlots = 3;
let rendersRunning = 0;
const rendersWaiting = [];
function nextRender() {
  while (rendersRunning < renderSlots && rendersWaiting.length > 0) {
    rendersRunning++;
    rendersWaiting.shift()().finally(() => {
      rendersRunning--;
      nextRender();
    });
  }
}
function runAsync(command, args) {
  return new Promise((resolvePromise, rejectPromise) => {
    const child = spawn(command, args, { env: helmEnv, cwd: root });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => { stdout += chunk; });
    child.stderr.on("data", (chunk) => { stderr += chunk; });
    child.on("error", rejectPromise);
    child.on("close", (status) => resolvePromise({ status, stdout, stderr }));
  });
}
export function helmTemplateErrorSoon({ release = "x", namespace = "x", args = [] } = {}) {
  const full = ["template", release, chartDir, "--namespace", namespace, ...imageArgs, ...args];
  const answer = new Promise((resolvePromise, rejectPromise) => {
    rendersWaiting.push(() => runAsync(helmPath, full).then((result) => {
      if (result.status === 0) {
        rejectPromise(new Error(`helm ${full.join(" ")} succeeded but should have failed`));
      } else {
        resolvePromise(result.stderr);
      }
    }, rejectPromise));
  });
  nextRender();
  answer.catch(() => {});  // a failed render is reported by the test that awaits it
  return answer;
}

export function helmLint(args = []) {
  const full = ["lint", "--strict", chartDir, ...imageArgs, ...args];
  const result = run(helmPath, full);
  if (result.status !== 0) throw new Error(describeRun("helm", full, result));
  return result.stdout;
}

export function parseDocuments(text) {
  return yaml.loadAll(text).filter((doc) => doc !== null && doc !== undefined);
}

export function findAll(objects, kind) {
  return objects.filter((o) => o.kind === kind);
}

export function findOne(objects, kind) {
  const found = findAll(objects, kind);
  if (found.length !== 1) {
    throw new Error(`expected exactly one ${kind}, found ${found.length}`);
  }
  return found[0];
}

// --- Kubernetes schemas ---------------------------------------------------------------------

const nodeModules = join(here, "node_modules");
const schemaFiles = {
  "v1/Namespace": ["kubernetes-models", "IoK8sApiCoreV1Namespace"],
  "v1/ServiceAccount": ["kubernetes-models", "IoK8sApiCoreV1ServiceAccount"],
  "v1/Service": ["kubernetes-models", "IoK8sApiCoreV1Service"],
  "v1/Secret": ["kubernetes-models", "IoK8sApiCoreV1Secret"],
  "v1/ConfigMap": ["kubernetes-models", "IoK8sApiCoreV1ConfigMap"],
  "v1/ResourceQuota": ["kubernetes-models", "IoK8sApiCoreV1ResourceQuota"],
  "v1/Pod": ["kubernetes-models", "IoK8sApiCoreV1Pod"],
  "batch/v1/Job": ["kubernetes-models", "IoK8sApiBatchV1Job"],
  "apps/v1/Deployment": ["kubernetes-models", "IoK8sApiAppsV1Deployment"],
  "apps/v1/DaemonSet": ["kubernetes-models", "IoK8sApiAppsV1DaemonSet"],
  "policy/v1/PodDisruptionBudget": ["kubernetes-models", "IoK8sApiPolicyV1PodDisruptionBudget"],
  "networking.k8s.io/v1/NetworkPolicy": ["kubernetes-models", "IoK8sApiNetworkingV1NetworkPolicy"],
  "rbac.authorization.k8s.io/v1/ClusterRole": ["kubernetes-models", "IoK8sApiRbacV1ClusterRole"],
  "rbac.authorization.k8s.io/v1/Role": ["kubernetes-models", "IoK8sApiRbacV1Role"],
  "rbac.authorization.k8s.io/v1/RoleBinding": ["kubernetes-models", "IoK8sApiRbacV1RoleBinding"],
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": [
    "kubernetes-models",
    "IoK8sApiRbacV1ClusterRoleBinding",
  ],
  "admissionregistration.k8s.io/v1/ValidatingWebhookConfiguration": [
    "kubernetes-models",
    "IoK8sApiAdmissionregistrationV1ValidatingWebhookConfiguration",
  ],
  "cert-manager.io/v1/Certificate": [
    "@kubernetes-models/cert-manager",
    "ComGithubCertManagerCertManagerPkgApisCertmanagerV1Certificate",
  ],
  "cert-manager.io/v1/Issuer": [
    "@kubernetes-models/cert-manager",
    "ComGithubCertManagerCertManagerPkgApisCertmanagerV1Issuer",
  ],
  "monitoring.coreos.com/v1/ServiceMonitor": [
    "@kubernetes-models/prometheus-operator",
    "ComGithubPrometheusOperatorPrometheusOperatorPkgApisMonitoringV1ServiceMonitor",
  ],
  "monitoring.coreos.com/v1/PrometheusRule": [
    "@kubernetes-models/prometheus-operator",
    "ComGithubPrometheusOperatorPrometheusOperatorPkgApisMonitoringV1PrometheusRule",
  ],
};

const validators = new Map();
async function validatorFor(apiVersion, kind) {
  const key = `${apiVersion}/${kind}`;
  if (!validators.has(key)) {
    const file = schemaFiles[key];
    if (!file) return null;
    const url = pathToFileURL(join(nodeModules, file[0], "_schemas", `${file[1]}.js`));
    validators.set(key, (await import(url.href)).validate);
  }
  return validators.get(key);
}

// Wraps `value` so that the schema validator's reads are recorded: a key of an object that the
// validator neither read nor iterated is a field the schema does not have (kubectl's
// --validate=strict "unknown field"). kubernetes-models' validators ignore unknown fields.
function tracked(value, path, records, proxies) {
  if (value === null || typeof value !== "object") return value;
  if (proxies.has(value)) return proxies.get(value);
  const record = { path, value, read: new Set(), iterated: false };
  records.push(record);
  const proxy = new Proxy(value, {
    get(target, key, receiver) {
      if (typeof key === "string") record.read.add(key);
      const child = Reflect.get(target, key, receiver);
      return typeof key === "string" && Object.hasOwn(target, key)
        ? tracked(child, `${path}.${key}`, records, proxies)
        : child;
    },
    has(target, key) {
      if (typeof key === "string") record.read.add(key);
      return Reflect.has(target, key);
    },
    ownKeys(target) {
      record.iterated = true;
      return Reflect.ownKeys(target);
    },
  });
  proxies.set(value, proxy);
  return proxy;
}

// Problems of one object, as "Kind/name: message" strings; empty when it is valid.
export async function schemaProblems(object) {
  const where = `${object.kind}/${object.metadata?.name}`;
  const validate = await validatorFor(object.apiVersion, object.kind);
  if (!validate) {
    return [`${where}: no schema for ${object.apiVersion} ${object.kind} in tests/deploy/lib.mjs`];
  }
  const records = [];
  const ok = validate(tracked(object, "", records, new WeakMap()));
  const problems = [];
  if (!ok) {
    for (const error of validate.errors) {
      problems.push(`${where}: ${error.instancePath || "/"} ${error.message} ${JSON.stringify(error.params)}`);
    }
  }
  for (const record of records) {
    if (Array.isArray(record.value) || record.iterated) continue;
    for (const key of Object.keys(record.value)) {
      if (!record.read.has(key)) problems.push(`${where}: unknown field ${record.path}.${key}`);
    }
  }
  return problems;
}

// --- names ----------------------------------------------------------------------------------

export const dns1123Label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const labelValue = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

// --- CEL ------------------------------------------------------------------------------------

// JSON as the API server hands it to matchConditions: objects become maps, integers ints.
function toCel(value) {
  if (Array.isArray(value)) return value.map(toCel);
  if (value !== null && typeof value === "object") {
    return new Map(Object.entries(value).map(([k, v]) => [k, toCel(v)]));
  }
  if (typeof value === "number" && Number.isInteger(value)) return BigInt(value);
  return value;
}

// Evaluates a matchCondition expression; throws unless it yields a boolean (an evaluation
// error would make the API server apply failurePolicy to the request).
export function evalCondition(expression, { object, oldObject = null }) {
  const result = celRun(expression, { object: toCel(object), oldObject: toCel(oldObject) });
  if (typeof result !== "boolean") {
    throw new Error(`CEL ${expression}\ngave ${String(result?.message ?? result)}`);
  }
  return result;
}

// A ValidatingAdmissionPolicy on one request, as the API server evaluates it: the
// matchConditions, then the variables in order (each may use the ones before it), then the
// validations. null when the policy does not apply; else the messages of the validations that
// did not hold (an evaluation error counts as not holding: failurePolicy Fail denies).
export function evalPolicy(policy, { object, oldObject = null, userInfo }) {
  const base = { object: toCel(object), oldObject: toCel(oldObject), request: toCel({ userInfo }) };
  for (const condition of policy.spec.matchConditions ?? []) {
    if (celRun(condition.expression, base) !== true) return null;
  }
  const variables = new Map();
  for (const variable of policy.spec.variables ?? []) {
    variables.set(variable.name, celRun(variable.expression, { ...base, variables }));
  }
  return (policy.spec.validations ?? [])
    .filter((validation) => celRun(validation.expression, { ...base, variables }) !== true)
    .map((validation) => validation.message);
}

// Whether the API server sends the request to the webhook: every matchCondition true.
export function webhookCalled(webhook, vars) {
  return (webhook.matchConditions ?? []).every((c) => evalCondition(c.expression, vars));
}

// --- certificates ---------------------------------------------------------------------------

export function certificateFromBase64(b64) {
  return new X509Certificate(Buffer.from(b64, "base64"));
}

export function dnsNames(certificate) {
  return (certificate.subjectAltName ?? "")
    .split(", ")
    .filter((san) => san.startsWith("DNS:"))
    .map((san) => san.slice(4));
}

// --- the built server -----------------------------------------------------------------------

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// Resolves once GET /readyz on the ops port answers 200; rejects past `deadline` (ms epoch).
export function waitReady(port, deadline) {
  return new Promise((resolve, reject) => {
    const attempt = () => {
      get({ host: "127.0.0.1", port, path: "/readyz", timeout: 1000, agent: false }, (res) => {
        res.resume();
        if (res.statusCode === 200) resolve();
        else retry(new Error(`/readyz ${res.statusCode}`));
      }).on("error", retry);
    };
    const retry = (error) => (Date.now() > deadline ? reject(error) : setTimeout(attempt, 50));
    attempt();
  });
}

// GET http://127.0.0.1:port/path -> { status, body }.
export function httpGet(port, path) {
  return new Promise((resolve, reject) => {
    get({ host: "127.0.0.1", port, path, timeout: 5000, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => { body += chunk; });
      res.on("end", () => resolve({ status: res.statusCode, body }));
    }).on("error", reject).on("timeout", function () { this.destroy(new Error("no answer in 5s")); });
  });
}

// `cgpu-guard serve` on loopback with the certificate and key of `data` (a kubernetes.io/tls
// Secret's data, base64) and an empty cluster read from a file, no API server; `check(port,
// metricsPort, caPem)` runs once it is ready, and the server is stopped afterwards.
export async function withServer(data, check, extraArgs = []) {
  const dir = mkdtempSync(join(tmpdir(), "cgpu-guard-serve-"));
  const [port, metricsPort] = [await freePort(), await freePort()];
  writeFileSync(join(dir, "tls.crt"), Buffer.from(data["tls.crt"], "base64"), { mode: 0o600 });
  writeFileSync(join(dir, "tls.key"), Buffer.from(data["tls.key"], "base64"), { mode: 0o600 });
  writeFileSync(join(dir, "cluster.json"), '{"apiVersion":"v1","kind":"List","items":[]}');
  const server = spawn(binaryPath, [
    "serve", `--listen=127.0.0.1:${port}`, `--metrics-listen=127.0.0.1:${metricsPort}`,
    `--tls-cert=${join(dir, "tls.crt")}`, `--tls-key=${join(dir, "tls.key")}`,
    `--cluster-state=${join(dir, "cluster.json")}`, "--shutdown-delay=0s", ...extraArgs,
  ], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  server.stderr.on("data", (chunk) => { stderr += chunk; });
  const exited = new Promise((resolve) => server.on("exit", resolve));
  try {
    await Promise.race([
      waitReady(metricsPort, Date.now() + 10000),
      exited.then((code) => { throw new Error(`cgpu-guard exited ${code}: ${stderr}`); }),
    ]);
    await check(port, metricsPort, Buffer.from(data["ca.crt"], "base64").toString());
  } finally {
    server.kill("SIGTERM");
    const timer = setTimeout(() => server.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
    rmSync(dir, { recursive: true, force: true });
  }
}

// A review of a plain Node's CREATE to https://127.0.0.1:port/validate by a client that trusts
// caPem and checks the name `host`, as the API server does -> { status, review, uid }.
export function review(port, host, caPem) {
  const uid = "8c1e7a4e-0000-4000-8000-000000000001";
  const body = JSON.stringify({
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid,
      kind: { group: "", version: "v1", kind: "Node" },
      resource: { group: "", version: "v1", resource: "nodes" },
      operation: "CREATE",
      name: "plain-node",
      object: { apiVersion: "v1", kind: "Node", metadata: { name: "plain-node" } },
    },
  });
  return new Promise((resolve, reject) => {
    const req = request({
      host: "127.0.0.1", port, path: "/validate?timeout=3s", method: "POST", ca: caPem, agent: false,
      servername: host, checkServerIdentity: (_, cert) => checkServerIdentity(host, cert),
      headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) },
      timeout: 5000,
    }, (res) => {
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => { data += chunk; });
      res.on("end", () => resolve({ status: res.statusCode, review: JSON.parse(data), uid }));
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("no answer in 5s")));
    req.end(body);
  });
}

// A value computed on first use, then kept (a render, a scrape) for the tests that share it.
export function once(fn) {
  let done = false;
  let value;
  return () => {
    if (!done) {
      value = fn();
      done = true;
    }
    return value;
  };
}
