"""Training logs from a Kubernetes cluster, read through the API server with the official client.

Pods are listed by namespace and label selector (the API server filters: `list_namespaced_pod`),
then every container's log is read (`read_namespaced_pod_log`, the call behind `kubectl logs`),
bounded by since_seconds / tail_lines / limit_bytes so a chatty pod cannot flood the corpus.
Each line becomes a LogRecord carrying its namespace, pod and container, the names a Fluent Bit
or Vector envelope gives `serve` (service/records.py).

A container whose log cannot be read (still waiting to start, gone since the listing, forbidden)
is skipped and reported; only failing to reach the cluster or to list the pods is an error.

Credentials: a kubeconfig file when one is given; else the pod's service account when running in
a cluster (a CronJob needs `get`/`list` on pods and `get` on pods/log in the namespace); else the
default kubeconfig ($KUBECONFIG or ~/.kube/config).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from service.masking import template_key
from service.parsing import parse_line
from training.corpus.readers import LogRecord

REQUEST_TIMEOUT_S = 60
# What the API server puts before each line with timestamps=true: RFC 3339 with nanoseconds.
TIMESTAMP_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) ")


@dataclass
class LogQuery:
    namespace: str
    selector: str = ""               # label selector, as kubectl -l takes it ("app=web,tier!=db")
    since_seconds: int | None = None
    tail_lines: int | None = None
    limit_bytes: int | None = None   # per container
    timestamps: bool = False         # ask for them; kept in meta, not in the line (serve never sees them)


@dataclass
class ContainerLogs:
    pod: str
    container: str
    lines: int = 0
    error: str | None = None         # why this container was skipped


@dataclass
class Collection:
    records: list[LogRecord] = field(default_factory=list)
    containers: list[ContainerLogs] = field(default_factory=list)

    def summary(self) -> dict:
        failed = [c for c in self.containers if c.error]
        return {"pods": len({c.pod for c in self.containers}), "containers": len(self.containers),
                "lines": len(self.records),
                "skipped": [{"pod": c.pod, "container": c.container, "error": c.error} for c in failed]}


def api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    if kubeconfig:
        return config.new_client_from_config(config_file=kubeconfig, context=context, persist_config=False)
    try:
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
    except config.ConfigException:  # not in a pod: the default kubeconfig
        return config.new_client_from_config(context=context, persist_config=False)


def collect_pod_logs(api: client.ApiClient, query: LogQuery) -> Collection:
    """Every container's log of the selected pods, as records; failed containers are reported."""
    core = client.CoreV1Api(api)
    pods = core.list_namespaced_pod(query.namespace, label_selector=query.selector or None,
                                    _request_timeout=REQUEST_TIMEOUT_S)
    collection = Collection()
    for pod in sorted(pods.items, key=lambda p: p.metadata.name):
        for container in containers(pod):
            logs = ContainerLogs(pod.metadata.name, container)
            collection.containers.append(logs)
            try:
                text = read_log(core, query, pod.metadata.name, container)
            except ApiException as exc:
                logs.error = api_error(exc)
                continue
            for line in text.splitlines():
                rec = to_record(line, query, pod.metadata.name, container)
                if rec is not None:
                    collection.records.append(rec)
                    logs.lines += 1
    return collection


def containers(pod) -> list[str]:
    """Init containers first (they ran first), then the app containers, in spec order."""
    spec = pod.spec
    return [c.name for c in (spec.init_containers or [])] + [c.name for c in spec.containers]


def read_log(core: client.CoreV1Api, query: LogQuery, pod: str, container: str) -> str:
    # Raw bytes, decoded here: a log may hold bytes that are not UTF-8, which must not fail the read.
    response = core.read_namespaced_pod_log(
        pod, query.namespace, container=container, since_seconds=query.since_seconds,
        tail_lines=query.tail_lines, limit_bytes=query.limit_bytes, timestamps=query.timestamps or None,
        _preload_content=False, _request_timeout=REQUEST_TIMEOUT_S)
    try:
        return response.data.decode("utf-8", errors="replace")
    finally:
        response.release_conn()


def to_record(line: str, query: LogQuery, pod: str, container: str) -> LogRecord | None:
    meta = {"kubernetes": {"namespace": query.namespace, "pod": pod, "container": container}}
    if query.timestamps:
        match = TIMESTAMP_RE.match(line)
        if match:
            meta["timestamp"] = match.group(1)
            line = line[match.end():]
    if not line.strip():
        return None
    return LogRecord(text=line, source=f"k8s:{query.namespace}/{pod}/{container}",
                     group=template_key(parse_line(line)), meta=meta)


def api_error(exc: ApiException) -> str:
    """The API server's own message (a Status object) with the HTTP status."""
    message = exc.reason or ""
    try:
        message = json.loads(exc.body).get("message") or message
    except (TypeError, ValueError, AttributeError):
        pass
    return f"{exc.status}: {message}"
