"""Comparing a service's OpenAPI document with the Flask app it describes (ingest and fanout)."""

import re
from typing import Any

from flask import Flask

METHODS = {"get", "post", "put", "patch", "delete"}


def app_operations(app: Flask) -> set[tuple[str, str]]:
    """(OpenAPI path, method) of every route the app serves, static files aside."""
    ops = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        ops |= {(path, m.lower()) for m in rule.methods or () if m.lower() in METHODS}
    return ops


def documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    """(path, method) of every operation the document lists."""
    return {(p, m) for p, item in document["paths"].items() for m in item if m in METHODS}


def refs(node: object) -> list[str]:
    """Every ``$ref`` in a document, depth first."""
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def resolve(document: dict[str, Any], ref: str) -> object:
    """The node a local ``#/...`` reference points at (KeyError if there is none)."""
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node
