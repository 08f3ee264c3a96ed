"""Embeddings: one batch through the embedding engine; float lists or base64 of float32."""

from __future__ import annotations

import base64

from starlette.concurrency import run_in_threadpool

from rixin.api.embeddings.protocol import EmbeddingRequest
from rixin.errors import InvalidRequest
from rixin.models.registry import spec_of
from rixin.platform import Platform
from rixin.store.tenancy import Caller


def texts_of(value) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    if not all(isinstance(t, str) for t in texts):
        raise InvalidRequest("Token-id inputs are not supported (token ids differ between models); "
                             "send strings.", param="input", code="invalid_type")
    for i, t in enumerate(texts):
        if not t:
            param = "input" if isinstance(value, str) else f"input[{i}]"
            raise InvalidRequest(f"Invalid '{param}': empty string; every input must contain text.",
                                 param=param, code="empty_string")
    return texts


async def create(platform: Platform, caller: Caller, body: EmbeddingRequest) -> dict:
    row = await run_in_threadpool(platform.registry.get, body.model, caller, kind="embedding")
    texts = texts_of(body.input)
    result = await platform.pool.embed(spec_of(row), texts, caller.project_id)
    native = result.vectors.shape[1]
    if body.dimensions is not None and body.dimensions != native:
        raise InvalidRequest(f"The model '{row.id}' does not support 'dimensions' other than its "
                             f"native {native}; omit 'dimensions'.", param="dimensions",
                             code="unsupported_value")
    if body.encoding_format == "base64":
        data = [base64.b64encode(v.astype("<f4").tobytes()).decode() for v in result.vectors]
    else:
        data = [v.tolist() for v in result.vectors]
    return {"object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(data)],
            "model": row.id,
            "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}}
