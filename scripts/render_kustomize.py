"""Render a kustomization offline: the small subset of kustomize that deploy/kubernetes uses.

No kustomize (or kubectl) binary installs from PyPI, and CI must render the overlays with no
download, so this script implements exactly the kustomization fields deploy/kubernetes uses
and refuses every other one (an unknown field is an error, never silently ignored):

- ``resources``: YAML files (one or more documents) and directories holding a
  kustomization.yaml (built recursively, in order);
- ``namespace``: set on every namespaced object;
- ``labels``: ``pairs`` added to ``metadata.labels``, and with ``includeTemplates: true`` to
  pod templates (``includeSelectors: true`` is not implemented and is refused);
- ``images``: ``newName`` / ``newTag`` / ``digest`` for containers whose image name matches;
- ``patches``: ``path`` entries only, each a whole-document strategic merge patch matched by
  kind and name. Maps merge, ``null`` deletes a key, lists of containers, env, volumes,
  volume mounts and ports merge by their Kubernetes merge keys; other lists are replaced
  (strategic merge's default). ``$patch`` directives and JSON6902 patches are refused.

Output follows kustomize's default (legacy) kind order. Checked once against
``kubectl kustomize`` (kustomize v5.8.1): identical documents, in the same order, for both
overlays (docs/deploy.md says how to repeat the check).
Usage: ``python scripts/render_kustomize.py deploy/kubernetes/overlays/ha [-o out.yaml]``.
"""

from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Document = dict[str, Any]

KUSTOMIZATION_FIELDS = frozenset(
    {"apiVersion", "kind", "resources", "namespace", "labels", "images", "patches"}
)
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    }
)
# kustomize's legacy output order (api/resource/resource.go): these kinds first, in this order,
# then every other kind (by kind name), then the webhooks.
KIND_ORDER = (
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
)
KIND_ORDER_LAST = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
# Strategic merge keys of the list fields this renderer merges (Kubernetes' patchMergeKey).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
}
# Pod templates live here in the workload kinds deploy/kubernetes uses.
TEMPLATE_PATHS = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


class RenderError(Exception):
    """The kustomization uses something this renderer does not implement, or is invalid."""


@dataclass(frozen=True)
class Image:
    """One ``images`` entry: which image name to rewrite, and to what."""

    name: str
    new_name: str | None = None
    new_tag: str | None = None
    digest: str | None = None

    def rewrite(self, image: str) -> str | None:
        """The rewritten reference, or None when ``image`` is another image."""
        name, tag = _split_image(image)
        if name != self.name:
            return None
        name = self.new_name or name
        if self.digest:
            return f"{name}@{self.digest}"
        if self.new_tag:
            return f"{name}:{self.new_tag}"
        return f"{name}{tag}"


@dataclass
class Kustomization:
    """A parsed kustomization.yaml, restricted to the supported fields."""

    directory: Path
    resources: list[str] = field(default_factory=list)
    namespace: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    label_templates: bool = False
    images: list[Image] = field(default_factory=list)
    patches: list[str] = field(default_factory=list)


def load_kustomization(directory: Path) -> Kustomization:
    """Parse ``directory/kustomization.yaml``, refusing fields this renderer lacks."""
    path = directory / "kustomization.yaml"
    if not path.is_file():
        raise RenderError(f"{directory}: no kustomization.yaml")
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict):
        raise RenderError(f"{path}: not a mapping")
    unknown = sorted(set(raw) - KUSTOMIZATION_FIELDS)
    if unknown:
        raise RenderError(f"{path}: unsupported kustomization fields {unknown}")
    if raw.get("kind", "Kustomization") != "Kustomization":
        raise RenderError(f"{path}: kind must be Kustomization")
    result = Kustomization(directory=directory)
    result.resources = [str(r) for r in raw.get("resources") or []]
    result.namespace = raw.get("namespace")
    for entry in raw.get("labels") or []:
        unknown = sorted(set(entry) - {"pairs", "includeTemplates", "includeSelectors"})
        if unknown:
            raise RenderError(f"{path}: unsupported labels fields {unknown}")
        if entry.get("includeSelectors"):
            raise RenderError(f"{path}: labels.includeSelectors is not implemented")
        result.labels.update({str(k): str(v) for k, v in (entry.get("pairs") or {}).items()})
        result.label_templates = result.label_templates or bool(entry.get("includeTemplates"))
    for entry in raw.get("images") or []:
        unknown = sorted(set(entry) - {"name", "newName", "newTag", "digest"})
        if unknown:
            raise RenderError(f"{path}: unsupported images fields {unknown}")
        tag = entry.get("newTag")
        result.images.append(
            Image(
                name=str(entry["name"]),
                new_name=entry.get("newName"),
                new_tag=None if tag is None else str(tag),
                digest=entry.get("digest"),
            )
        )
    for entry in raw.get("patches") or []:
        if set(entry) != {"path"}:
            raise RenderError(f"{path}: only `patches: - path: FILE` is implemented, got {entry}")
        result.patches.append(str(entry["path"]))
    return result


def build(directory: Path) -> list[Document]:
    """Every document the kustomization at ``directory`` produces, transformed."""
    kustomization = load_kustomization(directory)
    documents: list[Document] = []
    for resource in kustomization.resources:
        target = (directory / resource).resolve()
        if target.is_dir():
            documents.extend(build(target))
        elif target.is_file():
            documents.extend(_read_documents(target))
        else:
            raise RenderError(f"{directory}: resource {resource} does not exist")
    _check_unique(documents, directory)
    for patch_path in kustomization.patches:
        for patch in _read_documents(directory / patch_path):
            _apply_patch(documents, patch, directory / patch_path)
    for document in documents:
        _apply_labels(document, kustomization)
        _apply_images(document, kustomization.images)
        if kustomization.namespace and document["kind"] not in CLUSTER_SCOPED_KINDS:
            document["metadata"]["namespace"] = kustomization.namespace
    return documents


def strategic_merge(target: Any, patch: Any, key: str | None = None) -> Any:
    """``patch`` merged into ``target`` (a new value): see the module docstring for the rules."""
    if isinstance(patch, dict):
        if any(str(k).startswith("$") for k in patch):
            raise RenderError(f"strategic merge directives are not implemented: {sorted(patch)}")
        merged = dict(target) if isinstance(target, dict) else {}
        for name, value in patch.items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = strategic_merge(merged.get(name), value, name)
        return merged
    if isinstance(patch, list) and isinstance(target, list):
        merge_key = _merge_key(key, patch + target)
        if merge_key is not None:
            return _merge_lists(target, patch, merge_key)
    return copy.deepcopy(patch)


def render(directory: Path) -> str:
    """The kustomization at ``directory`` as one multi-document YAML string, in kustomize's
    default ("legacy") order: by kind as KIND_ORDER says, then by kind and name."""
    documents = sorted(build(directory), key=_output_order)
    return yaml.safe_dump_all(documents, sort_keys=False, explicit_start=True)


def _output_order(document: Document) -> tuple[int, str, str]:
    kind = str(document["kind"])
    if kind in KIND_ORDER_LAST:
        rank = len(KIND_ORDER) + 1 + KIND_ORDER_LAST.index(kind)
    else:
        rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    return rank, kind, str(document["metadata"]["name"])


def _merge_key(key: str | None, items: list[Any]) -> str | None:
    if not items or not all(isinstance(item, dict) for item in items):
        return None
    if key == "ports":
        # Container ports merge by containerPort, Service ports by port.
        return "containerPort" if all("containerPort" in i for i in items) else "port"
    return MERGE_KEYS.get(key or "")


def _merge_lists(target: list[Any], patch: list[Any], merge_key: str) -> list[Any]:
    # kustomize's order: the patch's items first (in the patch's order, merged into their
    # originals), then the originals the patch does not mention, in their order.
    originals = {item.get(merge_key): item for item in target}
    merged: list[Any] = []
    for item in patch:
        if merge_key not in item:
            raise RenderError(f"list item without its merge key {merge_key!r}: {item}")
        merged.append(strategic_merge(originals.get(item[merge_key], {}), item))
    mentioned = {item[merge_key] for item in patch}
    merged.extend(copy.deepcopy(i) for i in target if i.get(merge_key) not in mentioned)
    return merged


def _read_documents(path: Path) -> list[Document]:
    documents: list[Document] = []
    for document in yaml.safe_load_all(path.read_text()):
        if document is None:
            continue
        if not isinstance(document, dict) or "kind" not in document:
            raise RenderError(f"{path}: every document must be a Kubernetes object")
        if not document.get("metadata", {}).get("name"):
            raise RenderError(f"{path}: a {document['kind']} without metadata.name")
        documents.append(document)
    return documents


def _identity(document: Document) -> tuple[str, str, str]:
    group = str(document.get("apiVersion", "")).rpartition("/")[0]
    return group, str(document["kind"]), str(document["metadata"]["name"])


def _check_unique(documents: list[Document], directory: Path) -> None:
    seen: set[tuple[str, str, str]] = set()
    for document in documents:
        identity = _identity(document)
        if identity in seen:
            raise RenderError(f"{directory}: {identity} is defined twice")
        seen.add(identity)


def _apply_patch(documents: list[Document], patch: Document, path: Path) -> None:
    wanted = _identity(patch)
    for index, document in enumerate(documents):
        if _identity(document) == wanted:
            documents[index] = strategic_merge(document, patch)
            return
    raise RenderError(f"{path}: the patch targets {wanted}, which no resource defines")


def _apply_labels(document: Document, kustomization: Kustomization) -> None:
    if not kustomization.labels:
        return
    metadata = document.setdefault("metadata", {})
    metadata.setdefault("labels", {}).update(kustomization.labels)
    template = _pod_template(document)
    if kustomization.label_templates and template is not None:
        template.setdefault("metadata", {}).setdefault("labels", {}).update(kustomization.labels)


def _apply_images(document: Document, images: list[Image]) -> None:
    template = _pod_template(document)
    if template is None or not images:
        return
    spec = template.get("spec", {})
    for container in [*spec.get("containers", []), *spec.get("initContainers", [])]:
        for image in images:
            rewritten = image.rewrite(str(container.get("image", "")))
            if rewritten is not None:
                container["image"] = rewritten
                break


def _pod_template(document: Document) -> dict[str, Any] | None:
    path = TEMPLATE_PATHS.get(str(document.get("kind")))
    if path is None:
        return None
    node: Any = document
    for step in path:
        if not isinstance(node, dict) or step not in node:
            return None
        node = node[step]
    return node if isinstance(node, dict) else None


def _split_image(image: str) -> tuple[str, str]:
    """(name, ":tag" or "@digest" or "") of an image reference."""
    if "@" in image:
        name, _, digest = image.partition("@")
        return name, f"@{digest}"
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon:]
    return image, ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("directory", type=Path, help="a directory with a kustomization.yaml")
    parser.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    args = parser.parse_args(argv)
    try:
        text = render(args.directory)
    except RenderError as exc:
        print(f"render_kustomize: {exc}", file=sys.stderr)
        return 1
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
