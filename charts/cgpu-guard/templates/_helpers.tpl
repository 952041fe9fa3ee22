{{/* Names: <release>-cgpu-guard, or just the release name when it already contains the chart's. */}}
{{- define "cgpu-guard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cgpu-guard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "cgpu-guard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cgpu-guard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cgpu-guard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cgpu-guard.labels" -}}
helm.sh/chart: {{ include "cgpu-guard.chart" . }}
{{ include "cgpu-guard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: admission-webhook
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "cgpu-guard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "cgpu-guard.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding tls.crt and tls.key (and ca.crt), whichever tls.mode makes it. */}}
{{- define "cgpu-guard.tlsSecretName" -}}
{{- if and (eq .Values.tls.mode "secret") .Values.tls.secret.name -}}
{{- .Values.tls.secret.name -}}
{{- else -}}
{{- printf "%s-tls" (include "cgpu-guard.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The name the API server connects to; the serving certificate must carry it as a SAN. */}}
{{- define "cgpu-guard.serviceDNSName" -}}
{{- printf "%s.%s.svc" (include "cgpu-guard.fullname" .) .Release.Namespace -}}
{{- end -}}

{{- define "cgpu-guard.image" -}}
{{- if not .Values.image.repository -}}
{{- fail "image.repository is empty: cgpu-guard publishes no image. Build one with the repository's Dockerfile, push it to a registry your nodes can pull from (ACR, say), and set image.repository (image.digest pins it): README \"Build and push the image\"" -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* A duration as the server takes it (500ms, 10s, 5m, 1h, or bare seconds) in seconds. */}}
{{- define "cgpu-guard.seconds" -}}
{{- $d := toString . -}}
{{- if hasSuffix "ms" $d -}}
{{- divf (trimSuffix "ms" $d | float64) 1000 -}}
{{- else if hasSuffix "h" $d -}}
{{- mulf (trimSuffix "h" $d | float64) 3600 -}}
{{- else if hasSuffix "m" $d -}}
{{- mulf (trimSuffix "m" $d | float64) 60 -}}
{{- else -}}
{{- trimSuffix "s" $d | float64 -}}
{{- end -}}
{{- end -}}

{{/* "true" when the webhooks carry matchConditions (webhook.matchConditions, Kubernetes >= 1.28). */}}
{{- define "cgpu-guard.useMatchConditions" -}}
{{- $mode := .Values.webhook.matchConditions -}}
{{- if or (eq $mode "enabled") (and (eq $mode "auto") (semverCompare ">=1.28.0-0" .Capabilities.KubeVersion.Version)) -}}
true
{{- end -}}
{{- end -}}

{{/*
CEL: does the container `c` share a GPU through cGPU? Its resources.limits holds an amount above
zero for aliyun.com/gpu-mem or aliyun.com/gpu-core.percentage: the test of ACK's GPU-sharing
schedulers and of the server (server/adapters/object_view_reader.h, where the sources are cited).
Only limits count (the API server refuses an extended-resource request without an equal limit)
and the caller applies it to spec.containers only (init containers do not count).

The amount is compared as text, not with the Kubernetes CEL quantity library. quantity() joined
the CEL base environment at 1.28 (kubernetes staging/src/k8s.io/apiserver/pkg/cel/environment/
base.go), but an API server checks a new expression against the environment of the release before
its own (DefaultCompatibilityVersion, n-1), so a 1.28 API server refuses quantity() in a
matchCondition and 1.29 is the first to take it; this chart renders matchConditions from 1.28
(cgpu-guard.useMatchConditions). The text test is exact for what the API server evaluates: it
serialises every quantity in canonical form (kubernetes/apimachinery
pkg/api/resource/quantity.go: zero is always "0", a sign only on a negative amount), and it
refuses negative extended-resource amounts (pkg/apis/core/validation), so an amount is above zero
exactly when it is not "0" and does not start with "-".
*/}}
{{- define "cgpu-guard.celContainerSharesGpu" -}}
{{- $limits := printf "%s.resources.limits" . -}}
{{- $terms := list -}}
{{- range $resource := list "aliyun.com/gpu-mem" "aliyun.com/gpu-core.percentage" -}}
{{- $amount := printf "%s[%s]" $limits (squote $resource) -}}
{{- $terms = append $terms (printf "(%s in %s && %s != '0' && !%s.startsWith('-'))" (squote $resource) $limits $amount $amount) -}}
{{- end -}}
{{- printf "has(%s.resources) && has(%s) && (%s)" . $limits (join " || " $terms) -}}
{{- end -}}

{{/*
CEL: does `obj` (a Node) have cGPU isolation on? Any of the rules' cgpu_enabled_labels, unless the
isolation_disabled_label is set. The labels are the built-in rules' (rules/cgpu-rules.yaml), or
those of rules.override when it names them.
*/}}
{{- define "cgpu-guard.celNodeCgpuEnabled" -}}
{{- $obj := .obj -}}
{{- $enabled := list (dict "key" "ack.node.gpu.schedule" "value" "cgpu") (dict "key" "ack.node.gpu.schedule" "value" "core_mem") (dict "key" "cgpu" "value" "true") -}}
{{- $disabled := dict "key" "cgpu.disable.isolation" "value" "true" -}}
{{- if .root.Values.rules.override -}}
{{- $rules := fromYaml .root.Values.rules.override -}}
{{- if hasKey $rules "Error" -}}
{{- fail (printf "rules.override is not YAML: %s" $rules.Error) -}}
{{- end -}}
{{- if hasKey $rules "cgpu_enabled_labels" -}}
{{- $enabled = $rules.cgpu_enabled_labels -}}
{{- end -}}
{{- if hasKey $rules "isolation_disabled_label" -}}
{{- $disabled = $rules.isolation_disabled_label -}}
{{- end -}}
{{- end -}}
{{- $labels := printf "%s.metadata.labels" $obj -}}
{{- $terms := list -}}
{{- range $enabled -}}
{{- $terms = append $terms (printf "(%s in %s && %s[%s] == %s)" (squote .key) $labels $labels (squote .key) (squote (toString .value))) -}}
{{- end -}}
{{- printf "has(%s) && (%s) && !(%s in %s && %s[%s] == %s)" $labels (join " || " $terms) (squote $disabled.key) $labels $labels (squote $disabled.key) (squote (toString $disabled.value)) -}}
{{- end -}}

{{/* namespaceSelector of the namespaced webhooks: never kube-system, kube-node-lease, our own. */}}
{{- define "cgpu-guard.namespaceSelector" -}}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values:
        {{- range (concat (list "kube-system" "kube-node-lease" .Release.Namespace) .Values.webhook.excludeNamespaces | uniq) }}
        - {{ . | quote }}
        {{- end }}
{{- end -}}

{{/* What every webhook of the configuration shares. */}}
{{- define "cgpu-guard.webhookCommon" -}}
admissionReviewVersions: ["v1", "v1beta1"]
sideEffects: None
matchPolicy: Equivalent
failurePolicy: {{ .root.Values.webhook.failurePolicy }}
timeoutSeconds: {{ .root.Values.webhook.timeoutSeconds }}
clientConfig:
  service:
    name: {{ include "cgpu-guard.fullname" .root }}
    namespace: {{ .root.Release.Namespace }}
    path: /validate
    port: {{ .root.Values.service.port }}
  {{- with .caBundle }}
  caBundle: {{ . }}
  {{- end }}
{{- end -}}

{{/* The node-facts agent: its own name, so the webhook's Service and PDB never select it. */}}
{{- define "cgpu-guard.nodeFacts.fullname" -}}
{{- printf "%s-node-facts" (include "cgpu-guard.fullname" . | trunc 52 | trimSuffix "-") -}}
{{- end -}}

{{- /* The agent's namespace: its own, "<release namespace>-node-facts", unless set. */ -}}
{{- define "cgpu-guard.nodeFacts.namespace" -}}
{{- default (printf "%s-node-facts" (.Release.Namespace | trunc 52 | trimSuffix "-")) .Values.nodeFacts.namespace -}}
{{- end -}}

{{- define "cgpu-guard.nodeFacts.serviceAccountName" -}}
{{- default (include "cgpu-guard.nodeFacts.fullname" .) .Values.nodeFacts.serviceAccount.name -}}
{{- end -}}

{{- define "cgpu-guard.nodeFacts.selectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-node-facts" (include "cgpu-guard.name" . | trunc 52 | trimSuffix "-") }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cgpu-guard.nodeFacts.labels" -}}
helm.sh/chart: {{ include "cgpu-guard.chart" . }}
{{ include "cgpu-guard.nodeFacts.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: node-facts
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/*
--arbiter: policy.arbiter, or, when empty, claims with more than one replica and none with one.
*/}}
{{- define "cgpu-guard.arbiter" -}}
{{- .Values.policy.arbiter | default (ternary "claims" "none" (gt (int .Values.replicaCount) 1)) -}}
{{- end }}

{{/*
An alert's labels: its severity, then metrics.prometheusRule.additionalLabels (which cannot
replace the severity), then `extra` (labels the alert's expression does not carry).
*/}}
{{- define "cgpu-guard.alertLabels" -}}
{{- $labels := merge (dict "severity" .alert.severity) (.extra | default dict) (deepCopy .values.additionalLabels) -}}
{{- toYaml $labels -}}
{{- end }}

{{/*
Values that would let an outage of cgpu-guard stop the cluster, refused at render time. Under
failurePolicy Fail the API server refuses every request a webhook matches while no replica
answers; these are the combinations where that reaches beyond cGPU pods, or is certain to happen.
*/}}
{{- define "cgpu-guard.refuseDangerousValues" -}}
{{- if eq .Values.webhook.failurePolicy "Fail" -}}
{{- if not (include "cgpu-guard.useMatchConditions" .) -}}
{{- fail (printf "webhook.failurePolicy=Fail without matchConditions (webhook.matchConditions=%s, Kubernetes %s) sends every node update (cordon, drain, taints) and every pod to the webhook: an outage of cgpu-guard would block them all. Use failurePolicy=Ignore, or matchConditions (Kubernetes 1.28 or later; webhook.matchConditions=auto or enabled)" .Values.webhook.matchConditions .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- if and (eq .Values.tls.mode "secret") (not .Values.tls.secret.caBundle) -}}
{{- fail "webhook.failurePolicy=Fail with tls.mode=secret and no tls.secret.caBundle: the API server could not verify the webhook's certificate, so every call would fail and every pod binding in the cluster would be refused. Set tls.secret.caBundle (base64 of the CA that signed the Secret's certificate; deploy/tls.sh prints it), or install with Ignore first" -}}
{{- end -}}
{{- if lt (int .Values.replicaCount) 2 -}}
{{- fail (printf "webhook.failurePolicy=Fail with replicaCount=%d: every pod binding outside the excluded namespaces waits on the webhook, so a restart, an upgrade or a node drain of the one replica stops scheduling cluster-wide. Run at least 2 replicas, or failurePolicy=Ignore" (int .Values.replicaCount)) -}}
{{- end -}}
{{- if not .Values.podDisruptionBudget.enabled -}}
{{- fail "webhook.failurePolicy=Fail with podDisruptionBudget.enabled=false: a node drain may evict every replica at once, and every pod binding is refused until one is back. Keep the PodDisruptionBudget, or failurePolicy=Ignore" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The podAntiAffinity preset (values podAntiAffinity: soft or hard) for the webhook pods. */}}
{{- define "cgpu-guard.podAntiAffinity" -}}
{{- if eq .Values.podAntiAffinity "hard" -}}
requiredDuringSchedulingIgnoredDuringExecution:
  - topologyKey: kubernetes.io/hostname
    labelSelector:
      matchLabels:
        {{- include "cgpu-guard.selectorLabels" . | nindent 8 }}
{{- else -}}
preferredDuringSchedulingIgnoredDuringExecution:
  - weight: 100
    podAffinityTerm:
      topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "cgpu-guard.selectorLabels" . | nindent 10 }}
{{- end -}}
{{- end -}}

{{/*
The generated-TLS Secret as the cluster holds it now (YAML; "{}" when there is none, and under
`helm template`, which reads no cluster). Its own template so that the chart's tests can stand an
existing Secret in for the lookup (tests/deploy/chart.test.mjs, rotation).
*/}}
{{- define "cgpu-guard.existingTLSSecret" -}}
{{- toYaml (lookup "v1" "Secret" .Release.Namespace (include "cgpu-guard.tlsSecretName" .)) -}}
{{- end -}}

{{/*
Labels of a one-off helper of the release (the uninstall hook, the helm test), given
(dict "root" $ "component" "unregister"): a name of its own, so that no Service, PDB or
NetworkPolicy of the webhook selects its pod.
*/}}
{{- define "cgpu-guard.helperLabels" -}}
helm.sh/chart: {{ include "cgpu-guard.chart" .root }}
app.kubernetes.io/name: {{ printf "%s-%s" (include "cgpu-guard.name" .root | trunc 40 | trimSuffix "-") .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}
