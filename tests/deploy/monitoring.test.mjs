// The chart's optional monitoring: the PrometheusRule (metrics.prometheusRule) and the Grafana
// dashboard ConfigMap (metrics.grafanaDashboard). Off by default; on, the rules pass `promtool
// check rules` and the unit tests of alerts.test-rules.yaml (`promtool test rules`), every
// PromQL expression of the rules and of the dashboard's panels parses, and every cgpu_guard_*
// name they read is one the built server exports on /metrics.
//
// Run by ctest (deploy.monitoring): node --test tests/deploy/monitoring.test.mjs

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";

import yaml from "js-yaml";

import { assertValidObjects } from "./invariants.mjs";
import {
  findAll,
  findOne,
  helmTemplate,
  helmTemplateError,
  helmTemplateErrorSoon,
  httpGet,
  once,
  promtoolPath,
  review,
  root,
  run,
  withServer,
} from "./lib.mjs";

const release = "cgpu-guard";
const namespace = "cgpu-guard";
const monitoringOn = [
  "--set", "metrics.serviceMonitor.enabled=true",
  "--set", "metrics.prometheusRule.enabled=true",
  "--set", "metrics.grafanaDashboard.enabled=true",
];

const rendered = once(() => helmTemplate({ release, namespace, args: monitoringOn }).objects);
const ruleSpec = () => findOne(rendered(), "PrometheusRule").spec;
const alertRules = () => ruleSpec().groups.flatMap((g) => g.rules).filter((r) => r.alert);
const dashboardConfigMap = (objects) =>
  findAll(objects, "ConfigMap").find((c) => c.metadata.name.endsWith("-dashboard"));
const dashboard = () => JSON.parse(Object.values(dashboardConfigMap(rendered()).data)[0]);

function withTempDir(fn) {
  const dir = mkdtempSync(join(tmpdir(), "cgpu-guard-rules-"));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function promtool(args, cwd) {
  const result = run(promtoolPath, args, { cwd });
  if (result.error?.code === "ENOENT") {
    throw new Error(`promtool not found at ${promtoolPath}: run scripts/install-deps.sh`);
  }
  return result;
}

function assertPromtoolPasses(args, cwd) {
  const result = promtool(args, cwd);
  assert.equal(result.status, 0, `promtool ${args.join(" ")}:\n${result.stdout}${result.stderr}`);
  return result.stdout;
}

// The dashboard's panel queries as PromQL: Grafana's interval variables become durations and
// its template variables (namespace, job) plain values, so promtool can parse them.
function dashboardExpressions() {
  const variables = new Set(dashboard().templating.list.map((v) => v.name));
  const intervals = { __rate_interval: "5m", __interval: "1m", __range: "1h" };
  const expressions = [];
  for (const panel of dashboard().panels.filter((p) => p.type !== "row")) {
    for (const target of panel.targets) {
      const expr = target.expr.replace(/\$\{?(\w+)\}?/g, (whole, name) => {
        if (name in intervals) return intervals[name];
        assert.ok(variables.has(name), `panel "${panel.title}" uses ${whole}, not a dashboard variable`);
        assert.notEqual(name, "datasource", `panel "${panel.title}": $datasource in a query`);
        return "x";
      });
      expressions.push({ where: `panel "${panel.title}" ${target.refId}`, expr });
    }
  }
  return expressions;
}

function ruleExpressions() {
  return alertRules().map((r) => ({ where: `alert ${r.alert}`, expr: r.expr }));
}

describe("off by default", () => {
  test("neither the PrometheusRule nor the dashboard ConfigMap is rendered", () => {
    const objects = helmTemplate({ release, namespace }).objects;
    assert.deepEqual(findAll(objects, "PrometheusRule"), []);
    assert.equal(dashboardConfigMap(objects), undefined);
    assert.ok(!objects.some((o) => o.metadata.labels?.grafana_dashboard), "no object for Grafana's sidecar");
  });
});

describe("alerts (metrics.prometheusRule)", () => {
  test("the objects pass the Kubernetes and Prometheus Operator schemas", async () => {
    await assertValidObjects(rendered());
  });

  test("in the release namespace, reading the series the ServiceMonitor scrapes", () => {
    const rule = findOne(rendered(), "PrometheusRule");
    assert.equal(rule.metadata.namespace, namespace);
    // The ServiceMonitor sets no jobLabel, so the Prometheus Operator names the job after the
    // Service it selects; its namespaceSelector gives the namespace.
    const monitor = findOne(rendered(), "ServiceMonitor");
    assert.equal(monitor.spec.jobLabel, undefined);
    const service = findOne(rendered(), "Service");
    assert.ok(Object.entries(monitor.spec.selector.matchLabels).every(([k, v]) => service.metadata.labels[k] === v));
    const matchers = `job="${service.metadata.name}",namespace="${monitor.spec.namespaceSelector.matchNames[0]}"`;
    for (const { where, expr } of ruleExpressions()) {
      const selectors = expr.match(/[a-z_:]+\{[^}]*\}/g) ?? [];
      assert.ok(selectors.length > 0, `${where}: no selector in ${expr}`);
      for (const selector of selectors) {
        assert.ok(selector.includes(matchers), `${where}: ${selector} lacks ${matchers}`);
      }
    }
  });

  test("every alert has a severity, a summary and a description", () => {
    const names = alertRules().map((r) => r.alert);
    assert.deepEqual(names, [
      "CgpuGuardDown", "CgpuGuardAdmissionErrors", "CgpuGuardBadRequests",
      "CgpuGuardClusterStateStale", "CgpuGuardCertificateExpiringSoon", "CgpuGuardIncompatibleNodes",
      "CgpuGuardGpusAtLimit", "CgpuGuardDenialBurst", "CgpuGuardLiveReadDeadlines",
    ]);
    for (const rule of alertRules()) {
      assert.ok(rule.labels.severity, `${rule.alert}: severity`);
      assert.ok(rule.annotations.summary && rule.annotations.description, `${rule.alert}: annotations`);
      assert.match(rule.for, /^\d+[smh]$/, `${rule.alert}: for`);
    }
  });

  test("promtool check rules accepts the rendered rules", () => {
    withTempDir((dir) => {
      writeFileSync(join(dir, "rules.yaml"), yaml.dump(ruleSpec()));
      assert.match(assertPromtoolPasses(["check", "rules", "rules.yaml"], dir), /SUCCESS: 9 rules found/);
    });
  });

  test("promtool test rules: each alert fires on its condition and stays quiet otherwise", () => {
    const tests = yaml.load(readFileSync(join(root, "tests/deploy/alerts.test-rules.yaml"), "utf8"));
    const rules = new Map(alertRules().map((r) => [r.alert, r]));
    const firing = new Set();
    const quiet = new Set();
    for (const group of tests.tests) {
      for (const testCase of group.alert_rule_test) {
        const rule = rules.get(testCase.alertname);
        assert.ok(rule, `alerts.test-rules.yaml tests ${testCase.alertname}, which the chart lacks`);
        (testCase.exp_alerts?.length ? firing : quiet).add(testCase.alertname);
        for (const alert of testCase.exp_alerts ?? []) {
          // promtool compares annotations exactly: take them from the rendered rule, with the
          // only template they use, {{ $labels.name }}, expanded from the alert's labels.
          alert.exp_annotations = Object.fromEntries(Object.entries(rule.annotations).map(([key, text]) => [
            key,
            text.replace(/\{\{ *\$labels\.(\w+) *\}\}/g, (_, name) => alert.exp_labels[name] ?? ""),
          ]));
          for (const text of Object.values(alert.exp_annotations)) {
            assert.ok(!text.includes("{{"), `${rule.alert}: a template this test cannot expand in ${text}`);
          }
        }
      }
    }
    assert.deepEqual([...rules.keys()].filter((name) => !firing.has(name)), [], "alerts with no firing case");
    assert.deepEqual([...rules.keys()].filter((name) => !quiet.has(name)), [], "alerts with no quiet case");
    withTempDir((dir) => {
      writeFileSync(join(dir, tests.rule_files[0]), yaml.dump(ruleSpec()));
      writeFileSync(join(dir, "alerts.test-rules.yaml"), yaml.dump(tests));
      assertPromtoolPasses(["test", "rules", "alerts.test-rules.yaml"], dir);
    });
  });

  test("per-alert values: off, for, severity, threshold, labels, selector", () => {
    const objects = helmTemplate({
      release: "gpu", namespace: "team-a",
      args: [
        "--set", "metrics.prometheusRule.enabled=true",
        "--set", "metrics.prometheusRule.selector=job=\"kubernetes-pods\"\\,namespace=\"team-a\"",
        "--set", "metrics.prometheusRule.labels.release=prometheus",
        "--set", "metrics.prometheusRule.additionalLabels.team=gpu-platform",
        "--set", "metrics.prometheusRule.additionalLabels.severity=ignored",
        "--set", "metrics.prometheusRule.alerts.gpusAtLimit.enabled=false",
        "--set", "metrics.prometheusRule.alerts.denials.threshold=100",
        "--set", "metrics.prometheusRule.alerts.denials.for=15m",
        "--set", "metrics.prometheusRule.alerts.denials.severity=page",
        "--set", "metrics.prometheusRule.alerts.certificateExpiry.days=30",
      ],
    }).objects;
    const rule = findOne(objects, "PrometheusRule");
    assert.equal(rule.metadata.namespace, "team-a");
    assert.equal(rule.metadata.labels.release, "prometheus");
    const alerts = new Map(rule.spec.groups.flatMap((g) => g.rules).map((r) => [r.alert, r]));
    assert.equal(alerts.has("CgpuGuardGpusAtLimit"), false);
    assert.equal(alerts.size, 8);
    const denials = alerts.get("CgpuGuardDenialBurst");
    assert.match(denials.expr, /\{job="kubernetes-pods",namespace="team-a",outcome="denied"\}.* > 100$/);
    assert.equal(denials.for, "15m");
    assert.deepEqual(denials.labels, { severity: "page", team: "gpu-platform" });
    assert.match(alerts.get("CgpuGuardCertificateExpiringSoon").expr, /< 30 \* 86400$/);
    assert.deepEqual(alerts.get("CgpuGuardDown").labels,
      { namespace: "team-a", severity: "critical", team: "gpu-platform" });
  });

  test("without a ServiceMonitor or a selector the chart refuses to guess the series", () => {
    const error = helmTemplateError({ args: ["--set", "metrics.prometheusRule.enabled=true"] });
    assert.match(error, /metrics.prometheusRule needs to know which series are this release's/);
  });

  test("the certificate alert says how to renew in each tls.mode", () => {
    const description = (mode) => helmTemplate({
      release, namespace, args: [...monitoringOn, "--set", `tls.mode=${mode}`,
        ...(mode === "secret" ? ["--set", "tls.secret.caBundle=LS0tCg=="] : [])],
    }).objects.filter((o) => o.kind === "PrometheusRule")[0].spec.groups[0].rules
      .find((r) => r.alert === "CgpuGuardCertificateExpiringSoon").annotations.description;
    assert.match(description("generate"), /delete secret cgpu-guard-tls\) and run helm upgrade/);
    assert.match(description("certManager"), /describe certificate cgpu-guard-tls/);
    assert.match(description("secret"), /deploy\/tls.sh/);
  });
});

describe("dashboard (metrics.grafanaDashboard)", () => {
  test("a ConfigMap with the sidecar's label, the dashboard's JSON inside", () => {
    const map = dashboardConfigMap(rendered());
    assert.equal(map.metadata.namespace, namespace);
    assert.equal(map.metadata.labels.grafana_dashboard, "1");
    assert.equal(map.metadata.annotations, undefined, "no folder annotation unless a folder is set");
    assert.deepEqual(Object.keys(map.data), ["cgpu-guard.json"]);
    const board = dashboard();
    assert.equal(board.uid, "cgpu-guard");
    assert.deepEqual(board, JSON.parse(readFileSync(join(root, "charts/cgpu-guard/dashboards/cgpu-guard.json"), "utf8")),
      "the chart's file, unchanged");
  });

  test("label, namespace and folder follow the values", () => {
    const objects = helmTemplate({
      release, namespace, args: [
        "--set", "metrics.grafanaDashboard.enabled=true",
        "--set", "metrics.grafanaDashboard.labelKey=example.com/dashboard",
        "--set", "metrics.grafanaDashboard.labelValue=cgpu",
        "--set", "metrics.grafanaDashboard.namespace=monitoring",
        "--set", "metrics.grafanaDashboard.folder=GPU sharing",
        "--set", "metrics.grafanaDashboard.folderAnnotation=grafana_dashboard_folder",
      ],
    }).objects;
    const map = dashboardConfigMap(objects);
    assert.equal(map.metadata.namespace, "monitoring");
    assert.equal(map.metadata.labels["example.com/dashboard"], "cgpu");
    assert.equal(map.metadata.labels.grafana_dashboard, undefined);
    assert.deepEqual(map.metadata.annotations, { grafana_dashboard_folder: "GPU sharing" });
  });

  test("a datasource variable, and every panel and query uses it", () => {
    const board = dashboard();
    const variable = board.templating.list.find((v) => v.name === "datasource");
    assert.deepEqual([variable.type, variable.query], ["datasource", "prometheus"]);
    const panels = board.panels.filter((p) => p.type !== "row");
    assert.ok(panels.length >= 15, `${panels.length} panels`);
    for (const panel of panels) {
      assert.deepEqual(panel.datasource, { type: "prometheus", uid: "${datasource}" }, panel.title);
      assert.ok(panel.targets.length > 0, `${panel.title}: no query`);
      for (const target of panel.targets) {
        assert.deepEqual(target.datasource, panel.datasource, `${panel.title} ${target.refId}`);
      }
    }
    for (const variable of board.templating.list.filter((v) => v.type === "query")) {
      assert.deepEqual(variable.datasource, { type: "prometheus", uid: "${datasource}" }, variable.name);
    }
    const ids = board.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, "panel ids are unique");
  });

  test("the panels show what operators watch", () => {
    const text = dashboardExpressions().map((e) => e.expr).join("\n");
    for (const needed of [
      "cgpu_guard_admission_requests_total", "cgpu_guard_decision_duration_seconds_bucket",
      "cgpu_guard_policy_decisions_total", "cgpu_guard_cluster_nodes", "cgpu_guard_gpus_in_use",
      "cgpu_guard_gpus_at_limit", "cgpu_guard_gpu_pods_max", "cgpu_guard_cluster_state_synced",
      "cgpu_guard_cluster_state_stale", "cgpu_guard_watch_down_seconds", "cgpu_guard_live_reads_total",
      "cgpu_guard_live_read_duration_seconds_bucket", "cgpu_guard_claims_total",
      "cgpu_guard_tls_certificate_expiry_timestamp_seconds", "cgpu_guard_admission_shed_total",
    ]) {
      assert.ok(text.includes(needed), `no panel reads ${needed}`);
    }
  });

  test("every panel query parses (promtool check rules on them as recording rules)", () => {
    const expressions = dashboardExpressions();
    const groups = [{
      name: "dashboard",
      rules: expressions.map((e, i) => ({ record: `dashboard:query_${i}`, expr: e.expr })),
    }];
    withTempDir((dir) => {
      writeFileSync(join(dir, "dashboard.yaml"), yaml.dump({ groups }));
      const result = promtool(["check", "rules", "dashboard.yaml"], dir);
      const failed = result.status !== 0 ? expressions.map((e) => `${e.where}: ${e.expr}`).join("\n") : "";
      assert.equal(result.status, 0, `${result.stdout}${result.stderr}\nqueries:\n${failed}`);
    });
  });
});

describe("the names the rules and the dashboard read are the server's", () => {
  // A POST to the webhook port for a path it does not serve: counted as a bad request.
  function postToWrongPath(port, caPem) {
    return new Promise((resolve, reject) => {
      const req = request({
        host: "127.0.0.1", port, path: "/no-such-path", method: "POST", ca: caPem, agent: false,
        servername: "cgpu-guard.cgpu-guard.svc", headers: { "Content-Type": "application/json", "Content-Length": 2 },
        timeout: 5000,
      }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode));
      });
      req.on("error", reject);
      req.on("timeout", () => req.destroy(new Error("no answer in 5s")));
      req.end("{}");
    });
  }

  // name -> type, from the `# TYPE name type` lines of /metrics.
  function exportedFamilies(exposition) {
    const families = new Map();
    for (const match of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) families.set(match[1], match[2]);
    return families;
  }

  // Whether `name` is exported: a family's own name, or a histogram's _bucket, _sum or _count.
  function exported(families, name) {
    if (families.has(name)) return true;
    const base = name.replace(/_(bucket|sum|count)$/, "");
    return base !== name && families.get(base) === "histogram";
  }

  test("every cgpu_guard_* name in a rule or a panel is a family /metrics exports", async () => {
    const uses = [...ruleExpressions(), ...dashboardExpressions()].flatMap(({ where, expr }) =>
      [...expr.matchAll(/\bcgpu_guard_[a-zA-Z0-9_]+/g)].map(([name]) => ({ where, name })));
    assert.ok(uses.length > 30, `only ${uses.length} names found`);
    const missing = (families) => uses.filter(({ name }) => !exported(families, name));
    const secret = findOne(rendered(), "Secret");
    let families;
    await withServer(secret.data, async (port, metricsPort, caPem) => {
      // Some families have children only once something is counted (bad requests by reason,
      // policy decisions by reason and outcome) and export no TYPE line before: a review and a
      // request for a wrong path make them appear. Each is counted before its answer is sent.
      const answer = await review(port, "cgpu-guard.cgpu-guard.svc", caPem);
      assert.equal(answer.status, 200);
      assert.equal(await postToWrongPath(port, caPem), 404);
      // The per-collection watch gauges are set by the cluster-state ticker, once a second
      // (server/shell/serve_command.cc), which may not have run yet when /readyz first passes:
      // scrape until every name is there, or until the deadline, then judge the last scrape.
      const deadline = Date.now() + 10000;
      for (;;) {
        const scraped = await httpGet(metricsPort, "/metrics");
        assert.equal(scraped.status, 200);
        families = exportedFamilies(scraped.body);
        if (missing(families).length === 0 || Date.now() > deadline) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    });
    assert.ok(families.has("cgpu_guard_policy_decisions_total") && families.has("cgpu_guard_admission_bad_requests_total"),
      `the review and the bad request were counted: ${[...families.keys()].join(" ")}`);
    assert.deepEqual(missing(families).map(({ where, name }) => `${where}: ${name}`), [],
      `names the server does not export (it exports ${[...families.keys()].join(", ")})`);
  });
});

describe("values.schema.json refuses bad monitoring values", () => {
  const cases = [
    [["--set-string", "metrics.prometheusRule.enabled=yes"], /prometheusRule\/enabled': got string, want boolean/],
    [["--set", "metrics.prometheusRule.alerts.down.for=5min"], /alerts\/down\/for'/],
    [["--set-string", "metrics.prometheusRule.alerts.denials.threshold=many"], /denials\/threshold': got string, want number/],
    [["--set", "metrics.prometheusRule.alerts.denials.threshold=-1"], /denials\/threshold'/],
    [["--set", "metrics.prometheusRule.alerts.down.severity="], /down\/severity'/],
    [["--set", "metrics.prometheusRule.alerts.down.page=true"], /additional properties 'page' not allowed/],
    [["--set", "metrics.prometheusRule.additionalLabels.bad-name=x"], /invalid propertyName 'bad-name'/],
    [["--set-json", "metrics.prometheusRule.selector=\"{job=\\\"x\\\"}\""], /prometheusRule\/selector'/],
    [["--set-json", "metrics.grafanaDashboard.labelValue=1"], /labelValue': got number, want string/],
    [["--set-string", "metrics.grafanaDashboard.enabled=true1"], /grafanaDashboard\/enabled': got string, want boolean/],
    [["--set", "metrics.grafanaDashboard.namespace=Monitoring"], /grafanaDashboard\/namespace'/],
  ];
  const answers = cases.map(([args]) => helmTemplateErrorSoon({ args }));
  cases.forEach(([args, message], i) => {
    test(args.join(" "), async () => {
      assert.match(await answers[i], message);
    });
  });
});
