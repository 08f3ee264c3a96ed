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
    store = bool(getattr(body, "store", None))
    policy = policy_for(resolved.deployment, store)
    if policy is None:
        return events
    deployment = resolved.deployment
    pending = Pending(id=cid, project_id=caller.project_id,
                      deployment_id=deployment.id if deployment else None, model_id=resolved.model.id,
                      endpoint=endpoint, policy=policy, redact_pii=bool(deployment and deployment.redact_pii),
                      request=body.model_dump(mode="json", exclude_none=True),
                      meta=dict(getattr(body, "metadata", None) or {}), user=body.user)
    return _logged(events, n, pending, platform.log_writer, respond, prompt_text, durable=store)


async def _logged(events, n: int, pending: Pending, writer, respond, prompt_text: str, *, durable: bool):
    """Pass the chunks on; when they end, log the row. A completed answer the client asked to
    store (`durable`) ends only once its row is committed: the writer's error (503 / 507)
    surfaces here instead, so a non-streamed request fails rather than answering 200, and a
    stream ends with an error event instead of its usage chunk and [DONE]."""
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
        row = pending.row(status, response, prompt_text, answer,
                          sum(c.prompt_tokens for c in out), sum(c.completion_tokens for c in out))
        if not (durable and status == "completed"):
            writer.submit(row)  # not acknowledged as stored (or not asked to be): best effort
    if durable:  # completed: shielded, a client leaving now must not cancel a commit under way
        await asyncio.shield(asyncio.wrap_future(writer.submit(row, durable=True)))
