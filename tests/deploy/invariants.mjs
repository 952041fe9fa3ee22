// What every rendering of the chart (and deploy/) must hold, whatever the values: the webhook
// contract and good practices of DESIGN.md section 1, least privilege, and the wiring between
// the objects. Each function throws an AssertionError that names the object and field.

import assert from "node:assert/strict";

import {
  dns1123Label,
  dns1123Subdomain,
  findAll,
  findOne,
  labelValue,
  schemaProblems,
} from "./lib.mjs";

// Every object passes its Kubernetes schema, unknown fields included, and has sane names.
export async function assertValidObjects(objects) {
  const problems = [];
  for (const object of objects) {
    problems.push(...(await schemaProblems(object)));
    const name = object.metadata?.name ?? "";
    if (!dns1123Subdomain.test(name) || name.length > 253) {
      problems.push(`${object.kind}/${name}: metadata.name is not a DNS-1123 subdomain`);
    }
    for (const [key, value] of Object.entries(object.metadata?.labels ?? {})) {
      if (!labelValue.test(value) || value.length > 63) {
        problems.push(`${object.kind}/${name}: label ${key}=${value} is not a valid label value`);
      }
    }
  }
  const seen = new Set();
  for (const object of objects) {
    const key = `${object.kind}/${object.metadata?.namespace ?? ""}/${object.metadata?.name}`;
    if (seen.has(key)) problems.push(`${key} appears twice`);
    seen.add(key);
  }
  assert.deepEqual(problems, [], `schema problems:\n  ${problems.join("\n  ")}`);
}

export function container(objects) {
  const deployment = findOne(objects, "Deployment");
  const containers = deployment.spec.template.spec.containers;
  assert.equal(containers.length, 1, "the Deployment runs one container");
  return containers[0];
}

// --flag=value arguments of the container, as a Map (the last of a repeated flag wins, as in
// the server).
export function serverArgs(objects) {
  const args = new Map();
  for (const arg of container(objects).args) {
    const match = /^--([a-z-]+)(?:=(.*))?$/s.exec(arg);
    assert.ok(match, `container argument ${JSON.stringify(arg)} is not --flag=value`);
    args.set(match[1], match[2] ?? "");
  }
  return args;
}

export function seconds(duration) {
  const match = /^(\d+)(ms|s|m|h)?$/.exec(duration);
  assert.ok(match, `${duration} is not a duration`);
  const scale = { ms: 0.001, s: 1, m: 60, h: 3600, undefined: 1 }[match[2]];
  return Number(match[1]) * scale;
}

function selects(selector, labels) {
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

// Deployment: replicas, spreading, priority, hardening, probes, ports, drain.
export function assertDeployment(objects, { namespace, replicas, antiAffinity: mode = "soft" }) {
  const deployment = findOne(objects, "Deployment");
  const spec = deployment.spec;
  const pod = spec.template.spec;
  const labels = spec.template.metadata.labels;
  assert.equal(deployment.metadata.namespace, namespace, "Deployment namespace");
  assert.equal(spec.replicas, replicas, "Deployment replicas");
  assert.ok(selects(spec.selector.matchLabels, labels), "the Deployment selects its own pods");
  assert.equal(spec.strategy.rollingUpdate.maxUnavailable, 0, "rollouts keep every replica");

  const antiAffinity = pod.affinity?.podAntiAffinity;
  if (mode === "none") {
    assert.equal(antiAffinity, undefined, "no pod anti-affinity");
  } else {
    const terms =
      mode === "hard"
        ? antiAffinity?.requiredDuringSchedulingIgnoredDuringExecution
        : antiAffinity?.preferredDuringSchedulingIgnoredDuringExecution?.map((t) => t.podAffinityTerm);
    assert.ok(terms?.length, `pod anti-affinity (${mode}) is set`);
    for (const term of terms) {
      assert.equal(term.topologyKey, "kubernetes.io/hostname", "anti-affinity spreads over nodes");
      assert.ok(selects(term.labelSelector.matchLabels, labels), "anti-affinity selects our pods");
    }
  }
  assert.equal(pod.priorityClassName, "system-cluster-critical", "priorityClassName");

  // Pod Security Standard "restricted", and more.
  assert.equal(pod.hostNetwork ?? false, false, "no hostNetwork");
  assert.equal(pod.hostPID ?? false, false, "no hostPID");
  assert.equal(pod.hostIPC ?? false, false, "no hostIPC");
  assert.equal(pod.securityContext.runAsNonRoot, true, "pod runAsNonRoot");
  assert.ok(pod.securityContext.runAsUser > 0, "pod runAsUser is not root");
  assert.equal(pod.securityContext.seccompProfile?.type, "RuntimeDefault", "seccomp RuntimeDefault");
  for (const volume of pod.volumes ?? []) {
    const types = Object.keys(volume).filter((k) => k !== "name");
    for (const type of types) {
      assert.ok(["secret", "configMap", "emptyDir", "projected"].includes(type),
        `volume ${volume.name} is ${type}, not a restricted volume type`);
    }
  }
  const c = container(objects);
  const sc = c.securityContext;
  assert.equal(sc.allowPrivilegeEscalation, false, "allowPrivilegeEscalation false");
  assert.equal(sc.readOnlyRootFilesystem, true, "readOnlyRootFilesystem");
  assert.equal(sc.privileged ?? false, false, "not privileged");
  assert.deepEqual(sc.capabilities?.drop, ["ALL"], "all capabilities dropped");
  assert.equal(sc.capabilities?.add, undefined, "no capabilities added");
  assert.ok(c.resources?.requests?.cpu && c.resources?.requests?.memory, "cpu and memory requests");
  assert.ok(c.resources?.limits?.memory, "a memory limit");

  // Ports: the container ports are where the server listens.
  const args = serverArgs(objects);
  const port = (name) => c.ports.find((p) => p.name === name)?.containerPort;
  assert.equal(args.get("listen")?.replace(/^.*:/, ""), String(port("https")), "--listen port = https port");
  assert.equal(args.get("metrics-listen")?.replace(/^.*:/, ""), String(port("metrics")),
    "--metrics-listen port = metrics port");
  for (const [probe, path] of [["livenessProbe", "/healthz"], ["readinessProbe", "/readyz"]]) {
    assert.equal(c[probe]?.httpGet?.path, path, `${probe} path`);
    assert.ok([port("metrics"), "metrics"].includes(c[probe].httpGet.port), `${probe} on the metrics port`);
    assert.equal(c[probe].httpGet.scheme ?? "HTTP", "HTTP", `${probe} is plain HTTP`);
  }

  // Draining after SIGTERM (shutdown delay, then idle connections) ends before SIGKILL.
  const drain = seconds(args.get("shutdown-delay") ?? "5s") + seconds(args.get("idle-timeout") ?? "10s");
  assert.ok(pod.terminationGracePeriodSeconds > drain,
    `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} must exceed shutdown-delay + idle-timeout = ${drain}s`);

  // The certificate files are the mounted Secret's.
  const tlsMount = c.volumeMounts.find((m) => m.name === "tls");
  assert.ok(tlsMount?.readOnly, "the tls volume is mounted read-only");
  assert.equal(args.get("tls-cert"), `${tlsMount.mountPath}/tls.crt`, "--tls-cert is in the tls mount");
  assert.equal(args.get("tls-key"), `${tlsMount.mountPath}/tls.key`, "--tls-key is in the tls mount");
  const tlsVolume = pod.volumes.find((v) => v.name === "tls");
  assert.ok(tlsVolume?.secret?.secretName, "the tls volume is a Secret");
  assert.equal(pod.serviceAccountName, serviceAccountName(objects), "the pod runs as the chart's ServiceAccount");
  return { deployment, pod, container: c, args, tlsSecretName: tlsVolume.secret.secretName };
}

function serviceAccountName(objects) {
  const binding = findOne(objects.filter((o) => !isNodeFactsObject(o)), "ClusterRoleBinding");
  return binding.subjects[0].name;
}

// Service, PDB: they select exactly the Deployment's pods.
export function assertServiceAndPdb(objects, { pdb = true } = {}) {
  const c = container(objects);
  const service = findOne(objects, "Service");
  const labels = findOne(objects, "Deployment").spec.template.metadata.labels;
  assert.ok(dns1123Label.test(service.metadata.name) && /^[a-z]/.test(service.metadata.name),
    "the Service name is a DNS-1035 label");
  assert.ok(selects(service.spec.selector, labels), "the Service selects the pods");
  const https = service.spec.ports.find((p) => p.name === "https");
  assert.ok(https, "the Service has an https port");
  const target = https.targetPort;
  assert.ok(target === "https" || target === c.ports.find((p) => p.name === "https").containerPort,
    "the Service's https port targets the container's https port");
  for (const daemonSet of findAll(objects, "DaemonSet")) {
    assert.ok(!selects(service.spec.selector, daemonSet.spec.template.metadata.labels),
      `the Service does not select ${daemonSet.metadata.name}'s pods`);
  }
  const pdbs = findAll(objects, "PodDisruptionBudget");
  if (pdb) {
    for (const daemonSet of findAll(objects, "DaemonSet")) {
      assert.ok(!selects(pdbs[0].spec.selector.matchLabels, daemonSet.spec.template.metadata.labels),
        `the PDB does not select ${daemonSet.metadata.name}'s pods`);
    }
    assert.equal(pdbs.length, 1, "a PodDisruptionBudget");
    assert.ok(selects(pdbs[0].spec.selector.matchLabels, labels), "the PDB selects the pods");
    assert.ok(pdbs[0].spec.maxUnavailable !== undefined || pdbs[0].spec.minAvailable !== undefined);
    assert.notEqual(pdbs[0].spec.maxUnavailable, 0, "the PDB does not block every eviction");
  }
  return service;
}

// The node-facts agent's objects carry app.kubernetes.io/component: node-facts; the webhook's
// invariants are about the rest.
export function isNodeFactsObject(o) {
  return o.metadata?.labels?.["app.kubernetes.io/component"] === "node-facts";
}

// RBAC: get/list/watch on pods and nodes, bound to the pods' ServiceAccount; with claims
// (--arbiter=claims), get/create/update on Leases in the release namespace; nothing more.
export function assertLeastPrivilege(allObjects, { namespace }) {
  const objects = allObjects.filter((o) => !isNodeFactsObject(o));
  const roles = findAll(objects, "Role");
  const roleBindings = findAll(objects, "RoleBinding");
  const claims = /--arbiter=claims/.test(JSON.stringify(findOne(objects, "Deployment")));
  assert.equal(roles.length, claims ? 1 : 0, "a Role only for the claims");
  assert.equal(roleBindings.length, roles.length, "each Role bound once");
  for (const role of roles) {
    assert.equal(role.metadata.namespace, namespace, "the claims' Role is the release namespace's");
    assert.deepEqual(role.rules,
      [{ apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "create", "update"] }],
      "Leases only: get, create, update (no list, watch or delete)");
    const binding = roleBindings[0];
    assert.equal(binding.metadata.namespace, namespace);
    assert.deepEqual(binding.roleRef,
      { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: role.metadata.name });
  }
  for (const account of findAll(objects, "ServiceAccount")) {
    assert.equal(account.automountServiceAccountToken, false,
      "the ServiceAccount gives its token only to pods that ask for it");
  }
  const role = findOne(objects, "ClusterRole");
  const allowed = new Set(["get", "list", "watch"]);
  const granted = new Set();
  // Events (--events=on): create, get and update events.k8s.io Events, nothing more; off: none.
  const events = /--events=on/.test(JSON.stringify(findOne(objects, "Deployment")));
  const eventRules = role.rules.filter((rule) => rule.apiGroups.includes("events.k8s.io"));
  assert.deepEqual(eventRules,
    events ? [{ apiGroups: ["events.k8s.io"], resources: ["events"], verbs: ["create", "get", "update"] }] : [],
    "Events: create, get, update when the server records them (no list, watch or delete)");
  for (const rule of role.rules.filter((r) => !eventRules.includes(r))) {
    assert.deepEqual(rule.apiGroups, [""], "only the core API group (and events.k8s.io for Events)");
    assert.equal(rule.nonResourceURLs, undefined, "no non-resource URLs");
    assert.equal(rule.resourceNames, undefined, "no resourceNames needed");
    for (const verb of rule.verbs) {
      assert.ok(allowed.has(verb), `ClusterRole grants verb ${verb}; only get/list/watch are needed`);
    }
    for (const resource of rule.resources) {
      assert.ok(["pods", "nodes"].includes(resource), `ClusterRole grants ${resource}; only pods and nodes`);
      for (const verb of rule.verbs) granted.add(`${verb} ${resource}`);
    }
  }
  for (const resource of ["pods", "nodes"]) {
    for (const verb of allowed) {
      assert.ok(granted.has(`${verb} ${resource}`), `the server needs ${verb} on ${resource}`);
    }
  }
  const binding = findOne(objects, "ClusterRoleBinding");
  assert.deepEqual(binding.roleRef, {
    apiGroup: "rbac.authorization.k8s.io",
    kind: "ClusterRole",
    name: role.metadata.name,
  });
  const sa = findOne(objects, "ServiceAccount");
  assert.deepEqual(binding.subjects, [
    { kind: "ServiceAccount", name: sa.metadata.name, namespace },
  ]);
  assert.equal(sa.metadata.namespace, namespace);
}

const createUpdate = ["CREATE", "UPDATE"];
const expectedRules = {
  "pods.cgpu-guard.io": { scope: "Namespaced", rules: [{ resources: ["pods"], operations: createUpdate }] },
  "bindings.cgpu-guard.io": {
    scope: "Namespaced",
    rules: [
      { resources: ["pods/binding"], operations: createUpdate },
      // The legacy POST /api/v1/namespaces/{ns}/bindings binds pods like pods/binding, but a rule
      // for one does not match the other; it is only ever created.
      { resources: ["bindings"], operations: ["CREATE"] },
    ],
  },
  "nodes.cgpu-guard.io": { scope: "Cluster", rules: [{ resources: ["nodes"], operations: createUpdate }] },
};

// The ValidatingWebhookConfiguration: what it intercepts, how, and where it sends it.
export function assertWebhooks(objects, { namespace, failurePolicy = "Ignore", timeoutSeconds = 3,
  excluded = [], matchConditions = true }) {
  const config = findOne(objects, "ValidatingWebhookConfiguration");
  const service = findOne(objects, "Service");
  const names = config.webhooks.map((w) => w.name);
  assert.deepEqual(names, Object.keys(expectedRules), "the three webhooks");
  for (const webhook of config.webhooks) {
    const at = `webhook ${webhook.name}`;
    assert.ok(webhook.name.split(".").length >= 3 && dns1123Subdomain.test(webhook.name),
      `${at}: the name is a fully qualified domain name`);
    assert.equal(webhook.sideEffects, "None", `${at}: sideEffects`);
    assert.deepEqual(webhook.admissionReviewVersions, ["v1", "v1beta1"], `${at}: admissionReviewVersions`);
    assert.equal(webhook.matchPolicy, "Equivalent", `${at}: matchPolicy`);
    assert.equal(webhook.failurePolicy, failurePolicy, `${at}: failurePolicy`);
    assert.equal(webhook.timeoutSeconds, timeoutSeconds, `${at}: timeoutSeconds`);
    assert.ok(webhook.timeoutSeconds >= 1 && webhook.timeoutSeconds <= 30, `${at}: timeoutSeconds 1-30`);
    assert.equal(webhook.clientConfig.url, undefined, `${at}: called through the Service`);
    assert.deepEqual(webhook.clientConfig.service, {
      name: service.metadata.name,
      namespace,
      path: "/validate",
      port: service.spec.ports.find((p) => p.name === "https").port,
    }, `${at}: clientConfig.service is the Service's https port, path /validate`);

    const expected = expectedRules[webhook.name];
    assert.equal(webhook.rules.length, expected.rules.length, `${at}: ${expected.rules.length} rule(s)`);
    expected.rules.forEach((expectedRule, i) => {
      const rule = webhook.rules[i];
      const where = `${at}, rule ${i}`;
      assert.deepEqual(rule.apiGroups, [""], `${where}: core group`);
      assert.deepEqual(rule.apiVersions, ["v1"], `${where}: v1`);
      assert.deepEqual(rule.resources, expectedRule.resources, `${where}: resources`);
      assert.deepEqual([...rule.operations].sort(), expectedRule.operations,
        `${where}: ${expectedRule.operations.join(" and ")} only`);
      assert.equal(rule.scope, expected.scope, `${where}: scope`);
      for (const resource of rule.resources) {
        assert.ok(!resource.includes("*"), `${where}: no wildcard resources`);
        assert.ok(!["nodes/status", "leases", "pods/status"].includes(resource),
          `${where}: never ${resource} (the kubelet's heartbeats)`);
      }
    });

    if (expected.scope === "Namespaced") {
      const notIn = (webhook.namespaceSelector?.matchExpressions ?? []).find(
        (e) => e.key === "kubernetes.io/metadata.name" && e.operator === "NotIn");
      assert.ok(notIn, `${at}: a namespaceSelector excluding namespaces by name`);
      for (const ns of ["kube-system", "kube-node-lease", namespace, ...excluded]) {
        assert.ok(notIn.values.includes(ns), `${at}: namespace ${ns} is excluded`);
      }
    }
    if (webhook.name === "bindings.cgpu-guard.io") {
      assert.equal(webhook.matchConditions, undefined,
        `${at}: no matchConditions (a Binding does not say what the pod requests)`);
      assert.equal(webhook.objectSelector, undefined, `${at}: no objectSelector (a Binding has no labels)`);
    } else if (matchConditions) {
      assert.ok(webhook.matchConditions?.length, `${at}: matchConditions`);
    } else {
      assert.equal(webhook.matchConditions, undefined, `${at}: no matchConditions`);
    }
  }
  return config;
}

// The certificate the API server will see: a SAN for <service>.<namespace>.svc.
export function serviceDnsName(objects) {
  const service = findOne(objects, "Service");
  return `${service.metadata.name}.${service.metadata.namespace}.svc`;
}

// The node-facts agent: a hardened DaemonSet on GPU nodes reading the host through read-only
// hostPath mounts, writing the labels the server reads, with get/patch on nodes and nothing else.
// Its liveness probe checks the heartbeat file the agent writes, in its one writable volume.
export function assertNodeFactsAgent(objects, { namespace, hostPaths, interval = "5m" }) {
  const agent = objects.filter(isNodeFactsObject);
  const daemonSet = findOne(agent, "DaemonSet");
  assert.equal(daemonSet.metadata.namespace, namespace);
  const pod = daemonSet.spec.template.spec;
  assert.ok(selects(daemonSet.spec.selector.matchLabels, daemonSet.spec.template.metadata.labels));
  assert.equal(pod.containers.length, 1);
  const c = pod.containers[0];
  assert.deepEqual(c.command, ["cgpu-guard"]);
  assert.equal(c.args[0], "node-facts");
  const args = new Map(c.args.slice(1).map((a) => {
    const match = /^--([a-z-]+)=(.*)$/s.exec(a);
    assert.ok(match, `agent argument ${a} is --flag=value`);
    return [match[1], match[2]];
  }));
  const server = serverArgs(objects);
  for (const label of ["cgpu-version-label", "driver-version-label", "toolkit-version-label"]) {
    assert.equal(args.get(label), server.get(label), `the agent writes the --${label} the server reads`);
  }
  assert.equal(args.get("interval"), interval);
  const nodeName = c.env.find((e) => e.name === "NODE_NAME");
  assert.equal(nodeName?.valueFrom?.fieldRef?.fieldPath, "spec.nodeName", "NODE_NAME is the pod's node");
  // Hardening: no privilege, nothing writable, read-only host mounts only.
  assert.equal(c.securityContext.allowPrivilegeEscalation, false);
  assert.equal(c.securityContext.readOnlyRootFilesystem, true);
  assert.equal(c.securityContext.privileged, false);
  assert.deepEqual(c.securityContext.capabilities.drop, ["ALL"]);
  assert.equal(c.securityContext.capabilities.add, undefined);
  assert.equal(pod.hostNetwork, undefined);
  assert.equal(pod.hostPID, undefined);
  const heartbeat = args.get("heartbeat-file");
  const heartbeatDir = heartbeat ? heartbeat.slice(0, heartbeat.lastIndexOf("/")) : undefined;
  if (c.livenessProbe) {
    assert.ok(heartbeat, "the agent writes the heartbeat its liveness probe checks");
    const command = c.livenessProbe.exec?.command ?? [];
    assert.deepEqual(command.slice(0, 3), ["cgpu-guard", "node-facts", "--alive"],
      "the probe is the agent binary's alive check");
    assert.ok(command.includes(`--heartbeat-file=${heartbeat}`),
      `the probe checks ${heartbeat}, the file the agent writes: ${command.join(" ")}`);
  } else {
    assert.equal(heartbeat, "", "without a probe the agent writes no heartbeat (the root is read-only)");
  }
  const root = args.get("host-root");
  const mounted = [];
  for (const mount of c.volumeMounts) {
    const volume = pod.volumes.find((v) => v.name === mount.name);
    if (heartbeatDir && mount.mountPath === heartbeatDir) {
      assert.ok(volume?.emptyDir, `${heartbeatDir}, the heartbeat's directory, is an emptyDir`);
      assert.notEqual(mount.readOnly, true, `${heartbeatDir} is writable`);
      continue;
    }
    assert.ok(volume?.hostPath, `${mount.name} is a hostPath volume`);
    assert.equal(mount.readOnly, true, `${volume.hostPath.path} is mounted read-only`);
    assert.equal(mount.mountPath, `${root}${volume.hostPath.path}`, "mounted where --host-root says");
    mounted.push(volume.hostPath.path);
  }
  assert.deepEqual(mounted, hostPaths);
  if (heartbeatDir) {
    assert.ok(c.volumeMounts.some((m) => m.mountPath === heartbeatDir),
      `${heartbeatDir}, the heartbeat's directory, is mounted: the root is read-only`);
  }
  // RBAC: get and patch nodes, bound to the agent's own ServiceAccount.
  const role = findOne(agent, "ClusterRole");
  assert.deepEqual(role.rules, [{ apiGroups: [""], resources: ["nodes"], verbs: ["get", "patch"] }]);
  const binding = findOne(agent, "ClusterRoleBinding");
  assert.equal(binding.roleRef.name, role.metadata.name);
  const sa = findOne(agent, "ServiceAccount");
  assert.equal(sa.automountServiceAccountToken, false, "the agent's token only where asked for");
  assert.equal(pod.automountServiceAccountToken, true, "the agent's pods ask for it");
  assert.deepEqual(binding.subjects, [{ kind: "ServiceAccount", name: sa.metadata.name, namespace }]);
  assert.equal(pod.serviceAccountName, sa.metadata.name);
  assert.notEqual(sa.metadata.name, findOne(objects.filter((o) => !isNodeFactsObject(o)), "ServiceAccount").metadata.name,
    "the agent and the webhook do not share an identity");
  return { daemonSet, pod, container: c, args };
}
