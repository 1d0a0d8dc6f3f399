"""Every service publishes a valid OpenAPI whose references all resolve, and documents its refusals' shape."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from openapi_spec_validator import validate

pytestmark = pytest.mark.unit

SERVICES = ("partners", "workshops", "detection", "metrics")


def spec_of(name: str) -> dict[str, Any]:
    return importlib.import_module(f"services.{name}.main").build_app().openapi()


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def resolve(spec: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref} points outside the document"
    node: Any = spec
    for part in ref[2:].split("/"):
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


@pytest.mark.parametrize("name", SERVICES)
def test_the_openapi_is_valid_and_every_reference_resolves(name: str) -> None:
    spec = spec_of(name)
    validate(spec)
    for ref in refs(spec):
        resolve(spec, ref)


@pytest.mark.parametrize("name", SERVICES)
def test_every_route_documents_the_refusal_shape(name: str) -> None:
    spec = spec_of(name)
    assert spec["components"]["schemas"]["Refusal"]["properties"]["detail"] == {
        "type": "string",
        "title": "Detail",
        "description": "why, in words a caller can act on",
    }
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if "ops" in op.get("tags", ()):
                continue
            assert "4XX" in op["responses"] and "503" in op["responses"], (method, path)
            if "422" in op["responses"]:
                schema = op["responses"]["422"]["content"]["application/json"]["schema"]
                assert {"$ref": "#/components/schemas/Refusal"} in schema["anyOf"], (method, path)


def test_the_detection_body_schema_holds_its_own_definitions() -> None:
    spec = spec_of("detection")
    body = spec["paths"]["/v1/detections"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    single = body["oneOf"][0]
    assert "$defs" not in single and not refs(body)
    assert "online_banking" in single["properties"]["referral"]["anyOf"][0]["properties"]["theme"]["anyOf"][0]["enum"]
