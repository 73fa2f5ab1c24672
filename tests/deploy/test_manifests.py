"""The Kubernetes overlays render, pass the Kubernetes schemas, and say what linkplane reads.

Rendering uses scripts/render_kustomize.py (the offline subset of kustomize); validation uses
kubernetes-validate's bundled schemas, as the CI step does. Beyond the schemas: settings
names must be real ``Settings`` fields (a typo is silently ignored by pydantic-settings),
the roles and commands must be the CLI's, and every container runs locked down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from linkplane.server.config import Role, Settings
from scripts import render_kustomize

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ROOT / "deploy" / "kubernetes" / "overlays"
ENV_PREFIX = "LINKPLANE_"
NON_LINKPLANE_ENV = {"PGPASSWORD"}  # read by asyncpg when the URL has no password


def render(overlay: str) -> dict[tuple[str, str], dict[str, Any]]:
    documents = render_kustomize.build(OVERLAYS / overlay)
    return {(d["kind"], d["metadata"]["name"]): d for d in documents}


def pod_spec(document: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = document["spec"]["template"]["spec"]
    return spec


@pytest.fixture(scope="module", params=["small", "ha"])
def overlay(request: pytest.FixtureRequest) -> dict[tuple[str, str], dict[str, Any]]:
    return render(str(request.param))


def test_every_overlay_directory_is_covered() -> None:
    assert sorted(p.name for p in OVERLAYS.iterdir() if p.is_dir()) == ["ha", "small"]


def test_rendered_manifests_pass_the_kubernetes_schemas(
    overlay: dict[tuple[str, str], dict[str, Any]],
) -> None:
    version = kubernetes_validate.latest_version()
    for document in overlay.values():
        kubernetes_validate.validate(document, version, strict=True)


def test_the_schema_check_rejects_a_broken_manifest(
    overlay: dict[tuple[str, str], dict[str, Any]],
) -> None:
    broken = {**overlay[("Deployment", "linkplane-api")]}
    broken["spec"] = {**broken["spec"], "replicas": "three", "replica": 3}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_the_overlays_kinds_and_objects(overlay: dict[tuple[str, str], dict[str, Any]]) -> None:
    assert set(overlay) == {
        ("ServiceAccount", "linkplane"),
        ("ConfigMap", "linkplane-config"),
        ("Job", "linkplane-migrate"),
        ("Deployment", "linkplane-api"),
        ("Deployment", "linkplane-worker"),
        ("Service", "linkplane-api"),
        ("Service", "linkplane-api-headless"),
        ("PodDisruptionBudget", "linkplane-api"),
        ("PodDisruptionBudget", "linkplane-worker"),
        ("NetworkPolicy", "linkplane"),
        ("NetworkPolicy", "linkplane-api-grpc"),
    }
    for document in overlay.values():
        assert document["metadata"]["namespace"] == "linkplane"
        assert document["metadata"]["labels"]["app.kubernetes.io/part-of"] == "linkplane"


def test_replicas_per_overlay() -> None:
    small, ha = render("small"), render("ha")
    assert small[("Deployment", "linkplane-api")]["spec"]["replicas"] == 1
    assert small[("Deployment", "linkplane-worker")]["spec"]["replicas"] == 1
    assert ha[("Deployment", "linkplane-api")]["spec"]["replicas"] == 3
    assert ha[("Deployment", "linkplane-worker")]["spec"]["replicas"] == 2


def test_ha_uses_the_managed_database_url_and_a_secret_password() -> None:
    ha = render("ha")
    for key in (
        ("Deployment", "linkplane-api"),
        ("Deployment", "linkplane-worker"),
        ("Job", "linkplane-migrate"),
    ):
        (container,) = pod_spec(ha[key])["containers"]
        env = {e["name"]: e for e in container["env"]}
        url = env["LINKPLANE_DATABASE_URL"]
        assert set(url) == {"name", "value"}, "value and valueFrom together are invalid"
        assert url["value"].startswith("postgresql+asyncpg://")
        assert ".rds.amazonaws.com" in url["value"]
        assert ":" not in url["value"].split("//", 1)[1].split("@", 1)[0], "no password in it"
        assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "linkplane"


def test_commands_and_roles_are_the_clis(overlay: dict[tuple[str, str], dict[str, Any]]) -> None:
    roles = {r.value for r in Role}
    for name, role in (("linkplane-api", "api"), ("linkplane-worker", "worker")):
        (container,) = pod_spec(overlay[("Deployment", name)])["containers"]
        assert container["command"] == ["linkplane-server"]
        assert container["args"] == ["serve", "--role", role]
        assert role in roles
        env = {e["name"]: e for e in container["env"]}
        assert env["LINKPLANE_ROLE"]["value"] == role
    (job,) = pod_spec(overlay[("Job", "linkplane-migrate")])["containers"]
    assert job["args"] == ["migrate"]


def test_every_setting_named_is_a_real_setting(
    overlay: dict[tuple[str, str], dict[str, Any]],
) -> None:
    fields = set(Settings.model_fields)
    names = set(overlay[("ConfigMap", "linkplane-config")]["data"])
    for document in overlay.values():
        if document["kind"] in {"Deployment", "Job"}:
            for container in pod_spec(document)["containers"]:
                names |= {e["name"] for e in container.get("env", [])}
                for ref in container.get("envFrom", []):
                    assert set(ref) == {"configMapRef"}, "whole Secrets stay out of envFrom"
    unknown = sorted(
        n
        for n in names - NON_LINKPLANE_ENV
        if not n.startswith(ENV_PREFIX) or n.removeprefix(ENV_PREFIX).lower() not in fields
    )
    assert not unknown, f"not linkplane settings (typo?): {unknown}"


def test_the_api_has_what_serve_requires(overlay: dict[tuple[str, str], dict[str, Any]]) -> None:
    (container,) = pod_spec(overlay[("Deployment", "linkplane-api")])["containers"]
    env = {e["name"] for e in container["env"]}
    assert {"LINKPLANE_DATABASE_URL", "LINKPLANE_PAGE_TOKEN_SECRET"} <= env
    config = overlay[("ConfigMap", "linkplane-config")]["data"]
    assert config["LINKPLANE_LISTEN"].endswith(":50051")
    assert config["LINKPLANE_LOG_FORMAT"] == "json"
    port = int(config["LINKPLANE_METRICS_LISTEN"].rsplit(":", 1)[1])
    assert {p["containerPort"] for p in container["ports"]} == {50051, port}


def test_probes_are_native_grpc_health_on_the_api(
    overlay: dict[tuple[str, str], dict[str, Any]],
) -> None:
    (container,) = pod_spec(overlay[("Deployment", "linkplane-api")])["containers"]
    # Readiness follows the database (""); startup and liveness only the process ("liveness").
    assert container["readinessProbe"]["grpc"] == {"port": 50051}
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": 50051, "service": "liveness"}, probe


def test_shutdown_fits_in_the_termination_grace(
    overlay: dict[tuple[str, str], dict[str, Any]],
) -> None:
    spec = pod_spec(overlay[("Deployment", "linkplane-api")])
    (container,) = spec["containers"]
    drain = float(
        overlay[("ConfigMap", "linkplane-config")]["data"]["LINKPLANE_SHUTDOWN_GRACE_SECONDS"]
    )
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pause + drain < spec["terminationGracePeriodSeconds"]


def test_every_pod_runs_locked_down(overlay: dict[tuple[str, str], dict[str, Any]]) -> None:
    for document in overlay.values():
        if document["kind"] not in {"Deployment", "Job"}:
            continue
        spec = pod_spec(document)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert {"cpu", "memory"} <= set(container["resources"]["limits"])
            assert container["image"].startswith("registry.example.com/linkplane/linkplane-server:")


def test_selectors_match_their_pods(overlay: dict[tuple[str, str], dict[str, Any]]) -> None:
    pods = {
        name: document["spec"]["template"]["metadata"]["labels"]
        for (kind, name), document in overlay.items()
        if kind == "Deployment"
    }
    for (kind, name), document in overlay.items():
        if kind == "Service":
            selector = document["spec"]["selector"]
        elif kind in {"PodDisruptionBudget", "Deployment"}:
            selector = document["spec"]["selector"]["matchLabels"]
        else:
            continue
        matched = [p for p, labels in pods.items() if selector.items() <= labels.items()]
        assert matched, f"{kind}/{name} selects no pods"
        assert all(("api" in p) == ("api" in name) for p in matched), f"{kind}/{name}"


# The renderer itself: the kustomize behaviours the overlays depend on.


def test_strategic_merge_merges_by_key_deletes_with_null_and_replaces_other_lists() -> None:
    target = {
        "containers": [
            {"name": "a", "args": ["x", "y"], "env": [{"name": "A", "valueFrom": {"k": 1}}]},
            {"name": "b"},
        ]
    }
    patch = {
        "containers": [
            {
                "name": "a",
                "args": ["z"],
                "env": [
                    {"name": "A", "value": "v", "valueFrom": None},
                    {"name": "B", "value": "w"},
                ],
            }
        ]
    }
    merged = render_kustomize.strategic_merge(target, patch)
    assert merged == {
        "containers": [
            {
                "name": "a",
                "args": ["z"],
                "env": [{"name": "A", "value": "v"}, {"name": "B", "value": "w"}],
            },
            {"name": "b"},
        ]
    }
    assert target["containers"][0]["args"] == ["x", "y"], "the input is not modified"


def test_the_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nnamePrefix: x-\n")
    with pytest.raises(render_kustomize.RenderError, match="namePrefix"):
        render_kustomize.build(tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        "resources: [cm.yaml]\npatches:\n  - path: p.yaml\n    target: {kind: ConfigMap}\n"
    )
    with pytest.raises(render_kustomize.RenderError, match="only `patches: - path"):
        render_kustomize.build(tmp_path)
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    (tmp_path / "p.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n")
    (tmp_path / "kustomization.yaml").write_text(
        "resources: [cm.yaml]\npatches:\n  - path: p.yaml\n"
    )
    with pytest.raises(render_kustomize.RenderError, match="no resource defines"):
        render_kustomize.build(tmp_path)
