{{/*
The release's object names: the release name when it already contains the chart's name
(`helm install sniffguard` gives `sniffguard`), else `<release>-sniffguard`; cut to the
63 characters a label value allows.
*/}}
{{- define "sniffguard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the agent's pods (never change on upgrade: a DaemonSet's selector is immutable). */}}
{{- define "sniffguard.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
The fd keeper's DaemonSet: `<fullname>-keeper`, the full name cut so that the whole
stays within 63 characters.
*/}}
{{- define "sniffguard.keeperName" -}}
{{- printf "%s-keeper" (include "sniffguard.fullname" . | trunc 56 | trimSuffix "-") -}}
{{- end -}}

{{/*
Labels that select the keeper's pods. Their name differs from the agent's, so that
neither the agent's DaemonSet nor the metrics Service (both select by
sniffguard.selectorLabels) takes a keeper pod for one of theirs.
*/}}
{{- define "sniffguard.keeperSelectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}-keeper
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "sniffguard.labels" -}}
{{ include "sniffguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* The policy text: the `policy` value, else the chart's files/sniffguard.toml. */}}
{{- define "sniffguard.policy" -}}
{{- if .Values.policy -}}
{{- .Values.policy -}}
{{- else -}}
{{- .Files.Get "files/sniffguard.toml" -}}
{{- end -}}
{{- end -}}

{{/*
The port of the policy's `[metrics] listen = "ADDRESS:PORT"`, or "" when it serves no
metrics. `listen` is the only key of that name in the policy format, so the first
`listen =` line is the metrics one.
*/}}
{{- define "sniffguard.metricsPort" -}}
{{- $line := regexFind "(?m)^[ \\t]*listen[ \\t]*=[ \\t]*\"[^\"]*:[0-9]+\"" (include "sniffguard.policy" .) -}}
{{- if $line -}}
{{- regexFind "[0-9]+\"$" $line | trimSuffix "\"" -}}
{{- end -}}
{{- end -}}

{{/* The image reference. */}}
{{- define "sniffguard.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* Whether the AppArmor profile goes into the securityContext field (Kubernetes 1.30+). */}}
{{- define "sniffguard.appArmorField" -}}
{{- $form := .Values.appArmor.form -}}
{{- if not (has $form (list "auto" "field" "annotation" "none")) -}}
{{- fail (printf "appArmor.form is %q: expected auto, field, annotation or none" $form) -}}
{{- end -}}
{{- if or (eq $form "field") (and (eq $form "auto") (semverCompare ">=1.30.0-0" .Capabilities.KubeVersion.Version)) -}}
true
{{- end -}}
{{- end -}}

{{/* Whether the AppArmor profile goes into the pod annotation (before Kubernetes 1.30). */}}
{{- define "sniffguard.appArmorAnnotation" -}}
{{- $form := .Values.appArmor.form -}}
{{- if or (eq $form "annotation") (and (eq $form "auto") (semverCompare "<1.30.0-0" .Capabilities.KubeVersion.Version)) -}}
true
{{- end -}}
{{- end -}}

{{/*
The node's runtime directory (runtimeDir): a plain absolute path (no `.` or `..`, no
trailing slash, no character a shell would read), since it is a hostPath, a mountPath
and a line the install step's shell writes into the node's runtime.env at once.
*/}}
{{- define "sniffguard.runtimeDir" -}}
{{- $dir := .Values.runtimeDir | toString -}}
{{- if or (not (regexMatch "^(/[A-Za-z0-9._-]+)+$" $dir)) (regexMatch "/\\.\\.?(/|$)" $dir) -}}
{{- fail (printf "runtimeDir is %q: expected a plain absolute path such as /run/sniffguard (letters, digits, . _ - between slashes; no . or .. component, no trailing slash)" $dir) -}}
{{- end -}}
{{- $dir -}}
{{- end -}}
