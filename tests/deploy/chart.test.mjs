// charts/cgpu-guard and deploy/: helm lint --strict, helm template for the default values,
// cert-manager mode and a custom set; every rendered object against the Kubernetes schemas and
// the invariants of invariants.mjs; TLS per mode; the CEL matchConditions evaluated on sample
// pods and nodes; the chart's flags against the built server's `serve --help`; the optional
// NetworkPolicy (its pods, ports and peers, and what it refuses); deploy/ against a fresh
// rendering; deploy/tls.sh's certificate.
//
// Run by ctest as deploy.chart.0 to .3: node --test tests/deploy/chart.test.mjs with
// CHART_SHARDS=4 and CHART_SHARD=0 to 3. The top-level groups below are dealt out to the
// shards in turn, so that the shards (each mostly waiting on helm) run side by side. Without
// CHART_SHARDS every group runs.

import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { X509Certificate } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe as describeGroup, test } from "node:test";

import {
  assertDeployment,
  assertLeastPrivilege,
  assertNodeFactsAgent,
  isNodeFactsObject,
  assertServiceAndPdb,
  assertValidObjects,
  assertWebhooks,
  container,
  serverArgs,
  serviceDnsName,
} from "./invariants.mjs";
import {
  binaryPath,
  certificateFromBase64,
  chartDir,
  dnsNames,
  evalPolicy,
  findAll,
  findOne,
  helmLint,
  helmTemplate,
  helmTemplateError,
  helmTemplateErrorSoon,
  kubectlPath,
  once,
  parseDocuments,
  review,
  root,
  run,
  testImage,
  webhookCalled,
  withServer,
} from "./lib.mjs";

const shards = Number(process.env.CHART_SHARDS || 1);
const shard = Number(process.env.CHART_SHARD || 0);
let groups = 0;
function describe(name, fn) {
  if (groups++ % shards === shard) describeGroup(name, fn);
}

// Whether a label selector ({matchLabels}) selects an object with `labels`.
function selects(selector, labels) {
  return Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels?.[k] === v);
}

function kinds(objects) {
  return objects.map((o) => o.kind).sort();
}

function webhook(objects, name) {
  const found = findOne(objects, "ValidatingWebhookConfiguration").webhooks.find((w) => w.name === name);
  assert.ok(found, `webhook ${name}`);
  return found;
}

// deploy/tls.sh --print: the files it would put in the cluster.
function tlsScript(args) {
  const dir = mkdtempSync(join(tmpdir(), "cgpu-guard-tls-"));
  try {
    const result = run("bash", [join(root, "deploy/tls.sh"), "--print", dir, ...args], {
      env: { ...process.env, KUBECTL: kubectlPath },
    });
    assert.equal(result.status, 0, `deploy/tls.sh failed:\n${result.stderr}`);
    return {
      secret: parseDocuments(readFileSync(join(dir, "secret.yaml"), "utf8"))[0],
      caBundle: readFileSync(join(dir, "ca-bundle.b64"), "utf8").trim(),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// A Secret's data as a user may bring it (tls.mode=secret): a CA and a serving certificate for
// `host` with RSA 2048 keys, made with the openssl CLI.
function rsaSecretData(host) {
  const dir = mkdtempSync(join(tmpdir(), "cgpu-guard-rsa-"));
  const file = (name) => join(dir, name);
  const openssl = (args) => {
    const result = run("openssl", args);
    assert.equal(result.status, 0, `openssl ${args.join(" ")}:\n${result.stderr}`);
  };
  try {
    openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", file("ca.key"),
      "-out", file("ca.crt"), "-days", "2", "-subj", "/CN=rsa-test-ca"]);
    openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", file("tls.key"),
      "-out", file("tls.csr"), "-subj", `/CN=${host}`]);
    writeFileSync(file("ext"), `subjectAltName=DNS:${host}\nextendedKeyUsage=serverAuth\n`);
    openssl(["x509", "-req", "-in", file("tls.csr"), "-CA", file("ca.crt"), "-CAkey", file("ca.key"),
      "-CAcreateserial", "-days", "2", "-extfile", file("ext"), "-out", file("tls.crt")]);
    const b64 = (name) => readFileSync(file(name)).toString("base64");
    return { "tls.crt": b64("tls.crt"), "tls.key": b64("tls.key"), "ca.crt": b64("ca.crt") };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// The serving certificate in `data` (a Secret's) is signed by the CA in caBundle and names host.
function assertServingCertificate(data, caBundle, host) {
  const leaf = certificateFromBase64(data["tls.crt"]);
  const ca = certificateFromBase64(caBundle);
  assert.ok(ca.ca, "caBundle holds a CA certificate");
  assert.ok(!leaf.ca, "the serving certificate is not a CA");
  assert.ok(leaf.checkIssued(ca) && leaf.verify(ca.publicKey),
    "the serving certificate is signed by the CA in caBundle");
  assert.ok(dnsNames(leaf).includes(host),
    `the serving certificate's SANs ${dnsNames(leaf).join(", ")} include ${host}`);
  assert.equal(leaf.checkHost(host), host, `the certificate is valid for ${host}`);
  assert.ok(new Date(leaf.validTo) > new Date(Date.now() + 300 * 86400e3), "valid for a year at least");
  assert.ok(data["tls.key"], "the Secret holds the private key");
}

const customCaBundle = once(() => tlsScript(["--name", "gpu-guard", "--namespace", "gpu-ops"]).caBundle);

const sets = {
  default: {
    release: "cgpu-guard",
    namespace: "cgpu-guard",
    args: [],
  },
  certManager: {
    release: "guard",
    namespace: "gpu-system",
    args: ["--set", "tls.mode=certManager"],
  },
  custom: {
    release: "ops",
    namespace: "gpu-ops",
    args: () => [
      "-f", join(root, "tests/deploy/values-custom.yaml"),
      "--set-file", `rules.override=${join(root, "rules/cgpu-rules.yaml")}`,
      "--set", `tls.secret.caBundle=${customCaBundle()}`,
    ],
  },
};
const argsOf = (set) => (typeof set.args === "function" ? set.args() : set.args);
const rendered = Object.fromEntries(Object.entries(sets).map(([name, set]) => [
  name,
  once(() => helmTemplate({ ...set, args: argsOf(set) }).objects),
]));

describe("helm lint --strict", () => {
  for (const [name, set] of Object.entries(sets)) {
    test(`${name} values`, () => {
      helmLint(["--namespace", set.namespace, ...argsOf(set)]);
    });
  }
});

describe("default values", () => {
  const objects = rendered.default;
  const namespace = sets.default.namespace;

  test("render exactly the expected objects", () => {
    assert.deepEqual(kinds(objects()), [
      "ClusterRole", "ClusterRole", "ClusterRoleBinding", "ClusterRoleBinding", "DaemonSet",
      "Deployment", "Namespace", "PodDisruptionBudget", "Role", "RoleBinding", "Secret", "Service",
      "ServiceAccount", "ServiceAccount", "ValidatingWebhookConfiguration",
    ]);
  });
  test("node-facts agent: hardened DaemonSet on ACK GPU nodes, read-only host, get/patch nodes", () => {
    const { pod } = assertNodeFactsAgent(objects(), {
      namespace: `${namespace}-node-facts`, hostPaths: ["/proc", "/sys/module", "/usr"],
    });
    const term = pod.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0];
    assert.deepEqual(term.matchExpressions, [{ key: "aliyun.accelerator/nvidia_name", operator: "Exists" }]);
    assert.deepEqual(pod.tolerations, [{ operator: "Exists" }], "runs on tainted GPU nodes too");
    assert.equal(pod.securityContext.runAsNonRoot, true);
  });
  test("the agent has a namespace of its own, created privileged; the webhook's stays apart", () => {
    const [created] = findAll(objects(), "Namespace");
    assert.equal(created.metadata.name, `${namespace}-node-facts`);
    for (const mode of ["enforce", "warn", "audit"]) {
      assert.equal(created.metadata.labels[`pod-security.kubernetes.io/${mode}`], "privileged", mode);
    }
    for (const o of objects().filter(isNodeFactsObject).filter((o) => o.kind !== "Namespace")) {
      if (o.metadata.namespace !== undefined) assert.equal(o.metadata.namespace, created.metadata.name, o.kind);
    }
    for (const o of objects().filter((o) => !isNodeFactsObject(o))) {
      if (o.metadata.namespace !== undefined) assert.equal(o.metadata.namespace, namespace, o.kind);
    }
    const without = helmTemplate({ ...sets.default, args: ["--set", "nodeFacts.createNamespace=false"] }).objects;
    assert.deepEqual(findAll(without, "Namespace"), []);
    assert.match(helmTemplateError({ namespace: "cgpu-guard", args: ["--set", "nodeFacts.namespace=cgpu-guard"] }),
      /nodeFacts.createNamespace would create the release's own namespace cgpu-guard/);
  });
  test("the built binary takes the agent's arguments (a dry run over an empty host)", () => {
    const c = findOne(objects(), "DaemonSet").spec.template.spec.containers[0];
    const host = mkdtempSync(join(tmpdir(), "cgpu-guard-host-"));
    try {
      const args = c.args.map((a) => (a.startsWith("--host-root=") ? `--host-root=${host}` : a));
      const result = run(binaryPath, [...args, "--dry-run", "--once", "--node-name=gpu-1"]);
      assert.equal(result.status, 0, result.stderr);
      const printed = JSON.parse(result.stdout);
      assert.deepEqual(Object.keys(printed.labels).sort(), [
        "cgpu-guard.io/cgpu-version", "cgpu-guard.io/container-toolkit-version",
        "cgpu-guard.io/nvidia-driver-version",
      ]);
    } finally {
      rmSync(host, { recursive: true, force: true });
    }
  });
  test("node-facts liveness: the probe runs the built binary's alive check on the agent's heartbeat", () => {
    const c = findOne(objects(), "DaemonSet").spec.template.spec.containers[0];
    const heartbeat = "/tmp/cgpu-guard-node-facts.heartbeat";
    assert.ok(c.args.includes(`--heartbeat-file=${heartbeat}`), c.args.join(" "));
    const probe = c.livenessProbe;
    assert.deepEqual(probe.exec.command,
      ["cgpu-guard", "node-facts", "--alive", `--heartbeat-file=${heartbeat}`, "--max-age=3m"]);
    assert.deepEqual([probe.periodSeconds, probe.timeoutSeconds, probe.failureThreshold], [30, 5, 3]);
    const dir = mkdtempSync(join(tmpdir(), "cgpu-guard-heartbeat-"));
    try {
      const file = join(dir, "heartbeat");
      const command = probe.exec.command.slice(1).map((a) => a.replace(heartbeat, file));
      const missing = run(binaryPath, command);
      assert.equal(missing.status, 1, `no heartbeat yet: ${missing.stdout}${missing.stderr}`);
      assert.match(missing.stderr, /not alive: no heartbeat file/);
      writeFileSync(file, "");
      const fresh = run(binaryPath, command);
      assert.equal(fresh.status, 0, `a fresh heartbeat: ${fresh.stdout}${fresh.stderr}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  test("node-facts liveness defaults are the agent's", () => {
    const result = run(binaryPath, ["node-facts", "--help"]);
    assert.equal(result.status, 0, result.stderr);
    const flagDefault = (flag) => new RegExp(`--${flag} [A-Z]+ .*\\(default ([^;)]*)`).exec(result.stdout)?.[1];
    const c = findOne(objects(), "DaemonSet").spec.template.spec.containers[0];
    assert.ok(c.args.includes(`--heartbeat-file=${flagDefault("heartbeat-file")}`), c.args.join(" "));
    assert.ok(c.livenessProbe.exec.command.includes(`--max-age=${flagDefault("max-age")}`),
      c.livenessProbe.exec.command.join(" "));
  });
  test("nodeFacts.livenessProbe.enabled=false: no probe, no heartbeat, no writable volume", () => {
    const off = helmTemplate({ ...sets.default, args: ["--set", "nodeFacts.livenessProbe.enabled=false"] }).objects;
    const { container: c, pod } = assertNodeFactsAgent(off, {
      namespace: `${sets.default.namespace}-node-facts`, hostPaths: ["/proc", "/sys/module", "/usr"],
    });
    assert.equal(c.livenessProbe, undefined);
    assert.ok(c.args.includes("--heartbeat-file="), "an empty --heartbeat-file turns the heartbeat off");
    assert.deepEqual(pod.volumes.filter((v) => !v.hostPath), []);
    const host = mkdtempSync(join(tmpdir(), "cgpu-guard-host-"));
    try {
      const args = c.args.map((a) => (a.startsWith("--host-root=") ? `--host-root=${host}` : a));
      const result = run(binaryPath, [...args, "--dry-run", "--once", "--node-name=gpu-1"]);
      assert.equal(result.status, 0, result.stderr);
    } finally {
      rmSync(host, { recursive: true, force: true });
    }
  });
  test("nodeFacts.setMaxPodLabel passes the pod limit to the agent; off by default", () => {
    const agentArgs = (objects) =>
      findOne(objects.filter(isNodeFactsObject), "DaemonSet").spec.template.spec.containers[0].args;
    assert.ok(!agentArgs(rendered.default()).some((a) => a.startsWith("--set-max-pod-label")));
    const on = helmTemplate({ ...sets.default, args: ["--set", "nodeFacts.setMaxPodLabel=true"] }).objects;
    assert.ok(agentArgs(on).includes("--set-max-pod-label=20"), agentArgs(on).join(" "));
    const lower = helmTemplate({ ...sets.default, args: ["--set", "nodeFacts.setMaxPodLabel=true",
      "--set", "policy.maxPodsPerGpu=12"] }).objects;
    assert.ok(agentArgs(lower).includes("--set-max-pod-label=12"), agentArgs(lower).join(" "));
  });
  test("nodeFacts.enabled=false leaves the agent out", () => {
    const without = helmTemplate({ ...sets.default, args: ["--set", "nodeFacts.enabled=false"] }).objects;
    assert.deepEqual(findAll(without, "DaemonSet"), []);
    assert.equal(findAll(without, "ClusterRole").length, 1);
  });
  test("every object passes the Kubernetes schemas (unknown fields too)", async () => {
    await assertValidObjects(objects());
  });
  test("Deployment: 2 replicas, anti-affinity, priority, hardening, probes, drain", () => {
    assertDeployment(objects(), { namespace, replicas: 2 });
    const pod = findOne(objects(), "Deployment").spec.template.spec;
    assert.equal(pod.terminationGracePeriodSeconds, 30);
    assert.equal(container(objects()).image, `${testImage}:0.1.0`,
      "the given repository, tagged with the chart's appVersion");
  });
  test("Service and PodDisruptionBudget select the pods", () => {
    assertServiceAndPdb(objects());
    assert.equal(findOne(objects(), "PodDisruptionBudget").spec.maxUnavailable, 1);
  });
  test("RBAC: get/list/watch pods and nodes, nothing else", () => {
    assertLeastPrivilege(objects(), { namespace });
  });
  test("webhooks: rules, Ignore, 3s, namespaces excluded, matchConditions", () => {
    assertWebhooks(objects(), { namespace });
  });
  test("generated TLS: a CA in caBundle and a certificate for <svc>.<ns>.svc in the mounted Secret", () => {
    const { tlsSecretName } = assertDeployment(objects(), { namespace, replicas: 2 });
    const secret = findOne(objects(), "Secret");
    assert.equal(secret.metadata.name, tlsSecretName, "the Deployment mounts the generated Secret");
    assert.equal(secret.type, "kubernetes.io/tls");
    const config = findOne(objects(), "ValidatingWebhookConfiguration");
    const bundles = new Set(config.webhooks.map((w) => w.clientConfig.caBundle));
    assert.equal(bundles.size, 1, "all webhooks trust the same CA");
    const [caBundle] = bundles;
    assert.equal(caBundle, secret.data["ca.crt"], "caBundle is the Secret's ca.crt");
    assertServingCertificate(secret.data, caBundle, "cgpu-guard.cgpu-guard.svc");
  });
  test("prometheus scrape annotations on the pods, no ServiceMonitor", () => {
    const annotations = findOne(objects(), "Deployment").spec.template.metadata.annotations;
    assert.equal(annotations["prometheus.io/scrape"], "true");
    assert.equal(annotations["prometheus.io/port"], String(
      container(objects()).ports.find((p) => p.name === "metrics").containerPort));
    assert.equal(annotations["prometheus.io/path"], "/metrics");
    assert.deepEqual(findAll(objects(), "ServiceMonitor"), []);
  });
});

describe("generated TLS follows the release's name and namespace", () => {
  test("SAN matches the Service for another release and namespace", async () => {
    const objects = helmTemplate({ release: "gpu", namespace: "team-a" }).objects;
    await assertValidObjects(objects);
    const host = serviceDnsName(objects);
    assert.equal(host, "gpu-cgpu-guard.team-a.svc");
    const secret = findOne(objects, "Secret");
    const caBundle = webhook(objects, "pods.cgpu-guard.io").clientConfig.caBundle;
    assertServingCertificate(secret.data, caBundle, host);
    assertWebhooks(objects, { namespace: "team-a" });
  });
});

describe("generated TLS rotation", () => {
  // helm template reads no cluster, so the chart's lookup of its Secret finds nothing. These tests
  // render a copy of the chart whose one lookup (cgpu-guard.existingTLSSecret) returns the Secret
  // a first render generated, as an upgrade would find it in the cluster.
  const first = once(() => helmTemplate().objects);
  const withExisting = (secret) => {
    const copy = mkdtempSync(join(tmpdir(), "cgpu-guard-chart-"));
    cpSync(chartDir, copy, { recursive: true });
    const helpers = join(copy, "templates/_helpers.tpl");
    const lookup = '{{- toYaml (lookup "v1" "Secret" .Release.Namespace (include "cgpu-guard.tlsSecretName" .)) -}}';
    const text = readFileSync(helpers, "utf8");
    assert.ok(text.includes(lookup), "the chart looks its Secret up in one place");
    writeFileSync(helpers, text.replace(lookup, "{{- `" + JSON.stringify(secret) + "` -}}"));
    return copy;
  };
  const pems = (b64) => Buffer.from(b64, "base64").toString().match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g);

  test("an upgrade keeps the certificate and trusts only its CA", () => {
    const secret = findOne(first(), "Secret");
    const chart = withExisting(secret);
    try {
      const again = helmTemplate({ chart }).objects;
      assert.deepEqual(findOne(again, "Secret").data, secret.data);
      assert.equal(webhook(again, "bindings.cgpu-guard.io").clientConfig.caBundle, secret.data["ca.crt"]);
    } finally {
      rmSync(chart, { recursive: true, force: true });
    }
  });
  test("rotate: a new CA and certificate; caBundle trusts the new CA and the one served now", () => {
    const before = findOne(first(), "Secret");
    const chart = withExisting(before);
    try {
      const rotated = helmTemplate({ chart, args: ["--set", "tls.generate.rotate=true"] }).objects;
      const after = findOne(rotated, "Secret").data;
      assert.notEqual(after["tls.crt"], before.data["tls.crt"], "a new serving certificate");
      const [newCa, oldCa, ...more] = pems(after["ca.crt"]);
      assert.deepEqual(more, [], "two CAs at most: one rotation at a time");
      assert.equal(oldCa.trim(), pems(before.data["ca.crt"])[0].trim(), "the previous CA is still trusted");
      const served = (b64) => certificateFromBase64(b64);
      assert.ok(served(after["tls.crt"]).verify(new X509Certificate(newCa).publicKey), "new certificate, new CA");
      assert.ok(served(before.data["tls.crt"]).verify(new X509Certificate(oldCa).publicKey), "old certificate, old CA");
      for (const w of findOne(rotated, "ValidatingWebhookConfiguration").webhooks) {
        assert.equal(w.clientConfig.caBundle, after["ca.crt"], `${w.name} trusts both`);
      }
      // A second rotation keeps the newest two.
      const chart2 = withExisting(findOne(rotated, "Secret"));
      try {
        const again = findOne(helmTemplate({ chart: chart2, args: ["--set", "tls.generate.rotate=true"] }).objects, "Secret").data;
        const [, previous, ...rest] = pems(again["ca.crt"]);
        assert.deepEqual(rest, []);
        assert.equal(previous.trim(), newCa.trim());
      } finally {
        rmSync(chart2, { recursive: true, force: true });
      }
    } finally {
      rmSync(chart, { recursive: true, force: true });
    }
  });
});

describe("deploy/tls.sh --rotate", () => {
  // kubectl stands in for the cluster: it answers the Secret's current CA and the webhook names,
  // records what is changed and in which order, and leaves `create --dry-run` to the real one.
  test("trusts the old and the new CA, and sets caBundle before the Secret changes", () => {
    const dir = mkdtempSync(join(tmpdir(), "cgpu-guard-rotate-"));
    try {
      const { secret: current } = tlsScript([]);
      const oldCa = Buffer.from(current.data["ca.crt"], "base64").toString();
      writeFileSync(join(dir, "old-ca.b64"), current.data["ca.crt"]);
      const fake = join(dir, "kubectl");
      writeFileSync(fake, `#!/bin/bash
echo "$*" >> "${dir}/calls"
case "$*" in
  *"get secret"*) cat "${dir}/old-ca.b64" ;;
  *"get validatingwebhookconfiguration"*) printf 'pods.cgpu-guard.io\nbindings.cgpu-guard.io\nnodes.cgpu-guard.io\n' ;;
  patch*) echo "$*" > "${dir}/patch" ;;
  apply*) cp "$3" "${dir}/applied.yaml" ;;
  *) exec "${kubectlPath}" "$@" ;;
esac
`, { mode: 0o755 });
      const result = run("bash", [join(root, "deploy/tls.sh"), "--rotate"], { env: { ...process.env, KUBECTL: fake } });
      assert.equal(result.status, 0, result.stderr);
      const calls = readFileSync(join(dir, "calls"), "utf8").split("\n").filter(Boolean);
      const patchAt = calls.findIndex((c) => c.startsWith("patch"));
      const applyAt = calls.findIndex((c) => c.startsWith("apply"));
      assert.ok(patchAt >= 0 && applyAt > patchAt, `caBundle before the Secret: ${calls.join(" | ")}`);
      const bundle = Buffer.from(/"value":"([^"]+)"/.exec(readFileSync(join(dir, "patch"), "utf8"))[1], "base64").toString();
      const applied = parseDocuments(readFileSync(join(dir, "applied.yaml"), "utf8"))[0];
      const newCa = Buffer.from(applied.data["ca.crt"], "base64").toString();
      assert.notEqual(newCa.trim(), oldCa.trim(), "a new CA");
      assert.ok(bundle.includes(oldCa.trim()) && bundle.includes(newCa.trim()), "caBundle trusts both");
      assert.ok(certificateFromBase64(applied.data["tls.crt"]).verify(new X509Certificate(newCa).publicKey));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("cert-manager mode", () => {
  const objects = rendered.certManager;
  const namespace = sets.certManager.namespace;

  test("every object passes the Kubernetes and cert-manager schemas", async () => {
    await assertValidObjects(objects());
  });
  test("no Secret from the chart; Issuer chain and serving Certificate instead", () => {
    assert.deepEqual(findAll(objects(), "Secret"), []);
    assert.deepEqual(kinds(objects()).filter((k) => ["Certificate", "Issuer"].includes(k)),
      ["Certificate", "Certificate", "Issuer", "Issuer"]);
  });
  test("the serving Certificate names <svc>.<ns>.svc and lands in the mounted Secret", () => {
    const { tlsSecretName } = assertDeployment(objects(), { namespace, replicas: 2 });
    const serving = findAll(objects(), "Certificate").find((c) => !c.spec.isCA);
    assert.ok(serving, "a serving Certificate");
    assert.equal(serving.spec.secretName, tlsSecretName, "the Deployment mounts its Secret");
    assert.ok(serving.spec.dnsNames.includes(serviceDnsName(objects())),
      `dnsNames ${serving.spec.dnsNames} include ${serviceDnsName(objects())}`);
    assert.ok(serving.spec.usages.includes("server auth"));
    // The issuer chain: serving <- CA Issuer <- CA Certificate <- self-signed Issuer.
    const issuers = Object.fromEntries(findAll(objects(), "Issuer").map((i) => [i.metadata.name, i]));
    const caIssuer = issuers[serving.spec.issuerRef.name];
    assert.ok(caIssuer?.spec.ca, "the serving Certificate's issuer is a CA Issuer of the chart");
    const caCert = findAll(objects(), "Certificate").find((c) => c.spec.isCA);
    assert.equal(caIssuer.spec.ca.secretName, caCert.spec.secretName, "the CA Issuer uses the CA Certificate");
    assert.ok(issuers[caCert.spec.issuerRef.name]?.spec.selfSigned, "the CA is self-signed");
  });
  test("the CA injector fills caBundle from the serving Certificate", () => {
    const config = findOne(objects(), "ValidatingWebhookConfiguration");
    const serving = findAll(objects(), "Certificate").find((c) => !c.spec.isCA);
    assert.equal(config.metadata.annotations["cert-manager.io/inject-ca-from"],
      `${namespace}/${serving.metadata.name}`);
    for (const w of config.webhooks) assert.equal(w.clientConfig.caBundle, undefined);
  });
  test("webhooks, RBAC, Service as with the defaults", () => {
    assertWebhooks(objects(), { namespace });
    assertLeastPrivilege(objects(), { namespace });
    assertServiceAndPdb(objects());
  });
  test("an issuerRef of the user's replaces the chart's issuers", async () => {
    const objects = helmTemplate({
      release: "guard", namespace: "gpu-system",
      args: ["--set", "tls.mode=certManager", "--set", "tls.certManager.issuerRef.kind=ClusterIssuer",
        "--set", "tls.certManager.issuerRef.name=corp-ca"],
    }).objects;
    await assertValidObjects(objects);
    assert.deepEqual(findAll(objects, "Issuer"), []);
    const [serving] = findAll(objects, "Certificate");
    assert.deepEqual(serving.spec.issuerRef, { kind: "ClusterIssuer", name: "corp-ca" });
  });
});

describe("custom values", () => {
  const objects = rendered.custom;
  const namespace = sets.custom.namespace;

  test("every object passes the Kubernetes and Prometheus Operator schemas", async () => {
    await assertValidObjects(objects());
    assert.deepEqual(kinds(objects()), [
      "ClusterRole", "ClusterRole", "ClusterRoleBinding", "ClusterRoleBinding", "ConfigMap",
      "DaemonSet", "Deployment", "PodDisruptionBudget", "Role", "RoleBinding", "Service",
      "ServiceAccount", "ServiceAccount", "ServiceMonitor", "ValidatingWebhookConfiguration",
    ]);  // nodeFacts.createNamespace=false: gpu-node-agents is the operator's
  });
  test("node-facts agent follows the values, in its own namespace", () => {
    const { args, pod, daemonSet } = assertNodeFactsAgent(objects(), {
      namespace: "gpu-node-agents", hostPaths: ["/proc", "/sys/module", "/usr", "/var/lib/dpkg"],
      interval: "10m",
    });
    assert.equal(args.get("host-root"), "/hostfs");
    assert.equal(args.get("cgpu-proc-file"), "/proc/cgpu/version");
    assert.equal(args.get("cgpu-version-label"), "example.com/cgpu");
    assert.equal(daemonSet.spec.template.spec.containers[0].args.at(-1), "--command-timeout=10s");
    assert.equal(pod.serviceAccountName, "gpu-node-agent");
    assert.equal(pod.nodeSelector["example.com/gpu"], "true");
    assert.equal(args.get("heartbeat-file"), "/run/node-facts/heartbeat");
    const probe = daemonSet.spec.template.spec.containers[0].livenessProbe;
    assert.ok(probe.exec.command.includes("--max-age=5m"), probe.exec.command.join(" "));
    assert.equal(probe.periodSeconds, 60);
  });
  test("Deployment follows the values", () => {
    const { pod, container: c, tlsSecretName } =
      assertDeployment(objects(), { namespace, replicas: 3, antiAffinity: "hard" });
    assert.equal(c.image, "registry.internal/gpu/cgpu-guard@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    assert.equal(c.imagePullPolicy, "Always");
    assert.deepEqual(pod.imagePullSecrets, [{ name: "registry-credentials" }]);
    assert.equal(tlsSecretName, "gpu-guard-serving");
    assert.equal(pod.serviceAccountName, "gpu-guard-sa");
    assert.equal(pod.terminationGracePeriodSeconds, 60);
    assert.equal(pod.tolerations[0].key, "dedicated");
    assert.equal(pod.topologySpreadConstraints[0].topologyKey, "topology.kubernetes.io/zone");
    const meta = findOne(objects(), "Deployment").spec.template.metadata;
    assert.equal(meta.labels["example.com/tier"], "control");
    assert.equal(meta.annotations["example.com/team"], "gpu");
    assert.equal(meta.annotations["prometheus.io/scrape"], undefined, "scrape annotations off");
  });
  test("every server flag takes its value", () => {
    const args = serverArgs(objects());
    const expected = {
      "listen": "[::]:9443", "metrics-listen": "[::]:9100", "tls-reload-interval": "30s",
      "max-body-bytes": "2Mi", "threads": "128", "keep-alive-max-requests": "500",
      "idle-timeout": "20s", "read-timeout": "3s", "write-timeout": "5s", "shutdown-delay": "15s",
      "mode": "warn", "unknown-policy": "deny", "max-pods-per-gpu": "10", "reservation-ttl": "1m",
      "stale-after": "45s", "stale-policy": "fail-closed",  // follows failurePolicy Fail
      "ai-installer-version": "1.12.6", "cgpu-version-label": "example.com/cgpu",
      "driver-version-label": "example.com/driver", "toolkit-version-label": "example.com/toolkit",
      "container-os-pattern": "lifsea|container optimized",
      "rules": "/etc/cgpu-guard/rules/cgpu-rules.yaml",
      "client-ca": "/etc/cgpu-guard/client-ca/ca.crt",
    };
    for (const [flag, value] of Object.entries(expected)) {
      assert.equal(args.get(flag), value, `--${flag}`);
    }
    assert.equal(container(objects()).args.at(-1), "--read-timeout=3s", "extraArgs come last");
  });
  test("the client CA ConfigMap is mounted read-only where --client-ca reads it", () => {
    const deployment = objects().find((o) => o.kind === "Deployment");
    const pod = deployment.spec.template.spec;
    const volume = pod.volumes.find((v) => v.name === "client-ca");
    assert.deepEqual(volume.configMap.items, [{ key: "ca.crt", path: "ca.crt" }]);
    assert.equal(volume.configMap.name, "apiserver-webhook-client-ca");
    const mount = container(objects()).volumeMounts.find((m) => m.name === "client-ca");
    assert.equal(mount.mountPath, "/etc/cgpu-guard/client-ca");
    assert.equal(mount.readOnly, true);
    const defaults = rendered.default().find((o) => o.kind === "Deployment");
    assert.equal(defaults.spec.template.spec.volumes.some((v) => v.name === "client-ca"), false);
    assert.equal(serverArgs(rendered.default()).has("client-ca"), false);
  });
  test("an explicit stalePolicy wins over the one failurePolicy implies", () => {
    const { objects: explicit } = helmTemplate({
      args: ["--set", "policy.stalePolicy=fail-closed"],
    });
    assert.equal(serverArgs(explicit).get("stale-policy"), "fail-closed");
  });
  test("the rules override is mounted from a ConfigMap, and pods roll when it changes", () => {
    const configMap = findOne(objects(), "ConfigMap");
    const rules = readFileSync(join(root, "rules/cgpu-rules.yaml"), "utf8");
    assert.equal(configMap.data["cgpu-rules.yaml"].trimEnd(), rules.trimEnd(),
      "the ConfigMap holds the file as given");
    const { pod, container: c, args } = assertDeployment(objects(), { namespace, replicas: 3, antiAffinity: "hard" });
    const volume = pod.volumes.find((v) => v.configMap?.name === configMap.metadata.name);
    assert.ok(volume, "a volume of the ConfigMap");
    const mount = c.volumeMounts.find((m) => m.name === volume.name);
    assert.equal(args.get("rules"), `${mount.mountPath}/cgpu-rules.yaml`);
    assert.match(findOne(objects(), "Deployment").spec.template.metadata.annotations["checksum/rules"], /^[0-9a-f]{64}$/);
  });
  test("webhooks: Fail, 5s, more namespaces excluded, matchConditions, objectSelector on pods", () => {
    const config = assertWebhooks(objects(), {
      namespace, failurePolicy: "Fail", timeoutSeconds: 5, excluded: ["monitoring", "arms-prom"],
      matchConditions: true,
    });
    assert.equal(webhook(objects(), "pods.cgpu-guard.io").objectSelector.matchExpressions[0].key, "cgpu-guard.io/skip");
    assert.equal(webhook(objects(), "nodes.cgpu-guard.io").objectSelector, undefined);
    for (const w of config.webhooks) {
      assert.equal(w.clientConfig.caBundle, customCaBundle(), "caBundle from tls.secret.caBundle");
      assert.equal(w.clientConfig.service.port, 8443);
    }
  });
  test("RBAC with a named ServiceAccount; Service and PDB", () => {
    assertLeastPrivilege(objects(), { namespace });
    assertServiceAndPdb(objects());
    assert.equal(findOne(objects(), "PodDisruptionBudget").spec.maxUnavailable, 2);
    const webhookAccount = findOne(objects().filter((o) => !isNodeFactsObject(o)), "ServiceAccount");
    assert.equal(webhookAccount.metadata.annotations["example.com/owner"], "platform");
  });
  test("the ServiceMonitor scrapes the Service's metrics port", () => {
    const monitor = findOne(objects(), "ServiceMonitor");
    const service = findOne(objects(), "Service");
    assert.equal(monitor.metadata.labels.release, "prometheus");
    assert.ok(Object.entries(monitor.spec.selector.matchLabels).every(([k, v]) => service.metadata.labels[k] === v),
      "the ServiceMonitor selects the Service");
    assert.deepEqual(monitor.spec.namespaceSelector.matchNames, [namespace]);
    const endpoint = monitor.spec.endpoints[0];
    assert.ok(service.spec.ports.some((p) => p.name === endpoint.port), "endpoint port is a Service port");
    assert.equal(endpoint.path, "/metrics");
    assert.equal(endpoint.interval, "15s");
  });
});

describe("pod placement, environment, volumes, host network, scraping, quotas", () => {
  const deployment = (objects) => findOne(objects.filter((o) => !isNodeFactsObject(o)), "Deployment");
  const render = (...sets) => helmTemplate({ args: sets.flatMap((s) => ["--set", s]) }).objects;

  test("affinity: added to the anti-affinity preset, or replacing it when it has its own", () => {
    const zone = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [
      { matchExpressions: [{ key: "node-role.kubernetes.io/system", operator: "Exists" }] }] } } };
    const withZone = helmTemplate({ args: ["--set-json", `affinity=${JSON.stringify(zone)}`] }).objects;
    const affinity = deployment(withZone).spec.template.spec.affinity;
    assert.deepEqual(affinity.nodeAffinity, zone.nodeAffinity);
    assert.ok(affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution, "the soft preset stays");
    const own = { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [
      { topologyKey: "topology.kubernetes.io/zone", labelSelector: { matchLabels: { app: "x" } } }] } };
    const replaced = helmTemplate({ args: ["--set-json", `affinity=${JSON.stringify(own)}`] }).objects;
    assert.deepEqual(deployment(replaced).spec.template.spec.affinity, own);
    assert.equal(deployment(render("podAntiAffinity=none")).spec.template.spec.affinity, undefined);
  });
  test("extraEnv, extraVolumes and extraVolumeMounts reach the server's pod", () => {
    const objects = helmTemplate({ args: [
      "--set-json", 'extraEnv=[{"name":"TZ","value":"Asia/Shanghai"}]',
      "--set-json", 'extraVolumes=[{"name":"extra-ca","configMap":{"name":"corp-ca"}}]',
      "--set-json", 'extraVolumeMounts=[{"name":"extra-ca","mountPath":"/etc/corp-ca","readOnly":true}]',
    ] }).objects;
    const pod = deployment(objects).spec.template.spec;
    assert.deepEqual(pod.containers[0].env.map((e) => e.name), ["POD_NAME", "POD_NAMESPACE", "TZ"]);
    assert.deepEqual(pod.volumes.at(-1), { name: "extra-ca", configMap: { name: "corp-ca" } });
    assert.deepEqual(pod.containers[0].volumeMounts.at(-1), { name: "extra-ca", mountPath: "/etc/corp-ca", readOnly: true });
    assert.match(helmTemplateError({ args: ["--set-json", 'extraEnv=[{"name":"POD_NAME","value":"x"}]'] }), /extraEnv/);
  });
  test("hostNetwork: the pod in the node's network, resolving cluster names", () => {
    const pod = deployment(render("hostNetwork=true")).spec.template.spec;
    assert.equal(pod.hostNetwork, true);
    assert.equal(pod.dnsPolicy, "ClusterFirstWithHostNet");
    assert.equal(deployment(rendered.default()).spec.template.spec.hostNetwork, undefined);
  });
  test("scrape annotations only without the ServiceMonitor (no double scrape)", () => {
    const annotations = (objects) => deployment(objects).spec.template.metadata.annotations ?? {};
    assert.equal(annotations(rendered.default())["prometheus.io/scrape"], "true");
    assert.equal(annotations(render("metrics.serviceMonitor.enabled=true"))["prometheus.io/scrape"], undefined);
  });
  test("priorityClassQuota: a quota for each critical class where the chart runs pods", async () => {
    assert.deepEqual(findAll(rendered.default(), "ResourceQuota"), []);
    const objects = render("priorityClassQuota.enabled=true");
    await assertValidObjects(objects);
    const quotas = findAll(objects, "ResourceQuota").map((q) => ({
      namespace: q.metadata.namespace, pods: q.spec.hard.pods,
      classes: q.spec.scopeSelector.matchExpressions[0].values,
    }));
    assert.deepEqual(quotas, [
      { namespace: "cgpu-guard", pods: "3", classes: ["system-cluster-critical"] },
      { namespace: "cgpu-guard-node-facts", pods: "1000", classes: ["system-node-critical"] },
    ]);
  });
});

describe("values.schema.json and template checks refuse bad values", () => {
  const cases = [
    [["--set", "webhook.failurPolicy=Fail"], /additional properties 'failurPolicy' not allowed/],
    [["--set", "replicas=3"], /additional properties 'replicas' not allowed/],
    [["--set", "webhook.failurePolicy=fail"], /failurePolicy/],
    [["--set", "webhook.timeoutSeconds=31"], /timeoutSeconds/],
    [["--set", "policy.mode=audit"], /mode/],
    [["--set", "policy.unknownPolicy=ignore"], /unknownPolicy/],
    [["--set", "policy.stalePolicy=open"], /stalePolicy/],
    [["--set", "policy.staleAfter=soon"], /staleAfter/],
    [["--set", "tls.mode=selfSigned"], /mode/],
    [["--set", "server.idleTimeout=10sec"], /idleTimeout/],
    [["--set", "server.maxBodyBytes=3MB"], /maxBodyBytes/],
    [["--set", "policy.labels.cgpuVersion=not a label"], /cgpuVersion/],
    [["--set", "webhook.matchConditions=true"], /matchConditions/],
    [["--set", "terminationGracePeriodSeconds=15"],
      /terminationGracePeriodSeconds \(15\) must be longer than server.shutdownDelay \(5s\) \+ server.idleTimeout \(10s\)/],
    [["--set", "server.shutdownDelay=1m"], /must be longer than/],
    [["--set-string", "rules.override=a: [b"], /rules.override is not YAML/],
    [["--set", "nodeFacts.livenessProbe.heartbeatFile=/heartbeat"], /heartbeatFile/],
    [["--set", "nodeFacts.livenessProbe.maxAge=3min"], /maxAge/],
    [["--set", "nodeFacts.livenessProbe.periodSeconds=0"], /periodSeconds/],
    // No image is published: a render without one names the README section that says how.
    [["--set", "image.repository="], /image.repository is empty: .*README "Build and push the image"/],
    [["--set", "image.repository=has space"], /repository/],
    // The lifecycle and placement values' schema entries.
    [["--set", "hostNetwork=yes"], /hostNetwork/],
    [["--set", "uninstallHook.timeoutSeconds=5"], /timeoutSeconds/],
    [["--set", "uninstallHook.enable=true"], /additional properties 'enable' not allowed/],
    [["--set", "priorityClassQuota.nodeFactsPods=0"], /nodeFactsPods/],
    [["--set-json", "affinity=[]"], /affinity/],
    [["--set-json", 'extraVolumes=[{"emptyDir":{}}]'], /name/],
    [["--set-json", 'extraVolumeMounts=[{"name":"x"}]'], /mountPath/],
    [["--set", "tls.generate.rotate=yes"], /rotate/],
    [["--set", "nodeFacts.createNamespace=1"], /createNamespace/],
    // failurePolicy Fail where an outage of cgpu-guard would reach beyond cGPU pods, or is certain.
    [["--set", "webhook.failurePolicy=Fail", "--set", "webhook.matchConditions=disabled"],
      /failurePolicy=Fail without matchConditions .* every node update \(cordon, drain, taints\)/],
    [["--kube-version", "1.27.9", "--set", "webhook.failurePolicy=Fail"],
      /failurePolicy=Fail without matchConditions \(webhook.matchConditions=auto, Kubernetes v1.27.9\)/],
    [["--set", "webhook.failurePolicy=Fail", "--set", "tls.mode=secret"],
      /failurePolicy=Fail with tls.mode=secret and no tls.secret.caBundle/],
    [["--set", "webhook.failurePolicy=Fail", "--set", "replicaCount=1"],
      /failurePolicy=Fail with replicaCount=1: .* stops scheduling cluster-wide/],
    [["--set", "webhook.failurePolicy=Fail", "--set", "podDisruptionBudget.enabled=false"],
      /failurePolicy=Fail with podDisruptionBudget.enabled=false/],
  ];
  const answers = cases.map(([args]) => helmTemplateErrorSoon({ args }));
  cases.forEach(([args, message], i) => {
    test(args.join(" "), async () => {
      assert.match(await answers[i], message);
    });
  });
});

describe("matchConditions", () => {
  // Pods as the API server hands them to matchConditions: a limit without a request has the
  // limit as its request (defaulting), and quantities are strings in canonical form.
  const amounts = (resource, amount) => ({ limits: { [resource]: amount }, requests: { [resource]: amount } });
  const gpuMem = (amount) => amounts("aliyun.com/gpu-mem", amount);
  const gpuCore = (amount) => amounts("aliyun.com/gpu-core.percentage", amount);
  const cgpuLimits = gpuMem("4");
  const pod = (spec) => ({ apiVersion: "v1", kind: "Pod", metadata: { name: "p", namespace: "ml" }, spec });
  const bound = (spec) => pod({ nodeName: "gpu-1", ...spec });
  const podCases = [
    ["cGPU limits, bound", bound({ containers: [{ name: "a", resources: cgpuLimits }] }), true],
    ["gpu-core.percentage limit, bound", bound({ containers: [{ name: "a", resources: gpuCore("30") }] }), true],
    ["gpu-mem limit without the defaulted request", bound({ containers: [{ name: "a", resources: { limits: { "aliyun.com/gpu-mem": "1" } } }] }), true],
    ["second container limits cGPU", bound({ containers: [{ name: "a", resources: {} }, { name: "b", resources: cgpuLimits }] }), true],
    ["one container of three with a limit above zero", bound({ containers: [{ name: "a", resources: { requests: { cpu: "1" } } }, { name: "b", resources: gpuMem("0") }, { name: "c", resources: gpuCore("5") }] }), true],
    ["init container limits cGPU (ACK does not count it)", bound({ initContainers: [{ name: "i", resources: cgpuLimits }], containers: [{ name: "a" }] }), false],
    ["gpu-mem request without a limit (the API server refuses it)", bound({ containers: [{ name: "a", resources: { requests: { "aliyun.com/gpu-mem": "1" } } }] }), false],
    ["gpu-core.percentage request without a limit", bound({ containers: [{ name: "a", resources: { requests: { "aliyun.com/gpu-core.percentage": "30" } } }] }), false],
    ["zero gpu-mem limit", bound({ containers: [{ name: "a", resources: gpuMem("0") }] }), false],
    ["zero limits of both, several containers", bound({ containers: [{ name: "a", resources: gpuMem("0") }, { name: "b", resources: gpuCore("0") }] }), false],
    ["cGPU but not bound (the binding is checked)", pod({ containers: [{ name: "a", resources: cgpuLimits }] }), false],
    ["cGPU, empty nodeName", pod({ nodeName: "", containers: [{ name: "a", resources: cgpuLimits }] }), false],
    ["no resources at all", bound({ containers: [{ name: "a" }] }), false],
    ["empty resources", bound({ containers: [{ name: "a", resources: {} }] }), false],
    ["whole GPUs (nvidia.com/gpu)", bound({ containers: [{ name: "a", resources: { limits: { "nvidia.com/gpu": "1" } } }] }), false],
    ["CPU only, init containers too", bound({ initContainers: [{ name: "i" }], containers: [{ name: "a", resources: { requests: { cpu: "1" } } }] }), false],
  ];
  for (const [name, object, called] of podCases) {
    test(`pods: ${name} -> ${called ? "sent" : "skipped"}`, () => {
      const objects = rendered.default();
      assert.equal(webhookCalled(webhook(objects, "pods.cgpu-guard.io"), { object }), called);
      assert.equal(webhookCalled(webhook(objects, "bindings.cgpu-guard.io"), { object }), true,
        "bindings are always sent");
    });
  }

  // Canonical quantities (resource.Quantity's String: zero is "0", a sign only on a negative
  // amount), as the API server serialises them, and whether each is above zero.
  const canonical = [
    ["0", false], ["1", true], ["2", true], ["20", true], ["100", true], ["16276", true],
    ["1k", true], ["1M", true], ["1Ki", true], ["1Gi", true], ["500m", true], ["1n", true],
    ["-1", false], ["-500m", false], ["-1Gi", false],
  ];
  test("pods: a limit counts exactly when its canonical quantity is above zero", () => {
    const hook = webhook(rendered.default(), "pods.cgpu-guard.io");
    for (const resources of [gpuMem, gpuCore]) {
      for (const [amount, positive] of canonical) {
        const object = bound({ containers: [{ name: "a", resources: resources(amount) }] });
        assert.equal(webhookCalled(hook, { object }), positive, JSON.stringify(resources(amount)));
      }
    }
  });
  test("pods: the condition reads the limits of spec.containers and compares their amounts as text", () => {
    for (const kubeVersion of ["1.28.0", "1.29.0", "1.30.0"]) {
      const objects = helmTemplate({ args: ["--kube-version", kubeVersion] }).objects;
      const condition = webhook(objects, "pods.cgpu-guard.io").matchConditions
        .find((c) => c.name === "requests-cgpu");
      assert.ok(condition, `${kubeVersion}: the requests-cgpu condition`);
      const { expression } = condition;
      assert.match(expression, /^object\.spec\.containers\.exists\(c, /, `${kubeVersion}: spec.containers`);
      assert.ok(!expression.includes("initContainers"), `${kubeVersion}: init containers do not count`);
      assert.ok(!expression.includes("requests"), `${kubeVersion}: requests do not count`);
      for (const resource of ["aliyun.com/gpu-mem", "aliyun.com/gpu-core.percentage"]) {
        assert.ok(expression.includes(`c.resources.limits['${resource}'] != '0'`),
          `${kubeVersion}: ${resource}'s limit compared with zero`);
        assert.ok(expression.includes(`!c.resources.limits['${resource}'].startsWith('-')`),
          `${kubeVersion}: ${resource}'s limit not negative`);
      }
      // quantity() is not in the environment a 1.28 API server checks new expressions against.
      assert.ok(!/\b(is)?[qQ]uantity\(/.test(expression), `${kubeVersion}: no CEL quantity library`);
    }
  });

  const node = (labels) => ({ apiVersion: "v1", kind: "Node", metadata: { name: "n", ...(labels && { labels }) } });
  const nodeCases = [
    ["CREATE with ack.node.gpu.schedule=cgpu", null, node({ "ack.node.gpu.schedule": "cgpu" }), true],
    ["CREATE with ack.node.gpu.schedule=core_mem", null, node({ "ack.node.gpu.schedule": "core_mem" }), true],
    ["CREATE with cgpu=true", null, node({ cgpu: "true" }), true],
    ["CREATE with ack.node.gpu.schedule=share (not cGPU isolation)", null, node({ "ack.node.gpu.schedule": "share" }), false],
    ["CREATE without labels", null, node(), false],
    ["UPDATE turning cGPU on", node({ a: "b" }), node({ a: "b", "ack.node.gpu.schedule": "cgpu" }), true],
    ["UPDATE turning cGPU on, no labels before", node(), node({ cgpu: "true" }), true],
    ["UPDATE removing cgpu.disable.isolation", node({ cgpu: "true", "cgpu.disable.isolation": "true" }), node({ cgpu: "true" }), true],
    ["UPDATE of a cGPU node (cordon, labels)", node({ cgpu: "true" }), node({ cgpu: "true", x: "y" }), false],
    ["UPDATE with cgpu.disable.isolation=true", node(), node({ cgpu: "true", "cgpu.disable.isolation": "true" }), false],
    ["UPDATE of a plain node", node({ a: "b" }), node({ a: "c" }), false],
  ];
  for (const [name, oldObject, object, called] of nodeCases) {
    test(`nodes: ${name} -> ${called ? "sent" : "skipped"}`, () => {
      assert.equal(webhookCalled(webhook(rendered.default(), "nodes.cgpu-guard.io"), { object, oldObject }), called);
    });
  }

  test("the nodes condition uses the built-in rules' cGPU labels", () => {
    const withRulesFile = helmTemplate({
      args: ["--set-file", `rules.override=${join(root, "rules/cgpu-rules.yaml")}`],
    }).objects;
    assert.deepEqual(webhook(withRulesFile, "nodes.cgpu-guard.io").matchConditions,
      webhook(rendered.default(), "nodes.cgpu-guard.io").matchConditions,
      "charts/cgpu-guard/templates/_helpers.tpl's labels differ from rules/cgpu-rules.yaml's cgpu_enabled_labels");
  });
  test("a rules override with other cGPU labels changes the nodes condition", () => {
    const override = "cgpu_enabled_labels:\n  - {key: example.com/sharing, value: cgpu}\n" +
      "isolation_disabled_label: {key: example.com/no-isolation, value: \"yes\"}\n";
    const dir = mkdtempSync(join(tmpdir(), "cgpu-guard-rules-"));
    let objects;
    try {
      writeFileSync(join(dir, "rules.yaml"), override);
      objects = helmTemplate({ args: ["--set-file", `rules.override=${join(dir, "rules.yaml")}`] }).objects;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const hook = webhook(objects, "nodes.cgpu-guard.io");
    assert.equal(webhookCalled(hook, { object: node({ "example.com/sharing": "cgpu" }) }), true);
    assert.equal(webhookCalled(hook, { object: node({ "ack.node.gpu.schedule": "cgpu" }) }), false);
    assert.equal(webhookCalled(hook, { object: node({ "example.com/sharing": "cgpu", "example.com/no-isolation": "yes" }) }), false);
  });
  test("auto: left out below Kubernetes 1.28, kept from 1.28", () => {
    const old = helmTemplate({ args: ["--kube-version", "1.27.9"] }).objects;
    assertWebhooks(old, { namespace: "cgpu-guard", matchConditions: false });
    const beta = helmTemplate({ args: ["--kube-version", "1.28.0"] }).objects;
    assertWebhooks(beta, { namespace: "cgpu-guard", matchConditions: true });
    const forced = helmTemplate({ args: ["--kube-version", "1.27.9", "--set", "webhook.matchConditions=enabled"] }).objects;
    assertWebhooks(forced, { namespace: "cgpu-guard", matchConditions: true });
  });
});

describe("bindings", () => {
  // Bindings arrive as pods/binding (what schedulers use) and as the legacy POST
  // /api/v1/namespaces/{ns}/bindings (resource bindings, no subresource): a rule for one does not
  // match the other, so the bindings webhook names both.
  const renders = {
    ...Object.fromEntries(Object.keys(sets).map((name) => [`${name} values`, rendered[name]])),
    "deploy/cgpu-guard.yaml": once(() => parseDocuments(readFileSync(join(root, "deploy/cgpu-guard.yaml"), "utf8"))),
  };
  for (const [name, objects] of Object.entries(renders)) {
    test(`${name}: pods/binding CREATE and UPDATE, and the legacy bindings CREATE`, () => {
      const hook = webhook(objects(), "bindings.cgpu-guard.io");
      const byResource = new Map(hook.rules.flatMap((r) => r.resources.map((res) => [res, r])));
      assert.deepEqual([...byResource.keys()].sort(), ["bindings", "pods/binding"]);
      assert.deepEqual([...byResource.get("pods/binding").operations].sort(), ["CREATE", "UPDATE"]);
      assert.deepEqual(byResource.get("bindings").operations, ["CREATE"]);
      for (const rule of hook.rules) {
        assert.deepEqual(rule.apiGroups, [""]);
        assert.deepEqual(rule.apiVersions, ["v1"]);
        assert.equal(rule.scope, "Namespaced");
      }
      assert.equal(hook.matchConditions, undefined, "every binding is sent");
      const others = findOne(objects(), "ValidatingWebhookConfiguration").webhooks
        .filter((w) => w !== hook).flatMap((w) => w.rules.flatMap((r) => r.resources));
      assert.ok(!others.includes("bindings") && !others.includes("pods/binding"),
        "no other webhook is sent bindings");
    });
  }

  // The server routes requests by one table (server/core/resource_routes.h), which
  // `cgpu-guard routes` prints: every webhook rule together must send exactly those resources
  // with exactly those operations, so a route added to the server cannot be left without a rule
  // (and a rule cannot send what the server would allow unread).
  test("the webhook rules send exactly the routes the server judges", () => {
    const result = run(binaryPath, ["routes"]);
    assert.equal(result.status, 0, `${binaryPath} routes failed: ${result.stderr}`);
    const routes = new Map(result.stdout.trim().split("\n").map((line) => {
      const [resource, operations] = line.split(" ");
      return [resource, operations.split(",").sort()];
    }));
    assert.ok(routes.has("pods/binding") && routes.has("bindings"), result.stdout);
    for (const [name, objects] of Object.entries(renders)) {
      const sent = new Map();
      for (const hook of findOne(objects(), "ValidatingWebhookConfiguration").webhooks) {
        for (const rule of hook.rules) {
          for (const resource of rule.resources) {
            sent.set(resource, [...new Set([...(sent.get(resource) ?? []), ...rule.operations])].sort());
          }
        }
      }
      assert.deepEqual(Object.fromEntries(sent), Object.fromEntries(routes), name);
    }
  });
});

describe("server flags", () => {
  // `cgpu-guard serve --help` of the build: every flag has a value in the chart, and the chart's
  // defaults are the server's.
  const outOfCluster = new Set(["cluster-state", "kubeconfig", "context"]);
  const help = once(() => {
    const result = run(binaryPath, ["serve", "--help"]);
    assert.equal(result.status, 0, `${binaryPath} serve --help failed: ${result.stderr}`);
    const flags = new Map();
    for (const line of result.stdout.split("\n")) {
      const match = /^\s+(?:-\w, )?--([a-z-]+)(?: [A-Z]+)?\s+(.*)$/.exec(line);
      if (!match || match[1] === "help") continue;
      const literal = /\(default ([^)]*)\)\s*$/.exec(match[2]);
      flags.set(match[1], literal ? literal[1].split(";")[0].trim() : null);
    }
    assert.ok(flags.size > 20, `parsed only ${flags.size} flags from serve --help`);
    return flags;
  });

  test("every serve flag is set by the chart (or runs only outside a cluster)", () => {
    const defaults = serverArgs(rendered.default());
    const custom = serverArgs(rendered.custom());
    const missing = [...help().keys()].filter(
      (flag) => !outOfCluster.has(flag) && !defaults.has(flag) && !custom.has(flag));
    assert.deepEqual(missing, [], "flags of `cgpu-guard serve` with no value in charts/cgpu-guard " +
      "(add one to values.yaml, values.schema.json and templates/deployment.yaml)");
    for (const flag of outOfCluster) {
      assert.ok(help().has(flag), `--${flag} is no longer a serve flag: drop it from the exclusions`);
      assert.ok(!defaults.has(flag) && !custom.has(flag), `--${flag} is for running outside a cluster`);
    }
  });
  test("the chart's defaults are the server's", () => {
    const args = serverArgs(rendered.default());
    for (const [flag, value] of help()) {
      if (outOfCluster.has(flag) || value === null) continue;
      if (flag === "arbiter") {
        // Two replicas by default: they count each other's placements through claims.
        assert.equal(args.get(flag), "claims", "--arbiter follows replicaCount 2");
        continue;
      }
      const fromEnv = /^\$([A-Z_]+)/.exec(value);
      if (fromEnv) {
        // The server's default is an environment variable: the chart passes it as $(VAR), which
        // Kubernetes expands from the container's env (set from the downward API).
        assert.equal(args.get(flag), `$(${fromEnv[1]})`, `--${flag} from $${fromEnv[1]}`);
        continue;
      }
      if (flag === "stale-policy") {
        // Follows the webhook's failurePolicy (Ignore by default), which decides once every
        // replica is stale and out of the Service.
        assert.equal(args.get(flag), "fail-open", "--stale-policy follows failurePolicy Ignore");
        continue;
      }
      assert.equal(args.get(flag), value, `--${flag}: the chart passes ${args.get(flag)}, the server's default is ${value}`);
    }
    assert.equal(args.has("max-pods-per-gpu"), false, "no --max-pods-per-gpu: the rules' limit");
    assert.equal(args.has("rules"), false, "no --rules: the built-in rules");
  });
});

describe("deploy/", () => {
  const committedText = once(() => readFileSync(join(root, "deploy/cgpu-guard.yaml"), "utf8"));
  const objects = once(() => parseDocuments(committedText()));

  test("deploy/cgpu-guard.yaml is what scripts/render-deploy.sh renders now", () => {
    const dir = mkdtempSync(join(tmpdir(), "cgpu-guard-deploy-"));
    try {
      const result = run("bash", [join(root, "scripts/render-deploy.sh"), dir]);
      assert.equal(result.status, 0, `scripts/render-deploy.sh failed:\n${result.stderr}`);
      const fresh = join(dir, "cgpu-guard.yaml");
      const diff = run("diff", ["-u", join(root, "deploy/cgpu-guard.yaml"), fresh]);
      assert.equal(diff.status, 0,
        "deploy/ is out of date with charts/cgpu-guard; run scripts/render-deploy.sh\n" +
        diff.stdout.split("\n").slice(0, 80).join("\n"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  test("every object passes the Kubernetes schemas", async () => {
    await assertValidObjects(objects());
  });
  test("a restricted Namespace first, then the chart's objects with an external Secret", () => {
    assert.equal(objects()[0].kind, "Namespace", "the Namespace comes first (kubectl applies in order)");
    assert.equal(objects()[0].metadata.labels["pod-security.kubernetes.io/enforce"], "restricted");
    const namespace = objects()[0].metadata.name;
    assert.deepEqual(kinds(objects()), [
      "ClusterRole", "ClusterRole", "ClusterRoleBinding", "ClusterRoleBinding", "DaemonSet",
      "Deployment", "Namespace", "Namespace", "PodDisruptionBudget", "Role", "RoleBinding",
      "Service", "ServiceAccount", "ServiceAccount", "ValidatingWebhookConfiguration",
    ]);
    // The agent's hostPath volumes need a privileged namespace of their own; the webhook's stays
    // restricted.
    const agentNamespace = objects()[1];
    assert.equal(agentNamespace.kind, "Namespace");
    assert.equal(agentNamespace.metadata.labels["pod-security.kubernetes.io/enforce"], "privileged");
    assertNodeFactsAgent(objects(), {
      namespace: agentNamespace.metadata.name, hostPaths: ["/proc", "/sys/module", "/usr"],
    });
    for (const o of objects()) {
      if (!["Namespace", "ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration"].includes(o.kind)) {
        const expected = o.metadata.labels?.["app.kubernetes.io/component"] === "node-facts"
          ? agentNamespace.metadata.name : namespace;
        assert.equal(o.metadata.namespace, expected, `${o.kind} is in namespace ${expected}`);
      }
    }
    assertDeployment(objects(), { namespace, replicas: 2 });
    assertServiceAndPdb(objects());
    assertLeastPrivilege(objects(), { namespace });
    const config = assertWebhooks(objects(), { namespace });
    for (const w of config.webhooks) {
      assert.equal(w.clientConfig.caBundle, undefined, "caBundle is left to deploy/tls.sh");
    }
  });
  test("deploy/tls.sh makes the Secret the Deployment mounts, for <svc>.<ns>.svc", async () => {
    const { tlsSecretName } = assertDeployment(objects(), { namespace: "cgpu-guard", replicas: 2 });
    const { secret, caBundle } = tlsScript([]);
    await assertValidObjects([secret]);
    assert.equal(secret.metadata.name, tlsSecretName);
    assert.equal(secret.metadata.namespace, "cgpu-guard");
    assert.equal(secret.type, "kubernetes.io/tls");
    assertServingCertificate(secret.data, caBundle, serviceDnsName(objects()));
    assert.equal(caBundle, secret.data["ca.crt"], "caBundle is the new CA");
    const config = findOne(objects(), "ValidatingWebhookConfiguration");
    assert.equal(config.metadata.name, "cgpu-guard", "tls.sh patches the configuration named cgpu-guard");
  });
});

describe("the built server with the chart's certificates", () => {
  // The server on loopback with a certificate as the chart or deploy/tls.sh makes it, and a
  // client that trusts caBundle and checks the Service's name, as the API server does.
  async function assertServed(data, host) {
    await withServer(data, async (port, _metricsPort, caPem) => {
      const { status, review: answer, uid } = await review(port, host, caPem);
      assert.equal(status, 200);
      assert.equal(answer.response.uid, uid);
      assert.equal(answer.response.allowed, true);
      await assert.rejects(review(port, `other.${host}`, caPem), /altnames|Hostname\/IP does not match/,
        "a client checking another name refuses the certificate");
    });
  }

  test("chart-generated (ECDSA P-256) certificate for cgpu-guard.cgpu-guard.svc", async () => {
    const data = findOne(rendered.default(), "Secret").data;
    assert.equal(certificateFromBase64(data["tls.crt"]).publicKey.asymmetricKeyDetails.namedCurve,
      "prime256v1");
    await assertServed(data, "cgpu-guard.cgpu-guard.svc");
  });
  test("an RSA certificate brought with tls.mode=secret, for cgpu-guard.cgpu-guard.svc", async () => {
    await assertServed(rsaSecretData("cgpu-guard.cgpu-guard.svc"), "cgpu-guard.cgpu-guard.svc");
  });
  test("deploy/tls.sh (ECDSA) certificate for cgpu-guard.cgpu-guard.svc", async () => {
    await assertServed(tlsScript([]).secret.data, "cgpu-guard.cgpu-guard.svc");
  });
});

describe("uninstall hook", () => {
  // helm uninstall runs the pre-delete hook before deleting anything: the webhook's registration
  // goes first, so no call reaches pods that are going (templates/unregister-hook.yaml).
  const hooks = once(() => helmTemplate().hooks.filter((h) => h.metadata.annotations["helm.sh/hook"] === "pre-delete"));
  const annotation = (o, key) => o.metadata.annotations[key];

  test("a Job deletes the webhook configuration by name, with a grant for exactly that", async () => {
    await assertValidObjects(hooks());
    assert.deepEqual(kinds(hooks()), ["ClusterRole", "ClusterRoleBinding", "Job", "ServiceAccount"]);
    const config = findOne(rendered.default(), "ValidatingWebhookConfiguration").metadata.name;
    const role = findOne(hooks(), "ClusterRole");
    assert.deepEqual(role.rules, [{ apiGroups: ["admissionregistration.k8s.io"],
      resources: ["validatingwebhookconfigurations"], resourceNames: [config], verbs: ["delete"] }]);
    const job = findOne(hooks(), "Job");
    const pod = job.spec.template.spec;
    const account = findOne(hooks(), "ServiceAccount");
    assert.equal(pod.serviceAccountName, account.metadata.name);
    assert.deepEqual(findOne(hooks(), "ClusterRoleBinding").subjects,
      [{ kind: "ServiceAccount", name: account.metadata.name, namespace: "cgpu-guard" }]);
    assert.deepEqual(pod.containers[0].command, ["cgpu-guard"]);
    assert.deepEqual(pod.containers[0].args.slice(0, 2), ["unregister", `--webhook-config=${config}`]);
    assert.equal(pod.restartPolicy, "Never");
    assert.equal(pod.containers[0].securityContext.readOnlyRootFilesystem, true);
  });
  test("the grant exists before the Job runs and outlives it; hooks are cleaned up", () => {
    const weight = (o) => Number(annotation(o, "helm.sh/hook-weight"));
    const job = findOne(hooks(), "Job");
    for (const o of hooks().filter((h) => h.kind !== "Job")) {
      assert.ok(weight(o) < weight(job), `${o.kind} before the Job (Helm runs hooks by weight)`);
    }
    for (const o of hooks()) {
      assert.equal(annotation(o, "helm.sh/hook-delete-policy"), "before-hook-creation,hook-succeeded", o.kind);
    }
  });
  test("the Job's pod is nobody's backend: no Service, PDB or NetworkPolicy selects it", () => {
    const objects = helmTemplate({ args: ["--set", "networkPolicy.enabled=true", "--set", "networkPolicy.webhook.cidrs={10.0.0.0/8}"] });
    const labels = findOne(objects.hooks, "Job").spec.template.metadata.labels;
    assert.ok(!selects({ matchLabels: findOne(objects.objects, "Service").spec.selector }, labels));
    assert.ok(!selects(findOne(objects.objects, "PodDisruptionBudget").spec.selector, labels));
    assert.ok(!selects(findOne(objects.objects, "NetworkPolicy").spec.podSelector, labels));
  });
  test("the built binary takes the Job's arguments", () => {
    const args = findOne(hooks(), "Job").spec.template.spec.containers[0].args;
    const result = run(binaryPath, [...args, "--kubeconfig=/nonexistent/kubeconfig"]);
    assert.equal(result.status, 2, result.stderr);
    assert.match(result.stderr, /nonexistent/, "it got as far as reading the kubeconfig");
  });
  test("uninstallHook.enabled=false: no hook; deploy/ carries none either", () => {
    assert.deepEqual(helmTemplate({ args: ["--set", "uninstallHook.enabled=false"] }).hooks
      .filter((h) => h.metadata.annotations["helm.sh/hook"] === "pre-delete"), []);
    const committed = parseDocuments(readFileSync(join(root, "deploy/cgpu-guard.yaml"), "utf8"));
    assert.deepEqual(committed.filter((o) => o.metadata?.annotations?.["helm.sh/hook"]), []);
  });
});

describe("helm test", () => {
  const testPod = (args = [], release = "cgpu-guard", namespace = "cgpu-guard") =>
    findOne(helmTemplate({ release, namespace, args }).hooks, "Pod");

  test("a pod of the image runs selftest against the Service, trusting the chart's CA", async () => {
    const pod = testPod();
    await assertValidObjects([pod]);
    assert.equal(pod.metadata.annotations["helm.sh/hook"], "test");
    const c = pod.spec.containers[0];
    assert.deepEqual(c.command, ["cgpu-guard"]);
    assert.deepEqual(c.args, ["selftest", "--webhook-url=https://cgpu-guard.cgpu-guard.svc:443/validate",
      "--ca-file=/ca/ca.crt", "--ready-url=http://cgpu-guard.cgpu-guard.svc:9090/readyz",
      "--namespace=cgpu-guard", "--timeout=2m"]);
    assert.deepEqual(pod.spec.volumes, [{ name: "ca", secret: { secretName: "cgpu-guard-tls", items: [{ key: "ca.crt", path: "ca.crt" }] } }]);
  });
  test("secret mode with caBundle: the test trusts that bundle; with client certificates, readiness only", () => {
    const bundle = Buffer.from("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n").toString("base64");
    const objects = helmTemplate({ args: ["--set", "tls.mode=secret", "--set", `tls.secret.caBundle=${bundle}`] }).hooks;
    const config = findOne(objects, "ConfigMap");
    assert.equal(config.data["ca.crt"], Buffer.from(bundle, "base64").toString());
    assert.deepEqual(findOne(objects, "Pod").spec.volumes[0].configMap, { name: config.metadata.name });
    const mtls = testPod(["--set", "tls.clientCAConfigMap=apiserver-ca"]);
    assert.ok(!mtls.spec.containers[0].args.some((a) => a.startsWith("--webhook-url")));
    assert.equal(mtls.spec.volumes, undefined);
  });
  test("the built selftest passes against the built server with the chart's certificate", async () => {
    const secret = findOne(rendered.default(), "Secret").data;
    const args = testPod().spec.containers[0].args;
    await withServer(secret, async (port, metricsPort, caPem) => {
      const dir = mkdtempSync(join(tmpdir(), "cgpu-guard-selftest-"));
      try {
        writeFileSync(join(dir, "ca.crt"), caPem);
        const local = args.map((a) => a
          .replace(":443/", `:${port}/`).replace(":9090/", `:${metricsPort}/`)
          .replace("--ca-file=/ca/ca.crt", `--ca-file=${join(dir, "ca.crt")}`)
          .replace("--timeout=2m", "--timeout=20s"));
        const result = run(binaryPath, [...local, "--resolve=cgpu-guard.cgpu-guard.svc=127.0.0.1"]);
        assert.equal(result.status, 0, result.stderr);
        assert.match(result.stdout, /passed: .* allowed a harmless review over verified TLS .* is ready/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});

describe("node-facts admission policy", () => {
  // Off by default; on, the agent may patch only the node its token names, and only its three
  // version labels. Evaluated on requests shaped as the agent's merge patch makes them.
  const agent = "system:serviceaccount:cgpu-guard-node-facts:cgpu-guard-node-facts";
  const onNode = (node) => ({
    username: agent,
    extra: { "authentication.kubernetes.io/node-name": [node] },
  });
  const node = (labels, spec = { podCIDR: "172.20.4.0/24" }) => ({
    apiVersion: "v1",
    kind: "Node",
    metadata: { name: "gpu-1", labels, annotations: { "node.alpha.kubernetes.io/ttl": "0" } },
    spec,
  });
  const before = {
    "kubernetes.io/hostname": "gpu-1",
    "cgpu-guard.io/cgpu-version": "1.5.19",
  };
  const policy = once(() => findOne(
    helmTemplate({ args: ["--kube-version", "1.30.0", "--set", "nodeFacts.admissionPolicy.enabled=true"] }).objects,
    "ValidatingAdmissionPolicy"));

  test("off by default, and refused below Kubernetes 1.30", () => {
    assert.equal(findAll(rendered.default(), "ValidatingAdmissionPolicy").length, 0);
    const error = helmTemplateError({ args: ["--kube-version", "1.29.4", "--set", "nodeFacts.admissionPolicy.enabled=true"] });
    assert.match(error, /needs Kubernetes 1\.30 or later/);
  });

  test("the agent may set and remove its own labels on its own node", () => {
    const after = { ...before, "cgpu-guard.io/cgpu-version": "1.5.20", "cgpu-guard.io/nvidia-driver-version": "535.161.08" };
    assert.deepEqual(evalPolicy(policy(), { object: node(after), oldObject: node(before), userInfo: onNode("gpu-1") }), []);
    const removed = { "kubernetes.io/hostname": "gpu-1" };
    assert.deepEqual(evalPolicy(policy(), { object: node(removed), oldObject: node(before), userInfo: onNode("gpu-1") }), []);
  });

  test("another node, no node claim, other labels or other fields are refused", () => {
    const after = { ...before, "cgpu-guard.io/cgpu-version": "1.5.20" };
    assert.deepEqual(evalPolicy(policy(), { object: node(after), oldObject: node(before), userInfo: onNode("gpu-2") }),
      ["the node-facts agent may change only the node it runs on"]);
    assert.deepEqual(evalPolicy(policy(), { object: node(after), oldObject: node(before), userInfo: { username: agent, extra: {} } }),
      ["the node-facts agent may change only the node it runs on"]);
    assert.deepEqual(evalPolicy(policy(), {
      object: node({ ...before, "ack.node.gpu.schedule": "cgpu" }), oldObject: node(before), userInfo: onNode("gpu-1"),
    }), ["the node-facts agent may change only its own version labels"]);
    assert.deepEqual(evalPolicy(policy(), {
      object: node({ "cgpu-guard.io/cgpu-version": "1.5.19" }), oldObject: node(before), userInfo: onNode("gpu-1"),
    }), ["the node-facts agent may change only its own version labels"]);
    assert.deepEqual(evalPolicy(policy(), {
      object: node(before, { podCIDR: "172.20.4.0/24", unschedulable: true }), oldObject: node(before), userInfo: onNode("gpu-1"),
    }), ["the node-facts agent may change only labels"]);
  });

  test("with nodeFacts.setMaxPodLabel the agent may also set ack.node.gpu.max-pod, and not without", () => {
    const after = { ...before, "ack.node.gpu.max-pod": "20" };
    assert.deepEqual(evalPolicy(policy(), { object: node(after), oldObject: node(before), userInfo: onNode("gpu-1") }),
      ["the node-facts agent may change only its own version labels"]);
    const withLabel = findOne(helmTemplate({ args: ["--kube-version", "1.30.0", "--set", "nodeFacts.admissionPolicy.enabled=true",
      "--set", "nodeFacts.setMaxPodLabel=true"] }).objects, "ValidatingAdmissionPolicy");
    assert.deepEqual(evalPolicy(withLabel, { object: node(after), oldObject: node(before), userInfo: onNode("gpu-1") }), []);
  });

  test("nobody else is judged by it", () => {
    assert.equal(evalPolicy(policy(), {
      object: node({}), oldObject: node(before), userInfo: { username: "system:node:gpu-1", extra: {} },
    }), null);
  });
});

describe("network policy", () => {
  // Off by default; on, an ingress NetworkPolicy for the webhook pods only: the webhook port from
  // the configured peers (the API server), the ops port from the monitoring peers. A rule with no
  // peers would admit everyone, so the chart never renders one.
  const monitoring = { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } } };
  const konnectivity = {
    namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } },
    podSelector: { matchLabels: { "k8s-app": "konnectivity-agent" } },
  };
  const json = (value) => JSON.stringify(value);
  // A Service or probe port (a number or a container port's name) as the container's number.
  const containerPort = (c, port) =>
    typeof port === "number" ? port : c.ports.find((p) => p.name === port)?.containerPort;
  const webhookOnly = ["--set", "networkPolicy.enabled=true", "--set", "networkPolicy.webhook.cidrs={192.168.0.0/24}"];

  test("off by default: no NetworkPolicy, in the chart or in deploy/", () => {
    assert.deepEqual(findAll(rendered.default(), "NetworkPolicy"), []);
    const committed = parseDocuments(readFileSync(join(root, "deploy/cgpu-guard.yaml"), "utf8"));
    assert.deepEqual(findAll(committed, "NetworkPolicy"), []);
  });

  test("on: selects exactly the Deployment's pods, on its container ports, from the configured peers", async () => {
    const objects = helmTemplate({
      release: "gpu", namespace: "team-a",
      args: [
        "--set", "networkPolicy.enabled=true",
        "--set", "server.webhookPort=9443", "--set", "server.metricsPort=9100",
        "--set", "podLabels.example\\.com/tier=control",
        "--set", "networkPolicy.webhook.cidrs={192.168.0.0/24,fd00:10::/64}",
        "--set-json", `networkPolicy.webhook.peers=${json([
          konnectivity, { ipBlock: { cidr: "100.104.0.0/16", except: ["100.104.1.0/24"] } }])}`,
        "--set", "networkPolicy.metrics.cidrs={172.16.0.0/20}",
        "--set-json", `networkPolicy.metrics.peers=${json([
          { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "arms-prom" } },
            podSelector: { matchExpressions: [{ key: "app", operator: "In", values: ["prometheus"] }] } }])}`,
      ],
    }).objects;
    await assertValidObjects(objects);
    const policy = findOne(objects, "NetworkPolicy");
    const deployment = findOne(objects, "Deployment");
    const c = container(objects);
    assert.equal(policy.metadata.namespace, deployment.metadata.namespace);

    // The pods: the Deployment's own selector, nothing wider; its pods, not the agent's.
    assert.deepEqual(policy.spec.podSelector, { matchLabels: deployment.spec.selector.matchLabels });
    assert.ok(selects(policy.spec.podSelector, deployment.spec.template.metadata.labels),
      "the policy selects the Deployment's pods");
    assert.ok(!selects(policy.spec.podSelector, findOne(objects, "DaemonSet").spec.template.metadata.labels),
      "the policy leaves the node-facts agent's pods alone");
    assert.deepEqual(policy.spec.policyTypes, ["Ingress"], "ingress only: the server still reaches the API server");

    // The ports: the container's, by number; the Service's target and the probes land on them.
    const [webhookRule, metricsRule, testRule, ...rest] = policy.spec.ingress;
    assert.deepEqual(rest, []);
    // helm test's pod may reach both ports, and nothing else is admitted by that rule.
    const testPod = findOne(helmTemplate({ release: "gpu", namespace: "team-a", args: ["--set", "networkPolicy.enabled=true",
      "--set", "networkPolicy.webhook.cidrs={192.168.0.0/24}"] }).hooks, "Pod");
    assert.deepEqual(testRule.from.length, 1);
    assert.ok(selects(testRule.from[0].podSelector, testPod.metadata.labels), "the rule admits the test pod");
    assert.ok(!selects(testRule.from[0].podSelector, deployment.spec.template.metadata.labels));
    assert.deepEqual(testRule.ports.map((p) => p.port), [9443, 9100]);
    assert.deepEqual(webhookRule.ports, [{ protocol: "TCP", port: containerPort(c, "https") }]);
    assert.deepEqual(metricsRule.ports, [{ protocol: "TCP", port: containerPort(c, "metrics") }]);
    assert.deepEqual([webhookRule.ports[0].port, metricsRule.ports[0].port], [9443, 9100]);
    const servicePort = findOne(objects, "Service").spec.ports.find((p) => p.port === 443);
    assert.equal(containerPort(c, servicePort.targetPort), webhookRule.ports[0].port,
      "the API server's calls to the Service land on the webhook rule's port");
    for (const probe of [c.readinessProbe, c.livenessProbe]) {
      assert.equal(containerPort(c, probe.httpGet.port), metricsRule.ports[0].port, "probes use the ops port");
    }

    // The peers, in order: the CIDRs as ipBlocks, then the peers as given.
    assert.deepEqual(webhookRule.from, [
      { ipBlock: { cidr: "192.168.0.0/24" } }, { ipBlock: { cidr: "fd00:10::/64" } },
      konnectivity, { ipBlock: { cidr: "100.104.0.0/16", except: ["100.104.1.0/24"] } },
    ]);
    assert.deepEqual(metricsRule.from, [
      { ipBlock: { cidr: "172.16.0.0/20" } },
      { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "arms-prom" } },
        podSelector: { matchExpressions: [{ key: "app", operator: "In", values: ["prometheus"] }] } },
    ]);
  });

  test("the ops port defaults to the monitoring namespace; without peers its rule is left out", () => {
    const objects = helmTemplate({ args: webhookOnly }).objects;
    const c = container(objects);
    const [webhookRule, metricsRule] = findOne(objects, "NetworkPolicy").spec.ingress;
    assert.deepEqual(webhookRule, {
      from: [{ ipBlock: { cidr: "192.168.0.0/24" } }],
      ports: [{ protocol: "TCP", port: containerPort(c, "https") }],
    });
    assert.deepEqual(metricsRule, {
      from: [monitoring], ports: [{ protocol: "TCP", port: containerPort(c, "metrics") }],
    });

    const closed = helmTemplate({ args: [...webhookOnly, "--set-json", "networkPolicy.metrics.peers=[]"] }).objects;
    const rules = findOne(closed, "NetworkPolicy").spec.ingress;
    assert.equal(rules.length, 2, "no ops rule: only the pod's node (and helm test's pod) reach that port");
    for (const rule of rules) assert.ok(rule.from?.length, "no rule admits every source");
  });

  test("helm lint --strict with the policy on", () => {
    helmLint(["--namespace", "cgpu-guard", ...webhookOnly]);
  });

  test("on without webhook peers refuses to render, saying what to set and how to find it", () => {
    for (const extra of [[], ["--set", "networkPolicy.metrics.cidrs={10.0.0.0/8}"]]) {
      const error = helmTemplateError({ args: ["--set", "networkPolicy.enabled=true", ...extra] });
      assert.match(error, /networkPolicy\.enabled needs the API server's source addresses/);
      assert.match(error, /networkPolicy\.webhook\.cidrs .*networkPolicy\.webhook\.peers/);
      assert.match(error, /failurePolicy Ignore nothing is enforced any more, with Fail every matched request is refused/);
      assert.match(error, /README "Network policy"/);
    }
    assert.match(readFileSync(join(root, "README.md"), "utf8"), /^### Network policy$/m,
      "the section the message points to exists");
  });

  const peers = (value) => ["--set", "networkPolicy.enabled=true", "--set-json", `networkPolicy.webhook.peers=${json(value)}`];
  const refused = [
    [["--set", "networkPolicy.webhook.cidrs={10.0.0.0/33}"], /networkPolicy\/webhook\/cidrs\/0'/],
    [["--set", "networkPolicy.webhook.cidrs={10.0.0.0}"], /networkPolicy\/webhook\/cidrs\/0'/],
    [["--set", "networkPolicy.webhook.cidrs={10.0.0.256/8}"], /networkPolicy\/webhook\/cidrs\/0'/],
    [["--set", "networkPolicy.metrics.cidrs={kube-system}"], /networkPolicy\/metrics\/cidrs\/0'/],
    [["--set", "networkPolicy.webhook.cidr=10.0.0.0/8"], /additional properties 'cidr' not allowed/],
    [["--set-string", "networkPolicy.enabled=yes"], /networkPolicy\/enabled': got string, want boolean/],
    [peers([{}]), /networkPolicy\/webhook\/peers\/0': 'oneOf' failed/],
    [peers([{ namespace: "kube-system" }]), /additional properties 'namespace' not allowed/],
    [peers([{ ipBlock: { cidr: "10.0.0.0/8" }, podSelector: {} }]), /networkPolicy\/webhook\/peers\/0': 'oneOf' failed/],
    [peers([{ ipBlock: { cidr: "10.0.0.0/8", except: ["10.1.0.0"] } }]), /peers\/0\/ipBlock\/except\/0'/],
    [peers([{ ipBlock: { except: ["10.1.0.0/16"] } }]), /peers\/0\/ipBlock': missing property 'cidr'/],
    [peers([{ podSelector: { matchExpressions: [{ key: "app", operator: "Equals", values: ["x"] }] } }]), /podSelector\/matchExpressions\/0\/operator'/],
    [peers([{ podSelector: { matchLabels: { "not a key": "x" } } }]), /invalid propertyName 'not a key'/],
    [peers([{ namespaceSelector: { matchNames: ["monitoring"] } }]), /additional properties 'matchNames' not allowed/],
  ];
  const answers = refused.map(([args]) => helmTemplateErrorSoon({ args }));
  refused.forEach(([args, message], i) => {
    test(`schema refuses ${args.at(-1)}`, async () => {
      assert.match(await answers[i], message);
    });
  });
});

describe("replicas and claims", () => {
  // More than one replica: each placement is recorded in a Lease per node first (--arbiter
  // claims), so the chart grants Leases in the release namespace, and only there, and tells each
  // replica who it is from the downward API.
  const env = (objects) =>
    Object.fromEntries((container(objects).env ?? []).map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath]));

  test("two replicas: claims, a namespaced Role for Leases only, identity from the downward API", async () => {
    const objects = helmTemplate({ release: "gpu", namespace: "team-a" }).objects;
    await assertValidObjects(objects);
    const args = serverArgs(objects);
    assert.equal(args.get("arbiter"), "claims");
    assert.equal(args.get("arbiter-namespace"), "$(POD_NAMESPACE)");
    assert.equal(args.get("replica-name"), "$(POD_NAME)");
    assert.deepEqual(env(objects),
      { POD_NAME: "metadata.name", POD_NAMESPACE: "metadata.namespace" });
    const role = findOne(objects, "Role");
    assert.equal(role.metadata.namespace, "team-a");
    assert.deepEqual(role.rules,
      [{ apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "create", "update"] }]);
    const binding = findOne(objects, "RoleBinding");
    assert.equal(binding.metadata.namespace, "team-a");
    assert.equal(binding.roleRef.name, role.metadata.name);
    assert.deepEqual(binding.subjects.map((s) => [s.name, s.namespace]),
      [[findOne(objects, "Deployment").spec.template.spec.serviceAccountName, "team-a"]]);
    for (const clusterRole of findAll(objects, "ClusterRole")) {
      assert.ok(!clusterRole.rules.some((r) => r.resources.includes("leases")),
        `${clusterRole.metadata.name} grants no Leases cluster-wide`);
    }
  });

  test("one replica: no claims and no Role; policy.arbiter overrides either way", () => {
    const single = helmTemplate({ args: ["--set", "replicaCount=1"] }).objects;
    assert.equal(serverArgs(single).get("arbiter"), "none");
    assert.deepEqual(findAll(single, "Role"), []);
    const forced = helmTemplate({ args: ["--set", "replicaCount=1", "--set", "policy.arbiter=claims"] }).objects;
    assert.equal(serverArgs(forced).get("arbiter"), "claims");
    assert.equal(findAll(forced, "Role").length, 1);
    const off = helmTemplate({ args: ["--set", "policy.arbiter=none"] }).objects;
    assert.equal(serverArgs(off).get("arbiter"), "none");
    assert.deepEqual(findAll(off, "Role"), []);
  });

  test("a claim TTL not longer than staleAfter is refused; a bad arbiter by the schema", () => {
    const short = helmTemplateError({ args: ["--set", "policy.claimTTL=30s"] });
    assert.match(short, /policy\.claimTTL \(30s\) must be longer than policy\.staleAfter \(30s\)/);
    assert.match(helmTemplateError({ args: ["--set", "policy.arbiter=leader"] }), /arbiter/);
    // With no claims the TTL is not used and not checked.
    helmTemplate({ args: ["--set", "policy.arbiter=none", "--set", "policy.claimTTL=30s"] });
  });

  test("the built server takes the chart's identity flags as Kubernetes expands them", () => {
    const dir = mkdtempSync(join(tmpdir(), "cgpu-guard-claims-"));
    let result;
    try {
      result = run(binaryPath, ["serve", "--tls-cert=x", "--tls-key=x", "--arbiter=claims",
        "--arbiter-namespace=Not_A_Namespace", "--kubeconfig", join(dir, "none")]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.notEqual(result.status, 0);
    assert.match(result.stderr + result.stdout, /not a namespace name/);
  });
});
