"""POST /v1/embeddings, in the OpenAI spec's field order."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, StrictInt, StrictStr

from rixin.api.sampling import Lenient

Input = Union[StrictStr, Annotated[list[StrictStr], Field(min_length=1, max_length=2048)],
              Annotated[list[StrictInt], Field(min_length=1)], Annotated[list[list[StrictInt]], Field(min_length=1)]]


class EmbeddingRequest(Lenient):
    input: Input
    model: StrictStr
    dimensions: Annotated[StrictInt, Field(ge=1)] | None = None
    encoding_format: Literal["float", "base64"] | None = None
    user: StrictStr | None = None
