{{/* Names and labels. */}}
{{- define "logdistill.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "logdistill.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: consumer
{{- end -}}

{{- define "logdistill.teachSelectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: teach
{{- end -}}

{{- define "logdistill.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* repository:tag, or repository@digest when a digest pins it. Argument: dict image, tag. */}}
{{- define "logdistill.imageRef" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository .tag -}}
{{- end -}}
{{- end -}}

{{- define "logdistill.modelRoot" -}}/models{{- end -}}

{{- define "logdistill.configPath" -}}/etc/logdistill/config.yaml{{- end -}}

{{- define "logdistill.pvcName" -}}
{{- .Values.model.pvc.existingClaim | default (printf "%s-models" (include "logdistill.fullname" .)) -}}
{{- end -}}

{{/* The serve config file: the user's options plus the chart's two (model, label_store). */}}
{{- define "logdistill.serveConfig" -}}
{{- $config := deepCopy .Values.config -}}
{{- $root := include "logdistill.modelRoot" . -}}
{{- $_ := set $config "model" (printf "%s/current" $root) -}}
{{- if not (hasKey $config "label_store") -}}
{{- $_ := set $config "label_store" (ternary (printf "%s/label_store.sqlite" $root) "" (eq .Values.model.source "pvc")) -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{- define "logdistill.metricsPort" -}}
{{- .Values.config.metrics_port | default 9108 -}}
{{- end -}}

{{/* Kafka secrets as LOGDISTILL_<OPTION> env vars (optional keys: a Secret may hold only some). */}}
{{- define "logdistill.kafkaSecretEnv" -}}
{{- $name := .Values.kafkaSecret.name | default (printf "%s-kafka" (include "logdistill.fullname" .)) -}}
{{- if or .Values.kafkaSecret.name .Values.kafkaSecret.create }}
{{- range $option, $key := .Values.kafkaSecret.keys }}
- name: {{ printf "LOGDISTILL_%s" (upper $option) }}
  valueFrom:
    secretKeyRef:
      name: {{ $name }}
      key: {{ $key }}
      optional: true
{{- end }}
{{- end }}
{{- end -}}

{{/* Settings the chart refuses before anything is applied. */}}
{{- define "logdistill.validate" -}}
{{- if hasKey .Values.config "model" -}}
{{- fail "config.model is set by the chart (/models/current): choose the model with model.source/model.version" -}}
{{- end -}}
{{- range $option := list "sasl_plain_password" "ssl_password" -}}
{{- if hasKey $.Values.config $option -}}
{{- fail (printf "config.%s is a secret: put it in the Secret named by kafkaSecret.name" $option) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.retraining.enabled (ne .Values.model.source "pvc") -}}
{{- fail "retraining.enabled needs model.source: pvc (the CronJob writes new versions to the volume serve reads)" -}}
{{- end -}}
{{- if and .Values.keda.enabled (ne .Values.workload.kind "Deployment") -}}
{{- fail "keda.enabled scales a Deployment: set workload.kind: Deployment" -}}
{{- end -}}
{{- $shared := or (eq .Values.workload.kind "DaemonSet") (gt (int .Values.workload.replicas) 1) .Values.keda.enabled .Values.retraining.enabled .Values.teach.enabled -}}
{{- if and (eq .Values.model.source "pvc") $shared (not (has "ReadWriteMany" .Values.model.pvc.accessModes)) (not .Values.model.pvc.existingClaim) -}}
{{- fail "model.pvc.accessModes: several pods mount the model volume (replicas, DaemonSet, the retraining CronJob or the teach worker): use ReadWriteMany" -}}
{{- end -}}
{{- if and .Values.teach.enabled (eq .Values.teach.teacher "openai") (or (not .Values.teach.url) (not .Values.teach.model)) -}}
{{- fail "teach.teacher openai needs teach.url (the OpenAI-compatible base URL) and teach.model" -}}
{{- end -}}
{{- end -}}
