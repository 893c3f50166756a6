"""A local HTTP server that speaks the two Kubernetes API endpoints the log collector uses:

    GET /api/v1/namespaces/{ns}/pods?labelSelector=...          → a v1 PodList (filtered by labels)
    GET /api/v1/namespaces/{ns}/pods/{pod}/log?container=...     → text/plain, honouring tailLines,
                                                                    limitBytes and timestamps

so training/corpus/k8s_logs.py is tested through the official `kubernetes` client, configured by a real
kubeconfig file, over a real socket. Errors are v1 Status objects, as the API server sends them
(401 without the bearer token, 404 for an unknown pod or container, 400 for a container that is
waiting to start). Every request is recorded (path and query) for the tests to inspect.

    server = FakeApiServer(token="t0k").start()
    server.add_pod("default", "web-1", labels={"app": "web"}, logs={"app": "line 1\\nline 2\\n"})
    server.add_pod("default", "web-2", labels={"app": "web"}, logs={"app": None})   # None: waiting
    server.write_kubeconfig(path)
    server.stop()
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import yaml

LOG_TIMESTAMP = "2026-11-30T04:00:00.000000000Z"


class FakeApiServer:
    def __init__(self, token: str = "test-token"):
        self.token = token
        self.pods: dict[tuple[str, str], dict] = {}   # (namespace, name) -> {"labels", "logs"}
        self.requests: list[tuple[str, dict]] = []    # (path, query) per request
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> "FakeApiServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def add_pod(self, namespace: str, name: str, labels: dict, logs: dict[str, str | None],
                init_logs: dict[str, str | None] | None = None) -> None:
        """logs: container -> log text, or None for a container still waiting to start (400)."""
        self.pods[(namespace, name)] = {"labels": labels, "logs": logs, "init_logs": init_logs or {}}

    def write_kubeconfig(self, path) -> None:
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": self.url}}],
            "users": [{"name": "test", "user": {"token": self.token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
        }))

    # ---- the API --------------------------------------------------------------------------

    def pod_object(self, namespace: str, name: str) -> dict:
        pod = self.pods[(namespace, name)]
        waiting = [c for c, text in pod["logs"].items() if text is None]
        return {
            "metadata": {"name": name, "namespace": namespace, "labels": pod["labels"],
                         "uid": f"uid-{namespace}-{name}", "resourceVersion": "1"},
            "spec": {"containers": [{"name": c, "image": f"example/{c}:1"} for c in pod["logs"]],
                     "initContainers": [{"name": c, "image": f"example/{c}:1"} for c in pod["init_logs"]] or None},
            "status": {"phase": "Pending" if waiting else "Running",
                       "containerStatuses": [
                           {"name": c, "image": f"example/{c}:1", "imageID": "", "ready": text is not None,
                            "restartCount": 0,
                            "state": {"waiting": {"reason": "ContainerCreating"}} if text is None
                            else {"running": {"startedAt": "2026-11-30T03:00:00Z"}}}
                           for c, text in pod["logs"].items()]},
        }

    def list_pods(self, namespace: str, selector: str) -> dict:
        requirements = parse_selector(selector)
        names = sorted(name for (ns, name), pod in self.pods.items()
                       if ns == namespace and all(req(pod["labels"]) for req in requirements))
        return {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
                "items": [self.pod_object(namespace, name) for name in names]}

    def pod_log(self, namespace: str, name: str, query: dict) -> tuple[int, str | dict]:
        pod = self.pods.get((namespace, name))
        if pod is None:
            return 404, status(404, "NotFound", f'pods "{name}" not found')
        logs = {**pod["init_logs"], **pod["logs"]}
        container = query.get("container") or (next(iter(pod["logs"])) if len(pod["logs"]) == 1 else None)
        if container is None:
            return 400, status(400, "BadRequest", f"a container name must be specified for pod {name}")
        if container not in logs:
            return 400, status(400, "BadRequest", f"container {container} is not valid for pod {name}")
        text = logs[container]
        if text is None:
            return 400, status(400, "BadRequest",
                               f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating')
        lines = text.splitlines(keepends=True)
        if "tailLines" in query:
            lines = lines[-int(query["tailLines"]):] if int(query["tailLines"]) else []
        if query.get("timestamps") == "true":
            lines = [f"{LOG_TIMESTAMP} {line}" for line in lines]
        body = "".join(lines)
        if "limitBytes" in query:
            body = body.encode()[: int(query["limitBytes"])].decode(errors="ignore")
        return 200, body

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                url = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                server.requests.append((url.path, query))
                if self.headers.get("Authorization") != f"Bearer {server.token}":
                    return self.reply(401, status(401, "Unauthorized", "Unauthorized"))
                parts = url.path.strip("/").split("/")
                if parts[:3] == ["api", "v1", "namespaces"] and len(parts) == 5 and parts[4] == "pods":
                    return self.reply(200, server.list_pods(parts[3], query.get("labelSelector", "")))
                if parts[:3] == ["api", "v1", "namespaces"] and len(parts) == 7 and parts[4] == "pods" \
                        and parts[6] == "log":
                    return self.reply(*server.pod_log(parts[3], parts[5], query))
                return self.reply(404, status(404, "NotFound", "the server could not find the requested resource"))

            def reply(self, code: int, body: str | dict):
                data = (json.dumps(body) if isinstance(body, dict) else body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json" if isinstance(body, dict) else "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # quiet
                pass

        return Handler


def status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


def parse_selector(selector: str):
    """Equality-based label selectors, as the API server reads them: k=v, k==v, k!=v, k, !k."""
    requirements = []
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            requirements.append(lambda labels, k=key, v=value: labels.get(k) != v)
        elif "=" in term:
            key, value = (s.strip() for s in term.replace("==", "=").split("=", 1))
            requirements.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif term.startswith("!"):
            requirements.append(lambda labels, k=term[1:].strip(): k not in labels)
        else:
            requirements.append(lambda labels, k=term: k in labels)
    return requirements
