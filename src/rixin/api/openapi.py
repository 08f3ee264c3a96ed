"""The OpenAPI document as clients (and schemathesis) should read it.

FastAPI documents its own 422 and no security; rixin answers 400 for invalid input, 401 without
a key and 404 for ids of other projects. This rewrites each operation: the errors we answer with
the OpenAI error schema, the Bearer scheme on every authenticated route, and the shape of each
success answer (the objects rixin returns; extra fields are allowed, the named ones are checked).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMA = {
    "type": "object", "required": ["error"], "title": "Error",
    "properties": {"error": {"type": "object", "required": ["message", "type", "param", "code"], "properties": {
        "message": {"type": "string"}, "type": {"type": "string"},
        "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}},
}
ERRORS = {
    400: "Invalid request: a parameter is missing, of the wrong type or out of range.",
    401: "Missing or wrong API key.",
    403: "The key may not do this (an admin route, or a read-only key).",
    404: "No such route, or no such id in the caller's project.",
    409: "Conflicts with the current state (a name in use, a job already finished).",
    429: "A queue is full or a rate limit was hit; retry after `retry-after` seconds.",
}
BODY_ERRORS = {
    408: "The request body stalled.",
    413: "The request body is over the limit.",
}
SERVICE_ERRORS = {503: "The engine is restarting, or the server is not ready yet."}

STR, INT, NUM, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}
OPT_STR, OPT_INT = {"type": ["string", "null"]}, {"type": ["integer", "null"]}
ANY_OBJ = {"type": "object"}


def obj(object_: str | None, id_: bool = True, **fields) -> dict:
    """An object with `object: object_` (when given), an id, and these fields (all required)."""
    props = dict(fields)
    if object_ is not None:
        props["object"] = {"const": object_}
    if id_:
        props["id"] = STR
    return {"type": "object", "required": sorted(props), "properties": props}


def listof(item: dict, **fields) -> dict:
    return obj("list", id_=False, data={"type": "array", "items": item}, **fields)


def deleted(kind: str) -> dict:
    return obj(kind, deleted={"const": True})


MODEL = obj("model", created=INT, owned_by=STR)
FILE = obj("file", bytes=INT, created_at=INT, filename=STR, purpose=STR)
DATA_JOB = obj("job", kind=STR, status=STR)
FT_JOB = obj("fine_tuning.job", model=STR, status=STR, created_at=INT, training_file=STR)
VERSION = obj("dataset.version", dataset_id=STR, version=INT)
DATASET = obj("dataset", name=STR, versions={"type": "array", "items": VERSION})
PROJECT = obj("project", name=STR)
API_KEY = obj("api_key", project=STR)
REVIEW = obj("review_item", dataset_id=STR)
EVAL_RUN = obj("eval.run", status=STR)
DEPLOYMENT = obj("deployment", name=STR, model=STR, version=INT, logging=STR, flywheel=ANY_OBJ)
CHANGE = obj("deployment.change", version=INT, action=STR)
STORED = obj("chat.completion", model=STR, choices={"type": "array"}, metadata=ANY_OBJ)
LOG = obj("request_log", endpoint=STR, status=STR, created_at=INT)
FEEDBACK = obj("feedback", completion_id=STR)
TURN = obj("flywheel.turn", status=STR)
RECIPE = obj("recipe", name=STR, source=STR, recipe=ANY_OBJ)
ORG_PROJECT = obj("organization.project", name=STR, created_at=INT, status=STR)
ORG_KEY = obj("organization.project.api_key", redacted_value=STR, created_at=INT)
RATE_LIMIT = obj("project.rate_limit", model=STR, max_requests_per_1_minute=INT, max_tokens_per_1_minute=INT)
PRICE = obj("organization.price", model=STR, input_per_1m=NUM, cached_input_per_1m=NUM, output_per_1m=NUM)
BUDGET = obj("organization.project.budget", monthly_usd={"type": ["number", "null"]})
BUCKETS = obj("page", id_=False, has_more=BOOL, next_page=OPT_STR,
              data={"type": "array", "items": obj("bucket", id_=False, start_time=INT, end_time=INT,
                                                  results={"type": "array", "items": ANY_OBJ})})
AUDIT = obj("organization.audit_log", type=STR, effective_at=INT, actor=ANY_OBJ)
USAGE = {"type": "object", "required": ["prompt_tokens", "total_tokens"],
         "properties": {"prompt_tokens": INT, "total_tokens": INT}}
PAGE = {"has_more": BOOL}
BATCH = obj("batch", endpoint=STR, input_file_id=STR, completion_window=STR, status=STR, created_at=INT,
            request_counts=ANY_OBJ)
UPLOAD = obj("upload", bytes=INT, filename=STR, purpose=STR, status=STR, expires_at=INT)
QUOTA = obj("organization.project.quota", id_=False, project_id=STR, guaranteed=ANY_OBJ, borrow_limit=ANY_OBJ)

OK: dict[tuple[str, str], dict] = {
    ("GET", "/health"): {"type": "object", "required": ["status", "version"],
                         "properties": {"status": STR, "version": STR}},
    ("GET", "/v1/engines"): listof(ANY_OBJ),
    ("GET", "/v1/cluster"): ANY_OBJ,
    ("GET", "/v1/organization/projects/{project_id}/quota"): QUOTA,
    ("PUT", "/v1/organization/projects/{project_id}/quota"): QUOTA,
    ("GET", "/v1/models"): listof(MODEL),
    ("GET", "/v1/models/{model_id}"): MODEL,
    ("POST", "/v1/chat/completions"): obj("chat.completion", model=STR, created=INT, choices={"type": "array"},
                                          usage=USAGE),
    ("GET", "/v1/chat/completions"): listof(STORED, **PAGE),
    ("GET", "/v1/chat/completions/{completion_id}"): STORED,
    ("POST", "/v1/chat/completions/{completion_id}"): STORED,
    ("DELETE", "/v1/chat/completions/{completion_id}"): deleted("chat.completion.deleted"),
    ("GET", "/v1/chat/completions/{completion_id}/messages"): listof(obj(None, role=STR), **PAGE),
    ("POST", "/v1/completions"): obj("text_completion", model=STR, created=INT, choices={"type": "array"},
                                     usage=USAGE),
    ("POST", "/v1/embeddings"): listof(obj("embedding", id_=False, index=INT), model=STR, usage=USAGE),
    ("POST", "/v1/files"): FILE,
    ("GET", "/v1/files"): listof(FILE),
    ("GET", "/v1/files/{file_id}"): FILE,
    ("DELETE", "/v1/files/{file_id}"): deleted("file"),
    ("POST", "/v1/batches"): BATCH,
    ("GET", "/v1/batches"): listof(BATCH, **PAGE),
    ("GET", "/v1/batches/{batch_id}"): BATCH,
    ("POST", "/v1/batches/{batch_id}/cancel"): BATCH,
    ("POST", "/v1/uploads"): UPLOAD,
    ("POST", "/v1/uploads/{upload_id}/parts"): obj("upload.part", upload_id=STR, created_at=INT),
    ("POST", "/v1/uploads/{upload_id}/complete"): UPLOAD,
    ("POST", "/v1/uploads/{upload_id}/cancel"): UPLOAD,
    ("GET", "/v1/datasets"): listof(DATASET),
    ("POST", "/v1/datasets"): DATASET,
    ("GET", "/v1/datasets/{dataset_id}"): DATASET,
    ("GET", "/v1/datasets/{dataset_id}/versions/{version}"): VERSION,
    ("GET", "/v1/datasets/{dataset_id}/versions/{version}/records"): listof(ANY_OBJ, offset=INT, total=INT),
    ("POST", "/v1/datasets/{dataset_id}/clean"): DATA_JOB,
    ("POST", "/v1/datasets/{dataset_id}/label"): DATA_JOB,
    ("POST", "/v1/datasets/{dataset_id}/review/commit"): ANY_OBJ,
    ("GET", "/v1/jobs"): listof(DATA_JOB),
    ("GET", "/v1/jobs/{job_id}"): DATA_JOB,
    ("POST", "/v1/jobs/{job_id}/cancel"): DATA_JOB,
    ("POST", "/v1/fine_tuning/jobs"): FT_JOB,
    ("POST", "/v1/fine_tuning/jobs/estimate"): obj("fine_tuning.job.estimate", id_=False, model=STR, resolved=ANY_OBJ),
    ("GET", "/v1/fine_tuning/jobs"): listof(FT_JOB, **PAGE),
    ("GET", "/v1/fine_tuning/jobs/{job_id}"): FT_JOB,
    ("GET", "/v1/fine_tuning/jobs/{job_id}/events"): listof(obj("fine_tuning.job.event", message=STR), **PAGE),
    ("GET", "/v1/fine_tuning/jobs/{job_id}/checkpoints"): listof(obj("fine_tuning.job.checkpoint"), **PAGE),
    ("POST", "/v1/fine_tuning/jobs/{job_id}/cancel"): FT_JOB,
    ("POST", "/v1/fine_tuning/jobs/{job_id}/pause"): FT_JOB,
    ("POST", "/v1/fine_tuning/jobs/{job_id}/resume"): FT_JOB,
    ("GET", "/v1/me"): obj("caller", id_=False, project=STR, project_id=STR),
    ("GET", "/v1/projects"): listof(PROJECT),
    ("POST", "/v1/projects"): PROJECT,
    ("GET", "/v1/projects/{project}/api_keys"): listof(API_KEY),
    ("POST", "/v1/projects/{project}/api_keys"): API_KEY,
    ("DELETE", "/v1/projects/{project}/api_keys/{key_id}"): API_KEY,
    ("GET", "/v1/organization/projects"): listof(ORG_PROJECT, **PAGE),
    ("POST", "/v1/organization/projects"): ORG_PROJECT,
    ("GET", "/v1/organization/projects/{project_id}"): ORG_PROJECT,
    ("GET", "/v1/organization/projects/{project_id}/api_keys"): listof(ORG_KEY, **PAGE),
    ("POST", "/v1/organization/projects/{project_id}/api_keys"): ORG_KEY,
    ("DELETE", "/v1/organization/projects/{project_id}/api_keys/{key_id}"):
        deleted("organization.project.api_key.deleted"),
    ("GET", "/v1/organization/projects/{project_id}/rate_limits"): listof(RATE_LIMIT, **PAGE),
    ("POST", "/v1/organization/projects/{project_id}/rate_limits/{rate_limit_id}"): RATE_LIMIT,
    ("GET", "/v1/organization/projects/{project_id}/budget"): BUDGET,
    ("POST", "/v1/organization/projects/{project_id}/budget"): BUDGET,
    ("GET", "/v1/organization/prices"): listof(PRICE, **PAGE),
    ("POST", "/v1/organization/prices/{model}"): PRICE,
    ("GET", "/v1/organization/usage/completions"): BUCKETS,
    ("GET", "/v1/organization/usage/embeddings"): BUCKETS,
    ("GET", "/v1/organization/costs"): BUCKETS,
    ("GET", "/v1/me/usage/completions"): BUCKETS,
    ("GET", "/v1/me/usage/embeddings"): BUCKETS,
    ("GET", "/v1/me/costs"): BUCKETS,
    ("GET", "/v1/organization/audit_logs"): listof(AUDIT, **PAGE),
    ("GET", "/v1/organization/compute"): obj("organization.compute", id_=False, capacity=ANY_OBJ,
                                              projects={"type": "array"}, loans={"type": "array"},
                                              events={"type": "array"}),
    ("GET", "/v1/review_items"): listof(REVIEW, **PAGE),
    ("GET", "/v1/review_items/{item_id}"): REVIEW,
    ("POST", "/v1/review_items/{item_id}/accept"): REVIEW,
    ("POST", "/v1/review_items/{item_id}/correct"): REVIEW,
    ("POST", "/v1/review_items/{item_id}/reject"): REVIEW,
    ("GET", "/v1/evals/graders"): listof(obj("eval.grader", id_=False, type=STR, engine=OPT_STR,
                                             config_schema=ANY_OBJ), **PAGE),
    ("POST", "/v1/evals/runs"): EVAL_RUN,
    ("GET", "/v1/evals/runs"): listof(EVAL_RUN, **PAGE),
    ("GET", "/v1/evals/runs/{run_id}"): EVAL_RUN,
    ("GET", "/v1/evals/runs/{run_id}/items"): listof(ANY_OBJ, **PAGE),
    ("GET", "/v1/deployments"): listof(DEPLOYMENT, **PAGE),
    ("POST", "/v1/deployments"): DEPLOYMENT,
    ("GET", "/v1/deployments/{name}"): DEPLOYMENT,
    ("POST", "/v1/deployments/{name}"): DEPLOYMENT,
    ("DELETE", "/v1/deployments/{name}"): deleted("deployment"),
    ("POST", "/v1/deployments/{name}/rollback"): DEPLOYMENT,
    ("GET", "/v1/deployments/{name}/changes"): listof(CHANGE, **PAGE),
    ("GET", "/v1/logs"): listof(LOG, **PAGE),
    ("POST", "/v1/feedback"): FEEDBACK,
    ("GET", "/v1/feedback"): listof(FEEDBACK),
    ("POST", "/v1/deployments/{name}/flywheel/turns"): TURN,
    ("GET", "/v1/deployments/{name}/flywheel/turns"): listof(TURN, **PAGE),
    ("GET", "/v1/deployments/{name}/flywheel/turns/{turn_id}"): TURN,
    ("POST", "/v1/deployments/{name}/flywheel/export"): obj("flywheel.export", id_=False),
    ("POST", "/v1/recipes"): RECIPE,
    ("GET", "/v1/recipes"): listof(RECIPE, **PAGE),
    ("GET", "/v1/recipes/{recipe_id}"): RECIPE,
    ("DELETE", "/v1/recipes/{recipe_id}"): deleted("recipe.deleted"),
}
# answers that are not JSON objects: their media type is what is declared
RAW = {("GET", "/metrics"): "text/plain", ("GET", "/v1/files/{file_id}/content"): "application/octet-stream"}
STREAMS = {("POST", "/v1/chat/completions"), ("POST", "/v1/completions")}
PUBLIC = {"/health", "/openapi.json"}


def _error_responses(codes: dict[int, str]) -> dict:
    return {str(code): {"description": text, "content": {"application/json": {"schema": ERROR}}}
            for code, text in codes.items()}


def rewrite(doc: dict) -> dict:
    doc.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        doc["components"]["schemas"].pop(name, None)
    doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer",
                                                       "description": "An API key: Authorization: Bearer KEY"}}
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            key = (method.upper(), path)
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            ok = responses.setdefault("200", {"description": "Successful Response"})
            if key in RAW:
                ok["content"] = {RAW[key]: {"schema": STR if RAW[key].startswith("text") else
                                            {"type": "string", "format": "binary"}}}
            elif key in OK:
                ok["content"] = {"application/json": {"schema": OK[key]}}
                if key in STREAMS:
                    ok["content"]["text/event-stream"] = {"schema": STR}
            codes = dict(ERRORS)
            if "requestBody" in op or method.upper() == "POST":
                codes.update(BODY_ERRORS)
            if path.startswith("/v1/"):
                codes.update(SERVICE_ERRORS)
            if key == ("GET", "/health"):
                responses["503"] = {"description": "Not ready yet (the bundled chat model is loading).",
                                    "content": {"application/json": {"schema": ANY_OBJ}}}
            if path not in PUBLIC:
                op["security"] = [{"bearer": []}]
            responses.update({k: v for k, v in _error_responses(codes).items() if k not in responses})
    return doc


def install(app: FastAPI) -> None:
    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = rewrite(get_openapi(title=app.title, version=app.version,
                                                     description=app.description, routes=app.routes))
        return app.openapi_schema

    app.openapi = openapi
