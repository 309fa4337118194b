"""The JSON Schema (draft 2020-12) files shipped in `edge/publish/schemas/` and `validate(topic, payload)`."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource

from edge.publish.errors import MessageError, SchemaValidationError
from edge.publish.wire import TOPICS

SCHEMA_FILES = {topic: f"{topic.rsplit('.', 1)[1]}.json" for topic in TOPICS}
COMMON_FILE = "common.json"


def load_schema(name: str) -> dict[str, Any]:
    """A schema file's JSON by topic (`qamoe.v1.health`) or file name (`common.json`)."""
    filename = SCHEMA_FILES.get(name, name)
    ref = resources.files("edge.publish").joinpath("schemas", filename)
    if not ref.is_file():
        raise MessageError(f"no schema {name!r}: use a topic ({', '.join(TOPICS)}) or {COMMON_FILE}")
    return json.loads(ref.read_text(encoding="utf-8"))


@cache
def _validator(topic: str) -> Draft202012Validator:
    if topic not in SCHEMA_FILES:
        raise MessageError(f"unknown topic {topic!r}: use one of {', '.join(TOPICS)}")
    common = load_schema(COMMON_FILE)
    registry: Registry = Registry().with_resource(common["$id"], Resource.from_contents(common))
    schema = load_schema(topic)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=registry)


def validate(topic: str, payload: Any) -> None:
    """Raise SchemaValidationError (naming the field) unless `payload` is a valid `topic` message."""
    error = best_match(_validator(topic).iter_errors(payload))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise SchemaValidationError(
            f"{topic} payload invalid at {where}: {error.message:.300} (build payloads with "
            "edge.publish.sentiment_message / transcript_message / health_message / frame_message)"
        )


def is_valid(topic: str, payload: Any) -> bool:
    return _validator(topic).is_valid(payload)
