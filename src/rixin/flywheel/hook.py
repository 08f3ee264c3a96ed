"""The logging hook of chat/completions: wraps a request's chunk stream and, when the stream
ends (finished, failed or cancelled by the client), hands one row to the log writer."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Callable

from rixin.api.streaming import Collected
from rixin.engines.base import Chunk
from rixin.flywheel.deployments import Resolved
from rixin.flywheel.logs import Pending, policy_for
from rixin.store.tenancy import Caller


def track(platform, caller: Caller, resolved: Resolved, body, *, cid: str, endpoint: str, n: int,
          events: AsyncIterator[tuple[int, Chunk]], respond: Callable[[list[Collected]], dict],
          prompt_text: str) -> AsyncIterator[tuple[int, Chunk]]:
    """`events`, logged if the deployment's policy or the request's `store` says so."""
    policy = policy_for(resolved.deployment, getattr(body, "store", None))
    if policy is None:
        return events
    deployment = resolved.deployment
    pending = Pending(id=cid, project_id=caller.project_id,
                      deployment_id=deployment.id if deployment else None, model_id=resolved.model.id,
                      endpoint=endpoint, policy=policy, redact_pii=bool(deployment and deployment.redact_pii),
                      request=body.model_dump(mode="json", exclude_none=True),
                      meta=dict(getattr(body, "metadata", None) or {}), user=body.user)
    return _logged(events, n, pending, platform.log_writer, respond, prompt_text)


async def _logged(events, n: int, pending: Pending, writer, respond, prompt_text: str):
    out = [Collected() for _ in range(n)]
    status = "failed"
    try:
        async for index, chunk in events:
            out[index].add(chunk)
            yield index, chunk
        status = "completed"
    except (GeneratorExit, asyncio.CancelledError):
        status = "cancelled"
        raise
    finally:
        await events.aclose()
        response = respond(out)  # partial for a failed or cancelled request
        answer = "\n".join(c.text for c in out)
        writer.submit(pending.row(status, response, prompt_text, answer,
                                  sum(c.prompt_tokens for c in out), sum(c.completion_tokens for c in out)))
