"""An offline renderer for the kustomize subset that deploy/kubernetes/ uses, and nothing more.

Why: the tests must render the kustomization without a cluster, and no current kustomize can be
installed from the registries this project may use (Debian's ``kubernetes-client`` is kubectl
1.20, whose kustomize 2.0.3 predates ``labels``; PyPI and npm carry no kustomize binary). So this
module implements exactly the features the base uses, and REFUSES every other field, so that the
base cannot grow a feature the renderer would silently ignore:

- ``resources``: local YAML files (one or more documents each);
- ``namespace``: ``metadata.namespace`` on every namespaced object;
- ``labels`` with ``pairs`` only (no ``includeSelectors``/``includeTemplates``): added to
  ``metadata.labels`` of every object, generated ones included;
- ``images``: ``newName``/``newTag``/``digest`` for the containers of pod templates;
- ``configMapGenerator`` (``literals``, ``files``) and ``secretGenerator`` (``files``,
  ``literals``, ``type``; values base64 in lines of 70 like kustomize's): objects named
  ``NAME-HASH`` and every reference to them in a pod template renamed to match.

The hash is kustomize's: sha256 of Go's ``json.Marshal`` of ``{"data", "kind", "name", "type"}``
(keys sorted, no spaces, ``<``, ``>`` and ``&`` escaped), its first 10 hex digits with ``0 1 3 a
e`` mapped to ``g h k m t``. kustomize 5 looks the name up with a path kyaml does not split
(``metadata/name``), so the name it hashes is empty; the test that compares this renderer with
``kubectl kustomize`` (run where kubectl is installed) pins that behaviour.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Manifest = dict[str, Any]

SUPPORTED_FIELDS = frozenset({
    "apiVersion", "kind", "namespace", "labels", "resources", "images",
    "configMapGenerator", "secretGenerator",
})
# The kinds whose treatment by kustomize (namespace, labels, name references) is implemented.
NAMESPACED_KINDS = frozenset({
    "ServiceAccount", "PersistentVolumeClaim", "Deployment", "Service", "NetworkPolicy",
    "ConfigMap", "Secret",
})
CLUSTER_KINDS = frozenset({"Namespace"})
_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_HASH_LETTERS = str.maketrans({"0": "g", "1": "h", "3": "k", "a": "m", "e": "t"})


class UnsupportedKustomization(ValueError):
    """The kustomization uses something this renderer does not implement."""


@dataclass(frozen=True)
class Generator:
    kind: str  # ConfigMap or Secret
    name: str
    literals: tuple[str, ...]
    files: tuple[str, ...]
    secret_type: str = "Opaque"


@dataclass(frozen=True)
class ImageOverride:
    name: str
    new_name: str | None
    new_tag: str | None
    digest: str | None


@dataclass(frozen=True)
class Kustomization:
    namespace: str | None
    labels: dict[str, str]
    resources: tuple[str, ...]
    images: tuple[ImageOverride, ...]
    generators: tuple[Generator, ...]


def _only(entry: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise UnsupportedKustomization(f"{where}: expected a mapping, got {entry!r}")
    extra = set(entry) - allowed
    if extra:
        raise UnsupportedKustomization(f"{where}: unsupported field(s) {sorted(extra)}")
    return entry


def parse_kustomization(data: Any) -> Kustomization:
    """Read kustomization.yaml's content, refusing any feature outside the supported subset."""
    top = _only(data, set(SUPPORTED_FIELDS), "kustomization.yaml")
    if top.get("kind", "Kustomization") != "Kustomization":
        raise UnsupportedKustomization(f"kind {top.get('kind')!r} is not Kustomization")
    labels: dict[str, str] = {}
    for entry in top.get("labels") or []:
        pairs = _only(entry, {"pairs"}, "labels[]").get("pairs") or {}
        for key, value in pairs.items():
            if not isinstance(value, str):
                raise UnsupportedKustomization(f"label {key}: quote the value {value!r}")
            labels[str(key)] = value
    images = tuple(
        ImageOverride(str(e["name"]), e.get("newName"), e.get("newTag"), e.get("digest"))
        for e in (_only(e, {"name", "newName", "newTag", "digest"}, "images[]")
                  for e in top.get("images") or [])
    )
    generators: list[Generator] = []
    for field, kind, allowed in (
        ("configMapGenerator", "ConfigMap", {"name", "literals", "files"}),
        ("secretGenerator", "Secret", {"name", "literals", "files", "type"}),
    ):
        for entry in top.get(field) or []:
            spec = _only(entry, allowed, f"{field}[]")
            generators.append(Generator(
                kind, str(spec["name"]),
                tuple(str(x) for x in spec.get("literals") or []),
                tuple(str(x) for x in spec.get("files") or []),
                str(spec.get("type", "Opaque")),
            ))
    resources = tuple(str(r) for r in top.get("resources") or [])
    return Kustomization(top.get("namespace"), labels, resources, images, tuple(generators))


def go_json(value: Any) -> str:
    """What Go's json.Marshal writes for maps of strings: sorted keys, no spaces, HTML-safe."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def name_hash(obj: Manifest) -> str:
    """kustomize's name suffix for a generated ConfigMap or Secret (see the module docstring)."""
    fields: dict[str, Any] = {"kind": obj["kind"], "name": "", "data": obj.get("data") or {}}
    if obj["kind"] == "Secret":
        fields["type"] = obj["type"]
    digest = hashlib.sha256(go_json(fields).encode("utf-8")).hexdigest()
    return digest[:10].translate(_HASH_LETTERS)


def _data(generator: Generator, base: Path) -> dict[str, bytes]:
    data: dict[str, bytes] = {}
    for literal in generator.literals:
        key, equals, value = literal.partition("=")
        if not equals:
            raise UnsupportedKustomization(f"literal {literal!r} is not KEY=VALUE")
        if value[:1] in ("'", '"'):
            raise UnsupportedKustomization(f"quoted literal values are not implemented: "
                                           f"{literal!r}")
        data[key] = value.encode("utf-8")
    for source in generator.files:
        key, equals, path = source.partition("=")
        if not equals:
            key, path = Path(source).name, source
        file = (base / path).resolve()
        if not file.is_relative_to(base.resolve()):
            raise UnsupportedKustomization(f"file {source!r} is outside the kustomization")
        data[key] = file.read_bytes()  # a missing file fails, as kustomize does
    for key in data:
        if not _KEY.fullmatch(key):
            raise UnsupportedKustomization(f"{generator.name}: invalid key {key!r}")
    return data


def kustomize_base64(content: bytes) -> str:
    """Base64 as kustomize writes a Secret's value: past 70 characters, in lines of 70, each
    ending in a newline (the API server's decoder skips newlines)."""
    text = base64.b64encode(content).decode("ascii")
    if len(text) < 70:
        return text
    return "".join(text[i:i + 70] + "\n" for i in range(0, len(text), 70))


def generate(generator: Generator, base: Path) -> Manifest:
    data = _data(generator, base)
    obj: Manifest = {"apiVersion": "v1", "kind": generator.kind,
                     "metadata": {"name": generator.name}}
    if generator.kind == "ConfigMap":
        try:
            obj["data"] = {k: v.decode("utf-8") for k, v in data.items()}
        except UnicodeDecodeError:
            raise UnsupportedKustomization("binaryData in a ConfigMap is not implemented") from None
    else:
        obj["type"] = generator.secret_type
        obj["data"] = {k: kustomize_base64(v) for k, v in data.items()}
    obj["metadata"]["name"] = f"{generator.name}-{name_hash(obj)}"
    return obj


def _split_image(image: str) -> tuple[str, str | None, str | None]:
    """``name[:tag][@digest]`` -> (name, tag, digest)."""
    rest, _, digest = image.partition("@")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        return rest[:colon], rest[colon + 1:], digest or None
    return rest, None, digest or None


def _apply_images(containers: list[Manifest], images: tuple[ImageOverride, ...]) -> None:
    for container in containers:
        name, tag, digest = _split_image(str(container.get("image", "")))
        for override in images:
            if override.name != name:
                continue
            name = override.new_name or name
            if override.digest:
                tag, digest = None, override.digest
            elif override.new_tag:
                tag, digest = override.new_tag, None
            image = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
            container["image"] = image
            break


def _rename_references(pod: Manifest, renamed: dict[tuple[str, str], str]) -> None:
    """Point a pod spec's references to generated ConfigMaps/Secrets at their hashed names."""

    def fix(ref: Manifest | None, kind: str, field: str = "name") -> None:
        if ref and (kind, ref.get(field)) in renamed:
            ref[field] = renamed[(kind, ref[field])]

    for volume in pod.get("volumes") or []:
        fix(volume.get("configMap"), "ConfigMap")
        fix(volume.get("secret"), "Secret", "secretName")
        if "projected" in volume:
            raise UnsupportedKustomization("projected volumes are not implemented")
    for secret in pod.get("imagePullSecrets") or []:
        fix(secret, "Secret")
    for container in (pod.get("containers") or []) + (pod.get("initContainers") or []):
        for source in container.get("envFrom") or []:
            fix(source.get("configMapRef"), "ConfigMap")
            fix(source.get("secretRef"), "Secret")
        for env in container.get("env") or []:
            value_from = env.get("valueFrom") or {}
            fix(value_from.get("configMapKeyRef"), "ConfigMap")
            fix(value_from.get("secretKeyRef"), "Secret")


def render(directory: Path | str) -> list[Manifest]:
    """``kustomize build DIRECTORY`` for the supported subset: the objects, resources first."""
    base = Path(directory)
    spec = parse_kustomization(yaml.safe_load((base / "kustomization.yaml").read_text()))
    objects: list[Manifest] = []
    for resource in spec.resources:
        path = (base / resource).resolve()
        if not path.is_file() or not path.is_relative_to(base.resolve()):
            raise UnsupportedKustomization(f"resource {resource!r}: only files of this folder")
        objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    generated = [generate(g, base) for g in spec.generators]
    renamed = {(g.kind, g.name): obj["metadata"]["name"]
               for g, obj in zip(spec.generators, generated, strict=True)}
    for obj in objects + generated:
        kind = obj.get("kind")
        if kind not in NAMESPACED_KINDS | CLUSTER_KINDS:
            raise UnsupportedKustomization(f"kind {kind!r} is not implemented")
        metadata = obj.setdefault("metadata", {})
        if spec.namespace and kind in NAMESPACED_KINDS:
            metadata["namespace"] = spec.namespace
        if spec.labels:
            metadata["labels"] = {**(metadata.get("labels") or {}), **spec.labels}
        if kind == "Deployment":
            pod = obj["spec"]["template"]["spec"]
            _rename_references(pod, renamed)
            _apply_images(pod.get("containers") or [], spec.images)
            _apply_images(pod.get("initContainers") or [], spec.images)
    return objects + generated
