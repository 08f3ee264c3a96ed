"""What chat and completions share: strict number types, stop and stream options, and the
turning of validated request fields into engine SamplingParams."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from rixin.api.params import Integer
from rixin.engines.base import SamplingParams
from rixin.errors import InvalidRequest
from rixin.grammar import check_decodable
from rixin.schemas import check_schema

Number = Union[StrictInt, StrictFloat]
Stop = Union[StrictStr, Annotated[list[StrictStr], Field(max_length=4)], None]


class Lenient(BaseModel):
    """Unknown fields are accepted and ignored: OpenAI clients send new fields all the time."""

    model_config = ConfigDict(extra="ignore")


class StreamOptions(Lenient):
    include_usage: StrictBool | None = None


class JsonSchemaFormat(Lenient):
    name: StrictStr = Field(max_length=64)
    description: StrictStr | None = None
    schema_: dict | None = Field(None, alias="schema")
    strict: StrictBool | None = None


class ResponseFormat(Lenient):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


def stop_list(stop: str | list[str] | None) -> list[str]:
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else list(stop)


def structured_output(fmt: ResponseFormat | None) -> tuple[dict | None, bool]:
    """(JSON schema, json_object flag) from response_format. The schema is checked here, before
    any engine sees it: local references only, bounded size, and a grammar llama.cpp can use
    (an empty one crashed the shared engine; rixin/grammar.py)."""
    if fmt is None or fmt.type == "text":
        return None, False
    if fmt.type == "json_object":
        return None, True
    if fmt.json_schema is None:
        raise InvalidRequest("Missing required parameter: 'response_format.json_schema' "
                             "(type json_schema needs a json_schema object with name and schema).",
                             param="response_format.json_schema", code="missing_required_parameter")
    schema = fmt.json_schema.schema_ or {"type": "object"}
    return check_schema(schema, param="response_format.json_schema.schema", checker=check_decodable), False


def sampling_params(*, max_tokens: int | None, temperature: float | None, top_p: float | None,
                    stop, seed: int | None, logprobs: bool, top_logprobs: int | None,
                    presence_penalty: float | None, frequency_penalty: float | None,
                    response_format: ResponseFormat | None = None) -> SamplingParams:
    schema, json_object = structured_output(response_format)
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=1.0 if temperature is None else float(temperature),
        top_p=1.0 if top_p is None else float(top_p),
        stop=stop_list(stop),
        seed=seed,
        logprobs=logprobs,
        top_logprobs=top_logprobs or 0,
        presence_penalty=float(presence_penalty or 0.0),
        frequency_penalty=float(frequency_penalty or 0.0),
        json_schema=schema,
        json_object=json_object,
    )


def check_n(n: int | None, max_n: int) -> int:
    n = 1 if n is None else n
    if n > max_n:
        raise InvalidRequest(f"Invalid 'n': at most {max_n} choices per request on this server, "
                             f"got {n}. Lower n or send several requests.", param="n",
                             code="integer_above_max_value")
    return n


def reject_unsupported(**fields) -> None:
    """400 for features we do not implement, rather than silently ignoring them."""
    for name, value in fields.items():
        if value:
            raise InvalidRequest(f"'{name}' is not supported by rixin yet; remove it from the request.",
                                 param=name, code="unsupported_parameter")


Temperature = Annotated[Number, Field(ge=0, le=2)]
TopP = Annotated[Number, Field(ge=0, le=1)]
Penalty = Annotated[Number, Field(ge=-2, le=2)]
PositiveInt = Annotated[Integer, Field(ge=1)]
# OpenAI's seed is an int64; engines fail on larger ones (torch's generator takes at most 64 bits).
Seed = Annotated[Integer, Field(ge=-2**63, le=2**63 - 1)]
