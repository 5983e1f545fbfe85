"""JSON in and out of the lookup routes, through orjson.

A batched lookup answers up to 10,000 results: the standard library's encoder spent a quarter
of such a request's time rendering them (py-spy under wrk), orjson a small fraction. Request
bodies are parsed and validated in one pass by pydantic-core (`parse_body`), not `json.loads`
followed by model validation.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
import pydantic
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)


class FastJSONResponse(JSONResponse):
    """A `JSONResponse` rendered by orjson (compact, UTF-8, as the standard one)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def parse_body(model: type[ModelT], body: bytes) -> ModelT:
    """`body` as `model`; a 422 in FastAPI's own shape (locations under ``body``) when it is
    not JSON or not valid."""
    try:
        return model.model_validate_json(body)
    except pydantic.ValidationError as exc:
        errors = [
            {**error, "loc": ("body", *error["loc"])}
            for error in exc.errors(include_url=False, include_context=False)
        ]
        raise RequestValidationError(errors, body=body) from None


#: Models of bodies parsed by `parse_body`, whose schemas the OpenAPI document must carry.
BODY_MODELS: dict[str, type[pydantic.BaseModel]] = {}


def body_schema(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` metadata for a route that parses its JSON body itself."""
    BODY_MODELS[model.__name__] = model
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        }
    }


def add_body_schemas(schemas: dict[str, Any]) -> None:
    """Put the schemas of `BODY_MODELS` (and the models they use) into `schemas`, the OpenAPI
    document's ``components.schemas``."""
    for name, model in BODY_MODELS.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for sub_name, sub_schema in schema.pop("$defs", {}).items():
            schemas.setdefault(sub_name, sub_schema)
        schemas.setdefault(name, schema)
