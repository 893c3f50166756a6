"""Log collection from a cluster (training/corpus/k8s_logs.py): the official `kubernetes` client, configured
by a kubeconfig file, against a local server speaking the Kubernetes API (tests/k8s_api_server.py)."""

from __future__ import annotations

import pytest

from k8s_api_server import LOG_TIMESTAMP, FakeApiServer
from training.corpus.k8s_logs import LogQuery, api_client, collect_pod_logs

WEB_LOG = "GET /healthz 200 in 3ms\nupstream connect error: connection refused to 10.0.0.7:8080\n"
SIDECAR_LOG = "proxy listening on :15001\n"
DB_LOG = "FATAL: password authentication failed for user \"app\"\n"


@pytest.fixture
def cluster(tmp_path):
    server = FakeApiServer(token="s3cret").start()
    server.add_pod("shop", "web-1", {"app": "web", "tier": "front"}, {"app": WEB_LOG, "istio-proxy": SIDECAR_LOG})
    server.add_pod("shop", "web-2", {"app": "web", "tier": "front"}, {"app": None, "istio-proxy": SIDECAR_LOG})
    server.add_pod("shop", "db-0", {"app": "db"}, {"postgres": DB_LOG})
    server.add_pod("other", "web-9", {"app": "web"}, {"app": "from another namespace\n"})
    kubeconfig = tmp_path / "kubeconfig"
    server.write_kubeconfig(kubeconfig)
    yield server, kubeconfig
    server.stop()


def log_requests(server) -> list[dict]:
    return [query for path, query in server.requests if path.endswith("/log")]


def test_selected_pods_every_container_with_their_names(cluster):
    server, kubeconfig = cluster
    collection = collect_pod_logs(api_client(str(kubeconfig)), LogQuery("shop", "app=web", since_seconds=3600))

    by_container = {}
    for record in collection.records:
        k8s = record.meta["kubernetes"]
        assert k8s["namespace"] == "shop"
        by_container.setdefault((k8s["pod"], k8s["container"]), []).append(record.text)
    assert by_container == {("web-1", "app"): WEB_LOG.splitlines(),
                            ("web-1", "istio-proxy"): SIDECAR_LOG.splitlines(),
                            ("web-2", "istio-proxy"): SIDECAR_LOG.splitlines()}
    # The selector went to the API server, which filtered: db-0 and the other namespace were never read.
    assert ("/api/v1/namespaces/shop/pods", {"labelSelector": "app=web"}) in server.requests
    assert {q["container"] for q in log_requests(server)} == {"app", "istio-proxy"}
    assert all(q["sinceSeconds"] == "3600" for q in log_requests(server))


def test_a_container_that_cannot_be_read_is_skipped_and_reported(cluster):
    _, kubeconfig = cluster
    collection = collect_pod_logs(api_client(str(kubeconfig)), LogQuery("shop", "tier=front"))

    summary = collection.summary()
    assert summary["pods"] == 2 and summary["containers"] == 4
    assert len(summary["skipped"]) == 1
    skipped = summary["skipped"][0]
    assert (skipped["pod"], skipped["container"]) == ("web-2", "app")
    assert skipped["error"].startswith("400") and "waiting to start" in skipped["error"]
    assert summary["lines"] == len(WEB_LOG.splitlines()) + 2 * len(SIDECAR_LOG.splitlines())


def test_tail_lines_limit_and_timestamps_are_passed_through(cluster):
    server, kubeconfig = cluster
    collection = collect_pod_logs(api_client(str(kubeconfig)),
                                  LogQuery("shop", "app=db,tier!=front", tail_lines=1, timestamps=True,
                                           limit_bytes=10_000))

    assert [r.text for r in collection.records] == DB_LOG.splitlines()  # the timestamp is not in the line
    assert collection.records[0].meta["timestamp"] == LOG_TIMESTAMP
    (query,) = log_requests(server)
    assert (query["tailLines"], query["timestamps"], query["limitBytes"]) == ("1", "true", "10000")


def test_no_pods_match_gives_an_empty_collection(cluster):
    _, kubeconfig = cluster
    assert collect_pod_logs(api_client(str(kubeconfig)), LogQuery("shop", "app=nothing")).summary() == \
        {"pods": 0, "containers": 0, "lines": 0, "skipped": []}


def test_wrong_credentials_are_an_error_not_an_empty_corpus(cluster, tmp_path):
    from kubernetes.client.exceptions import ApiException

    server, _ = cluster
    server.token = "rotated"
    kubeconfig = tmp_path / "stale"
    FakeApiServer.write_kubeconfig(server, kubeconfig)
    server.token = "s3cret"
    with pytest.raises(ApiException) as raised:
        collect_pod_logs(api_client(str(kubeconfig)), LogQuery("shop", "app=web"))
    assert raised.value.status == 401
