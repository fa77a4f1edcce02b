"""deploy/k8s: schema-valid for the Kubernetes versions we support, and wired together right.

Schemas come from the kubernetes-validate package (it ships them; nothing is fetched), in
strict mode, so a misspelt or misplaced field fails instead of being silently dropped.
"""

import copy
from importlib import resources as package_files
from typing import Any

import kubernetes_validate
import pytest
import yaml

from kyma_video import search_attributes

from .manifests import (
    K8S,
    NAMESPACE,
    config_map,
    example_secrets,
    load_documents,
    manifest_files,
    named,
    of_kind,
    pod_specs,
    resource_files,
    resources,
)

#: The oldest Kubernetes minor we support (policy/v1 PDBs, autoscaling/v2 HPAs, Job TTLs and
#: the `restricted` Pod Security level are all GA well before it) and the newest we check.
#: Bump both deliberately; kubernetes-validate must ship schemas for each.
KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")

#: Kinds that live in a namespace (everything here but the Namespace itself).
CLUSTER_SCOPED = {"Namespace"}

DOCUMENTS = [
    pytest.param(path, index, doc, id=f"{path.name}#{index}")
    for path in manifest_files()
    if path.name != "kustomization.yaml"
    for index, doc in enumerate(load_documents(path))
]


def deployments() -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in of_kind("Deployment")}


def container(pod_spec: dict[str, Any]) -> dict[str, Any]:
    [only] = pod_spec["containers"]
    return only


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


# ------------------------------------------------------------------------------ schemas


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_schemas_ship_with_the_package(version: str):
    shipped = package_files.files("kubernetes_validate") / "kubernetes-json-schema"
    assert (shipped / f"v{version}-local-strict").is_dir(), (
        f"kubernetes-validate {kubernetes_validate.__version__} ships no schemas for "
        f"Kubernetes {version}; adjust KUBERNETES_VERSIONS or the package version"
    )


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(("path", "index", "document"), DOCUMENTS)
def test_every_manifest_is_valid_in_strict_mode(path, index, document, version):
    kubernetes_validate.validate(document, version, strict=True)


def test_strict_validation_rejects_an_unknown_field():
    """Guards the test above: a typo must fail, not pass as an ignored extra field."""
    broken = copy.deepcopy(named("Deployment", "kyma-video-api"))
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


# ------------------------------------------------------------------------- kustomization


def test_the_kustomization_lists_every_manifest_but_the_examples():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["namespace"] == NAMESPACE
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed)), "a resource is listed twice"
    assert set(listed) == {path.name for path in resource_files()}
    # The example Secret holds placeholders: applying it would overwrite the real one.
    assert "secret.example.yaml" not in listed


def test_the_kustomization_sets_the_image_every_kyma_video_container_uses():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    [image] = kustomization["images"]
    assert image["newTag"] and image["newTag"] != "latest"
    images = {
        container(spec)["image"]
        for name, spec in pod_specs()
        if name != "kyma-video-register-search-attributes"
    }
    assert images == {image["name"]}


def test_every_other_image_is_pinned_to_a_version():
    for name, spec in pod_specs():
        image = container(spec)["image"]
        if image == "kyma-video":
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: {image} is not pinned"


def test_every_resource_is_in_the_kyma_video_namespace():
    for doc in resources():
        if doc["kind"] in CLUSTER_SCOPED:
            continue
        assert doc["metadata"].get("namespace") == NAMESPACE, doc["metadata"]["name"]
    [namespace] = of_kind("Namespace")
    assert namespace["metadata"]["name"] == NAMESPACE


# ------------------------------------------------------------------------------- pods


@pytest.mark.parametrize(("name", "spec"), pod_specs(), ids=[name for name, _ in pod_specs()])
def test_every_pod_meets_the_restricted_pod_security_level(name: str, spec: dict[str, Any]):
    """The Namespace enforces `restricted`: a pod that does not meet it is never created."""
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod.get("runAsUser", 1) != 0
    assert pod["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    context = container(spec)["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"]["drop"] == ["ALL"]
    # A read-only root filesystem still needs a writable /tmp.
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    [tmp] = [m for m in container(spec)["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert "emptyDir" in volumes[tmp["name"]]
    namespace = named("Namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize(("name", "spec"), pod_specs(), ids=[name for name, _ in pod_specs()])
def test_every_container_has_requests_and_limits(name: str, spec: dict[str, Any]):
    resources_ = container(spec)["resources"]
    for bound in ("requests", "limits"):
        assert set(resources_[bound]) == {"cpu", "memory"}, f"{name}: {bound}"


def test_the_configuration_and_secrets_the_pods_reference_exist():
    documented = example_secrets()
    for name, spec in pod_specs():
        for source in container(spec).get("envFrom", []):
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] == "kyma-video-config", name
            else:
                assert source["secretRef"]["name"] in documented, name
        for variable in container(spec).get("env", []):
            ref = variable.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in documented[ref["name"]], name
        for volume in spec["volumes"]:
            if "secret" in volume:
                # Only optional secrets are mounted: none is needed to start.
                assert volume["secret"]["optional"] is True, name


def test_the_required_secret_and_the_optional_provider_credentials():
    api = container(named("Deployment", "kyma-video-api")["spec"]["template"]["spec"])
    worker = container(named("Deployment", "kyma-video-worker")["spec"]["template"]["spec"])
    required = {"secretRef": {"name": "kyma-video-secrets"}}
    assert required in api["envFrom"]
    assert required in worker["envFrom"]
    optional = {"secretRef": {"name": "kyma-video-provider-credentials", "optional": True}}
    assert optional in worker["envFrom"]


def test_the_example_secrets_hold_only_placeholders():
    not_secret = {"GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_LOCATION"}
    for name, values in example_secrets().items():
        for key, value in values.items():
            if key not in not_secret:
                assert "CHANGE-ME" in value, f"{name}.{key} looks like a real value"


# ------------------------------------------------------------------------- deployments


def test_the_api_deployment():
    api = named("Deployment", "kyma-video-api")
    assert api["spec"]["replicas"] >= 2
    spec = api["spec"]["template"]["spec"]
    main = container(spec)
    assert main["args"] == ["api"]
    ports = {port["name"]: port["containerPort"] for port in main["ports"]}
    assert ports == {"http": int(config_map()["KYMA_API_PORT"])}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert config_map()["KYMA_API_HOST"] == "0.0.0.0"
    assert spec["terminationGracePeriodSeconds"] >= 10


def test_the_worker_deployment():
    worker = named("Deployment", "kyma-video-worker")
    assert worker["spec"]["replicas"] >= 2
    spec = worker["spec"]["template"]["spec"]
    main = container(spec)
    assert main["args"] == ["worker"]
    metrics_port = int(config_map()["KYMA_WORKER_METRICS_ADDRESS"].rpartition(":")[2])
    ports = {port["name"]: port["containerPort"] for port in main["ports"]}
    assert ports == {"metrics": metrics_port}
    assert main["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    assert config_map()["KYMA_WORKER_METRICS_ADDRESS"].startswith("0.0.0.0:")


def test_the_worker_gets_longer_to_stop_than_its_activities_get_to_drain():
    """SIGTERM starts the drain; SIGKILL comes after terminationGracePeriodSeconds. Leave room
    for cancelling what did not finish and closing connections."""
    drain = int(config_map()["KYMA_WORKER_GRACEFUL_SHUTDOWN_SECONDS"])
    spec = named("Deployment", "kyma-video-worker")["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] >= drain + 15


@pytest.mark.parametrize("name", ["kyma-video-api", "kyma-video-worker"])
def test_every_deployment_has_probes_and_a_grace_period(name: str):
    spec = named("Deployment", name)["spec"]["template"]["spec"]
    main = container(spec)
    assert "livenessProbe" in main
    assert "startupProbe" in main
    assert spec["terminationGracePeriodSeconds"] > 0
    named_ports = {port["name"] for port in main["ports"]}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if probe in main:
            assert main[probe]["httpGet"]["port"] in named_ports, f"{name}.{probe}"


def test_every_deployment_selects_its_own_pods():
    for name, deployment in deployments().items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selects(selector, deployment["spec"]["template"]["metadata"]["labels"]), name
        others = [other for other in deployments() if other != name]
        for other in others:
            labels = deployments()[other]["spec"]["template"]["metadata"]["labels"]
            assert not selects(selector, labels), f"{name} also selects {other}'s pods"


# ------------------------------------------------------------- service, HPA and PDB targets


def test_the_service_routes_to_the_api_pods():
    service = named("Service", "kyma-video-api")
    api = named("Deployment", "kyma-video-api")["spec"]["template"]
    assert selects(service["spec"]["selector"], api["metadata"]["labels"])
    ports = {port["name"] for port in container(api["spec"])["ports"]}
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in ports


def test_every_autoscaler_targets_an_existing_deployment():
    hpas = of_kind("HorizontalPodAutoscaler")
    assert {hpa["spec"]["scaleTargetRef"]["name"] for hpa in hpas} == set(deployments())
    for hpa in hpas:
        target = hpa["spec"]["scaleTargetRef"]
        assert target["apiVersion"] == "apps/v1"
        assert target["kind"] == "Deployment"
        deployment = deployments()[target["name"]]
        assert hpa["spec"]["minReplicas"] >= 2
        assert hpa["spec"]["minReplicas"] <= deployment["spec"]["replicas"]
        assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
        [metric] = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        # Utilization is relative to the CPU request, which therefore must be set.
        assert "cpu" in container(deployment["spec"]["template"]["spec"])["resources"]["requests"]


def test_every_disruption_budget_covers_exactly_one_deployment():
    pdbs = of_kind("PodDisruptionBudget")
    covered = []
    for pdb in pdbs:
        selector = pdb["spec"]["selector"]["matchLabels"]
        matching = [
            name
            for name, deployment in deployments().items()
            if selects(selector, deployment["spec"]["template"]["metadata"]["labels"])
        ]
        assert len(matching) == 1, f"{pdb['metadata']['name']} selects {matching}"
        covered += matching
        # A budget that allows no disruption at all blocks node drains forever.
        if "minAvailable" in pdb["spec"]:
            assert pdb["spec"]["minAvailable"] < deployments()[matching[0]]["spec"]["replicas"]
    assert sorted(covered) == sorted(deployments())


# -------------------------------------------------------------------------------- jobs


def test_the_migration_job_runs_the_migrate_command_once():
    job = named("Job", "kyma-video-migrate")
    spec = job["spec"]["template"]["spec"]
    assert container(spec)["args"] == ["migrate"]
    assert spec["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 1
    # It needs only the database URL from the Secret.
    [variable] = container(spec)["env"]
    assert variable["name"] == "KYMA_DATABASE_URL"


def test_the_search_attribute_job_registers_exactly_the_workflow_attributes():
    job = named("Job", "kyma-video-register-search-attributes")
    main = container(job["spec"]["template"]["spec"])
    assert main["image"].startswith("temporalio/admin-tools:")
    assert main["command"] == ["/bin/sh", "-c"]
    [script] = main["args"]
    listed = script.split("for name in ", 1)[1].split(";", 1)[0].split()
    assert set(listed) == {key.name for key in search_attributes.ALL}
    assert "--type Keyword" in script
    # Kubernetes expands $(VAR) and $$ in args: the script must contain neither for a
    # variable the container has, or the shell would see something else.
    for variable in config_map():
        assert f"$({variable})" not in script
    assert "$$" not in script
