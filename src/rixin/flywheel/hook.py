"""The logging hook of chat/completions: it observes how a request's chunk stream ended
(completed, failed, or cancelled by the client) and what was answered, and hands one row to
the log writer. It is told, never asked: nothing here calls back into the API."""

from __future__ import annotations

import asyncio

from rixin.engines.base import Collected
from rixin.flywheel.logs import LogWriter, Pending, policy_for
from rixin.serving.deployments import Resolved
from rixin.store.tenancy import Caller


class Record:
    """The log row of one request in flight, written once it ends."""

    def __init__(self, pending: Pending, writer: LogWriter, prompt_text: str, durable: bool):
        self.pending, self.writer, self.prompt_text, self.durable = pending, writer, prompt_text, durable

    def _row(self, status: str, response: dict, results: list[Collected]):
        answer = "\n".join(c.text for c in results)
        return self.pending.row(status, response, self.prompt_text, answer,
                                sum(c.prompt_tokens for c in results), sum(c.completion_tokens for c in results))

    def ended(self, status: str, response: dict, results: list[Collected]) -> None:
        """A failed or cancelled request (`response` partial): logged best effort."""
        self.writer.submit(self._row(status, response, results))

    async def completed(self, response: dict, results: list[Collected]) -> None:
        """A completed answer. One the client asked to store (`durable`) returns only once its
        row is committed: the writer's error (503 / 507) surfaces here, so a non-streamed
        request fails rather than answering 200, and a stream ends with an error event instead
        of its usage chunk and [DONE]. Others are logged best effort."""
        row = self._row("completed", response, results)
        if not self.durable:
            self.writer.submit(row)  # not acknowledged as stored (or not asked to be)
            return
        # shielded: a client leaving now must not cancel a commit under way
        await asyncio.shield(asyncio.wrap_future(self.writer.submit(row, durable=True)))


def track(writer: LogWriter, caller: Caller, resolved: Resolved, body, *, cid: str, endpoint: str,
          prompt_text: str) -> Record | None:
    """The log record of a request, if the deployment's policy or the request's `store` asks
    for one; None when nothing is logged."""
    store = bool(getattr(body, "store", None))
    policy = policy_for(resolved.deployment, store)
    if policy is None:
        return None
    deployment = resolved.deployment
    pending = Pending(id=cid, project_id=caller.project_id,
                      deployment_id=deployment.id if deployment else None, model_id=resolved.model.id,
                      endpoint=endpoint, policy=policy, redact_pii=bool(deployment and deployment.redact_pii),
                      request=body.model_dump(mode="json", exclude_none=True),
                      meta=dict(getattr(body, "metadata", None) or {}), user=body.user)
    return Record(pending, writer, prompt_text, durable=store)
