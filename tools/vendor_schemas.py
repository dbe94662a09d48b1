"""Turn Kubernetes OpenAPI v3 documents and CRDs into the JSON schemas the chart tests use.

Run by ``tools/vendor-schemas.sh``, which downloads the pinned sources and passes their paths.
Writes one self-contained, strict JSON schema per kind the chart renders, in the layout
kubeconform reads with ``-schema-location '<dir>/{{ .Group }}/{{ .ResourceKind }}_{{
.ResourceAPIVersion }}.json'`` (the core group's directory is ``v1``), and ``SOURCES.json``
recording where each came from.

What the conversion does, and why:

* Only what validation needs is kept: descriptions, defaults and formats are dropped (the
  files stay small, and kubeconform's validator does not check formats anyway).
* Strict: an object that lists its properties gets ``additionalProperties: false`` unless it is
  marked ``x-kubernetes-preserve-unknown-fields``, so a misspelled field is an error, as it is
  for the API server's own field validation (``kubectl apply --validate=strict``).
* Kubernetes' two dual-typed values are spelled out: int-or-string (ports, percentages) and
  resource quantities (``cpu: 1`` as well as ``cpu: 500m``).
* ``apiVersion`` and ``kind`` are pinned to the one kind each file describes.
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

INT_OR_STRING = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
QUANTITY = {"anyOf": [{"type": "number"}, {"type": "string"}]}
_SPECIAL_DEFS = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": INT_OR_STRING,
    "io.k8s.apimachinery.pkg.api.resource.Quantity": QUANTITY,
}
_DROP = {
    "description", "default", "format", "example", "nullable",
    "x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-map-keys", "x-kubernetes-list-type", "x-kubernetes-map-type",
    "x-kubernetes-patch-merge-key", "x-kubernetes-patch-strategy",
    "x-kubernetes-group-version-kind", "x-kubernetes-validations",
    "x-kubernetes-embedded-resource", "x-kubernetes-unions",
}  # fmt: skip
_K8S_REF = "#/components/schemas/"


def _convert_key(key: str, value: Any) -> Any:
    if key == "$ref":
        return "#/definitions/" + value.removeprefix(_K8S_REF)
    if key == "properties":
        return {name: convert(sub) for name, sub in value.items()}
    if key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
        return convert(value)
    return value


def convert(node: Any) -> Any:
    """One OpenAPI v3 / CRD schema node as a strict JSON schema node (recursively)."""
    if isinstance(node, list):
        return [convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("x-kubernetes-int-or-string"):
        return dict(INT_OR_STRING)
    out = {key: _convert_key(key, value) for key, value in node.items() if key not in _DROP}
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    preserve = node.get("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_K8S_REF):
            found.add(ref.removeprefix(_K8S_REF))
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def _pin_kind(schema: dict[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {"type": "string", "enum": [api_version]}
    props["kind"] = {"type": "string", "enum": [kind]}
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind"})
    return schema


def kubernetes_schema(spec_dir: Path, api_version: str, kind: str) -> tuple[dict[str, Any], Path]:
    """The schema of a built-in kind, with the definitions it reaches, from the OpenAPI v3 spec."""
    group, _, version = api_version.rpartition("/")
    fname = (
        f"api__{version}_openapi.json" if not group else f"apis__{group}__{version}_openapi.json"
    )
    source = spec_dir / fname
    components = json.loads(source.read_text())["components"]["schemas"]
    root = next(
        name
        for name, schema in components.items()
        for gvk in schema.get("x-kubernetes-group-version-kind", [])
        if gvk["group"] == group
        and gvk["version"] == version
        and gvk["kind"] == kind
        and not name.endswith("List")
    )
    needed, todo = set(), [root]
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        if name not in _SPECIAL_DEFS:
            todo.extend(_refs(components[name]) - needed)
    definitions = {
        name: dict(_SPECIAL_DEFS[name]) if name in _SPECIAL_DEFS else convert(components[name])
        for name in sorted(needed)
    }
    schema = {"$ref": f"#/definitions/{root}", "definitions": definitions}
    # The root is a reference; pin apiVersion and kind on the referenced definition itself.
    _pin_kind(definitions[root], api_version, kind)
    return schema, source


def crd_schema(crd_file: Path, api_version: str, kind: str) -> dict[str, Any]:
    """The schema of ``kind`` at ``api_version`` from a CustomResourceDefinition file."""
    group, _, version = api_version.rpartition("/")
    for doc in yaml.safe_load_all(crd_file.read_text()):
        if not doc or doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc["spec"]
        if spec["group"] != group or spec["names"]["kind"] != kind:
            continue
        for served in spec["versions"]:
            if served["name"] == version and served.get("served", True):
                schema = convert(served["schema"]["openAPIV3Schema"])
                return _pin_kind(schema, api_version, kind)
        raise SystemExit(f"{crd_file}: {kind} has no served version {version}")
    raise SystemExit(f"{crd_file}: no CRD for {group} {kind}")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    """Write the schemas named in the manifest (see tools/vendor-schemas.sh)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--manifest",
        type=Path,
        required=True,
        help="JSON: {out, kubernetes: {version, source, spec_dir, kinds}, crds: [...]}",
    )
    args = parser.parse_args()
    manifest = json.loads(args.manifest.read_text())
    out = Path(manifest["out"])
    sources: dict[str, Any] = {"generated_by": "tools/vendor-schemas.sh", "schemas": {}}

    def write(api_version: str, kind: str, schema: dict[str, Any], origin: dict[str, str]) -> None:
        group, _, version = api_version.rpartition("/")
        path = out / (group or version) / f"{kind.lower()}_{version}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        schema = {"$schema": "http://json-schema.org/draft-07/schema#", **schema}
        path.write_text(json.dumps(schema, sort_keys=True, separators=(",", ":")) + "\n")
        sources["schemas"][str(path.relative_to(out))] = {
            "apiVersion": api_version,
            "kind": kind,
            **origin,
        }
        sys.stdout.write(
            f"vendor-schemas: {path.relative_to(out)} ({path.stat().st_size // 1024} KiB)\n"
        )

    k8s = manifest["kubernetes"]
    spec_dir = Path(k8s["spec_dir"])
    for api_version, kind in k8s["kinds"]:
        schema, source = kubernetes_schema(spec_dir, api_version, kind)
        write(
            api_version,
            kind,
            schema,
            {
                "source": k8s["source"],
                "file": f"{k8s['file_prefix']}/{source.name}",
                "sha256": _sha256(source),
            },
        )
    for crd in manifest["crds"]:
        path = Path(crd["path"])
        write(
            crd["apiVersion"],
            crd["kind"],
            crd_schema(path, crd["apiVersion"], crd["kind"]),
            {
                "source": crd["source"],
                "file": crd["file"],
                "sha256": _sha256(path),
            },
        )
    (out / "SOURCES.json").write_text(json.dumps(sources, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
