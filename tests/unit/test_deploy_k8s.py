"""Kubernetes manifests: render the kustomize base and dev overlay, validate every object against the
Kubernetes JSON schemas (kubernetes-validate ships them), and check what the schemas cannot see:
selectors that select, ports and keys that exist, and the KEDA ScaledObject's shape.

No kustomize binary is needed: `render` implements the small subset of kustomize the manifests use
(resources, namespace, labels, images, strategic-merge and JSON 6902 patches) and refuses anything
else, so a manifest using a feature it does not understand fails here instead of being checked wrong.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from deliverer.settings import DelivererSettings
from webhooks_common.topics import Topics

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
DEV = K8S / "overlays" / "dev"
KUSTOMIZATIONS = [BASE, DEV]

# Oldest Kubernetes minor we promise to run on, and the newest the schemas know.
K8S_VERSIONS = ("1.29", kubernetes_validate.utils.latest_version())
# Custom resources: no schema in kubernetes-validate; their shape is checked by the KEDA tests below.
CUSTOM_KINDS = {("keda.sh/v1alpha1", "ScaledObject")}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
SUPPORTED_KEYS = {"apiVersion", "kind", "namespace", "resources", "labels", "images", "patches"}

Obj = dict[str, Any]
# Kubernetes' resource.Quantity syntax (the JSON schema only says "string or integer").
QUANTITY = re.compile(
    r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+)?$"
)


# ---------------------------------------------------------------- a minimal kustomize


def render(directory: Path) -> list[Obj]:
    """What `kustomize build directory` prints, for the features listed in SUPPORTED_KEYS."""
    k = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(k) - SUPPORTED_KEYS
    if unsupported:
        raise NotImplementedError(f"{directory}: kustomization keys the test renderer lacks: {unsupported}")
    objs: list[Obj] = []
    for entry in k.get("resources", []):
        path = directory / entry
        if path.is_dir():
            objs += render(path)
        else:
            objs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for patch in k.get("patches", []):
        _apply_patch(objs, directory, patch)
    if "namespace" in k:
        for obj in objs:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = k["namespace"]
    for label in k.get("labels", []):
        if label.get("includeSelectors"):
            raise NotImplementedError("labels.includeSelectors is not rendered by the test renderer")
        for obj in objs:
            obj["metadata"].setdefault("labels", {}).update(label["pairs"])
            template = obj.get("spec", {}).get("template")
            if label.get("includeTemplates") and template is not None:
                template.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
    for image in k.get("images", []):
        for container in (c for obj in objs for c in containers(obj)):
            name, tag = _split_image(container["image"])
            if name == image["name"]:
                container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"
    keys = [(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in objs]
    duplicates = {key for key in keys if keys.count(key) > 1}
    assert not duplicates, f"{directory}: objects defined twice: {duplicates}"
    return objs


def _split_image(image: str) -> tuple[str, str]:
    assert "@" not in image, "digests are not rendered by the test renderer"
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:  # no tag, or the colon belongs to a registry host:port
        return image, "latest"
    return name, tag


def _apply_patch(objs: list[Obj], directory: Path, patch: Obj) -> None:
    if set(patch) - {"path", "patch", "target"}:
        raise NotImplementedError(f"patch options the test renderer lacks: {patch}")
    text = (directory / patch["path"]).read_text() if "path" in patch else patch["patch"]
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    assert len(docs) == 1, "one patch per file (kustomize reads one document per `patches` entry)"
    body = docs[0]
    if isinstance(body, list):  # JSON 6902
        targets = [o for o in objs if _selected(o, patch["target"])]
        assert len(targets) == 1, f"patch target {patch['target']} selects {len(targets)} objects"
        for op in body:
            _json_patch(targets[0], op)
        return
    assert "target" not in patch, "strategic-merge patches name their target in the patch itself"
    targets = [
        o
        for o in objs
        if (o["apiVersion"], o["kind"], o["metadata"]["name"])
        == (body["apiVersion"], body["kind"], body["metadata"]["name"])
    ]
    assert len(targets) == 1, f"strategic-merge patch {patch} matches {len(targets)} objects"
    _merge(targets[0], body)


def _selected(obj: Obj, target: Obj) -> bool:
    group, _, version = obj["apiVersion"].rpartition("/")
    wanted = {"group": group, "version": version, "kind": obj["kind"], "name": obj["metadata"]["name"]}
    if set(target) - set(wanted):
        raise NotImplementedError(f"patch target fields the test renderer lacks: {target}")
    return all(wanted[key] == value for key, value in target.items())


def _merge(into: Obj, patch: Obj) -> None:
    """Strategic merge as kustomize does it for the fields we patch: maps merge, lists of named items
    (containers, env, ports, volumes, volumeMounts) merge by `name`, other lists are replaced."""
    for key, value in patch.items():
        assert not key.startswith("$"), f"strategic-merge directive {key}: not rendered here"
        current = into.get(key)
        if value is None:
            into.pop(key, None)
        elif isinstance(value, dict) and isinstance(current, dict):
            _merge(current, value)
        elif isinstance(value, list) and isinstance(current, list) and _named(value) and _named(current):
            by_name = {item["name"]: item for item in current}
            for item in value:
                if item["name"] in by_name:
                    _merge(by_name[item["name"]], item)
                else:
                    current.append(copy.deepcopy(item))
        else:
            into[key] = copy.deepcopy(value)


def _named(items: list[Any]) -> bool:
    return all(isinstance(i, dict) and "name" in i for i in items)


def _json_patch(obj: Obj, op: Obj) -> None:
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
    node: Any = obj
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    kind = op["op"]
    if isinstance(node, list):
        index = len(node) if last == "-" else int(last)
        if kind == "add":
            node.insert(index, op["value"])
        elif kind == "replace":
            node[index] = op["value"]
        elif kind == "remove":
            del node[index]
        else:
            raise NotImplementedError(kind)
    elif kind in ("add", "replace"):
        if kind == "replace":
            assert last in node, f"replace of missing {op['path']}"
        node[last] = op["value"]
    elif kind == "remove":
        del node[last]
    else:
        raise NotImplementedError(kind)


# ---------------------------------------------------------------- helpers over rendered objects


def pod_spec(obj: Obj) -> Obj | None:
    if obj["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
        spec: Obj = obj["spec"]["template"]["spec"]
        return spec
    return None


def containers(obj: Obj) -> list[Obj]:
    spec = pod_spec(obj)
    return [] if spec is None else spec.get("initContainers", []) + spec["containers"]


def find(objs: list[Obj], kind: str, name: str) -> Obj:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def config_value(objs: list[Obj], kind: str, name: str, key: str) -> str:
    obj = find(objs, kind, name)
    data = obj.get("stringData", {}) if kind == "Secret" else obj.get("data", {})
    assert key in data, f"{kind}/{name} has no key {key}"
    return str(data[key])


def container_env(objs: list[Obj], container: Obj) -> dict[str, str | None]:
    """Every variable the container gets, with its value where the rendered objects hold it
    (None: from a Secret that the overlay does not ship)."""
    env: dict[str, str | None] = {}
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    for source in container.get("envFrom", []):
        assert "configMapRef" in source, "envFrom only from ConfigMaps (secrets go key by key)"
        ref = source["configMapRef"]["name"]
        env.update({k: str(v) for k, v in find(objs, "ConfigMap", ref).get("data", {}).items()})
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
        elif "configMapKeyRef" in var["valueFrom"]:
            ref = var["valueFrom"]["configMapKeyRef"]
            env[var["name"]] = config_value(objs, "ConfigMap", ref["name"], ref["key"])
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            present = ("Secret", ref["name"]) in names
            env[var["name"]] = config_value(objs, "Secret", ref["name"], ref["key"]) if present else None
    return env


@pytest.fixture(scope="module", params=KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(K8S)))
def rendered(request: pytest.FixtureRequest) -> list[Obj]:
    return render(request.param)


# ---------------------------------------------------------------- the renderer itself


def test_renderer_applies_the_dev_overlay() -> None:
    """Guards the renderer the other tests rely on: each overlay feature visibly took effect."""
    objs = render(DEV)
    registry = find(objs, "Deployment", "registry")
    assert registry["metadata"]["namespace"] == "webhooks-dev"
    assert "namespace" not in find(objs, "Namespace", "webhooks-dev")["metadata"]
    assert registry["spec"]["replicas"] == 1
    (container,) = registry["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "wink-webhooks:dev"
    env = {e["name"]: e for e in container["env"]}
    assert env["REGISTRY_ALLOW_HTTP"]["value"] == "true"
    assert "secretKeyRef" in env["AUTH_JWT_SECRET"]["valueFrom"]  # merged by name, not replaced
    assert container["resources"]["limits"]["memory"] == "512Mi"  # kept from the base
    assert container["resources"]["requests"]["cpu"] == "50m"  # from the patch
    labels = registry["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/part-of"] == "wink-webhooks"
    assert "app.kubernetes.io/part-of" not in registry["spec"]["selector"]["matchLabels"]
    assert find(objs, "ScaledObject", "deliverer")["spec"]["maxReplicaCount"] == 3
    assert config_value(objs, "ConfigMap", "webhooks-common", "DELIVERY_ALLOW_PRIVATE_TARGETS") == "true"


def test_renderer_refuses_what_it_cannot_render(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nconfigMapGenerator: []\n")
    with pytest.raises(NotImplementedError, match="configMapGenerator"):
        render(tmp_path)


# ---------------------------------------------------------------- schemas


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_matches_the_kubernetes_schema(rendered: list[Obj], version: str) -> None:
    checked = 0
    for obj in rendered:
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_KINDS:
            continue
        # strict: unknown fields fail too (a misspelt `readinessprobe` would otherwise pass silently).
        kubernetes_validate.validate(obj, version, strict=True)
        checked += 1
    assert checked >= 10


def test_expected_objects_are_there(rendered: list[Obj]) -> None:
    kinds = {(o["kind"], o["metadata"]["name"]) for o in rendered}
    for name in ("registry", "router", "deliverer", "history"):
        assert ("Deployment", name) in kinds
        assert ("PodDisruptionBudget", name) in kinds
    assert ("Service", "registry") in kinds
    assert ("Job", "topics") in kinds
    assert ("ScaledObject", "deliverer") in kinds


# ---------------------------------------------------------------- what the schemas cannot see


def test_workloads_are_locked_down(rendered: list[Obj]) -> None:
    for obj in rendered:
        spec = pod_spec(obj)
        if spec is None:
            continue
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["automountServiceAccountToken"] is False, where
        for c in containers(obj):
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, where
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, where
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"], where
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), where
            assert "memory" in c["resources"]["limits"], where
            for amounts in c["resources"].values():
                assert all(QUANTITY.match(str(v)) for v in amounts.values()), f"{where}: {amounts}"
            if obj["kind"] == "Deployment":
                assert "livenessProbe" in c and "readinessProbe" in c, where
                # liveness: the process answers; readiness: its work runs (every service serves /readyz)
                assert c["livenessProbe"]["httpGet"]["path"] == "/healthz", where
                assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", where


def test_selectors_select_and_named_ports_exist(rendered: list[Obj]) -> None:
    pods = {
        o["metadata"]["name"]: o["spec"]["template"]["metadata"]["labels"]
        for o in rendered
        if o["kind"] == "Deployment"
    }
    for obj in rendered:
        if obj["kind"] == "Deployment":
            assert obj["spec"]["selector"]["matchLabels"].items() <= pods[obj["metadata"]["name"]].items()
            (c,) = obj["spec"]["template"]["spec"]["containers"]
            port_names = {p["name"] for p in c["ports"]}
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                if probe in c:
                    assert c[probe]["httpGet"]["port"] in port_names, f"{obj['metadata']['name']} {probe}"
        if obj["kind"] in ("PodDisruptionBudget", "Service"):
            selector = obj["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            matched = [name for name, labels in pods.items() if selector.items() <= labels.items()]
            assert matched == [obj["metadata"]["name"]], f"{obj['kind']}/{obj['metadata']['name']}"
    service = find(rendered, "Service", "registry")
    (registry_container,) = find(rendered, "Deployment", "registry")["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in registry_container["ports"]}
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    assert ports["http"] == 8080


def test_config_references_resolve(rendered: list[Obj]) -> None:
    """Every ConfigMap key a container reads exists; Secrets exist at least in the dev overlay."""
    shipped_secrets = {o["metadata"]["name"] for o in rendered if o["kind"] == "Secret"}
    for obj in rendered:
        for c in containers(obj):
            env = container_env(rendered, c)  # raises on a missing ConfigMap or key
            if shipped_secrets:
                assert None not in env.values(), f"{c['name']}: a secret key is missing"


# ---------------------------------------------------------------- KEDA

SCALED_OBJECT_SPEC_KEYS = {
    "scaleTargetRef",
    "pollingInterval",
    "cooldownPeriod",
    "initialCooldownPeriod",
    "idleReplicaCount",
    "minReplicaCount",
    "maxReplicaCount",
    "fallback",
    "advanced",
    "triggers",
}
KAFKA_TRIGGER_KEYS = {
    "bootstrapServers",
    "bootstrapServersFromEnv",
    "consumerGroup",
    "consumerGroupFromEnv",
    "topic",
    "topicFromEnv",
    "lagThreshold",
    "activationLagThreshold",
    "offsetResetPolicy",
    "allowIdleConsumers",
    "excludePersistentLag",
    "scaleToZeroOnInvalidOffset",
    "limitToPartitionsWithLag",
    "ensureEvenDistributionOfPartitions",
    "version",
    "sasl",
    "tls",
}


def test_scaled_object_scales_the_deliverers_on_delivery_lag(rendered: list[Obj]) -> None:
    so = find(rendered, "ScaledObject", "deliverer")
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    spec = so["spec"]
    assert set(spec) <= SCALED_OBJECT_SPEC_KEYS, set(spec) - SCALED_OBJECT_SPEC_KEYS
    target = spec["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment"
    deployment = find(rendered, "Deployment", target["name"])
    assert "replicas" not in deployment["spec"], "KEDA owns the replica count; a fixed one resets on apply"
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"][-1] == "deliverer"
    env = container_env(rendered, container)

    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert set(meta) <= KAFKA_TRIGGER_KEYS, set(meta) - KAFKA_TRIGGER_KEYS
    # KEDA trigger metadata is map[string]string: a bare YAML number is rejected by the CRD.
    assert all(isinstance(v, str) for v in meta.values()), meta
    assert meta["topic"] == Topics(env.get("KAFKA_TOPIC_PREFIX") or "").deliveries
    group = env.get("DELIVERER_GROUP_ID") or DelivererSettings.model_fields["group_id"].default
    assert meta["consumerGroup"] == group
    assert meta["bootstrapServersFromEnv"] in env
    assert int(meta["lagThreshold"]) > 0
    assert meta.get("allowIdleConsumers", "false") == "false"

    # Deliverers beyond the partition count of webhooks.deliveries get no partition: do not pay for them.
    partitions = int(config_value(rendered, "ConfigMap", "webhooks-topics", "DELIVERY_PARTITIONS"))
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= partitions


def test_router_and_topics_job_agree_on_partitions(rendered: list[Obj]) -> None:
    (router,) = containers(find(rendered, "Deployment", "router"))
    (job,) = containers(find(rendered, "Job", "topics"))
    router_env, job_env = container_env(rendered, router), container_env(rendered, job)
    assert router_env["ROUTER_INPUT_PARTITIONS"] == job_env["TOPICS_INPUT_PARTITIONS"]
