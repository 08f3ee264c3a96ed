"""Streaming multipart/form-data: the file part goes straight into an artifact writer
(hashed while written, never whole in memory); small fields are collected as text."""

from __future__ import annotations

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from rixin.errors import InvalidRequest
from rixin.store.artifacts import ArtifactStore
from rixin.store.files import storage_exceeded

FIELD_LIMIT = 64 * 1024


class Upload:
    def __init__(self, artifacts: ArtifactStore, file_limit: int, storage: tuple[int, int | None] = (0, None),
                 field: str = "file"):
        self.artifacts, self.file_limit, self.field = artifacts, file_limit, field
        self.stored, self.storage_limit = storage  # the project's bytes when the upload began
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.writer = None
        self._headers: dict[bytes, bytes] = {}
        self._field = b""
        self._name: str | None = None
        self._value = bytearray()
        self._is_file = False

    # python-multipart callbacks, in the order the parser calls them
    def on_part_begin(self):
        self._headers, self._value, self._name, self._is_file = {}, bytearray(), None, False

    def on_header_field(self, data, start, end):
        self._field += data[start:end]

    def on_header_value(self, data, start, end):
        self._headers[self._field.lower()] = self._headers.get(self._field.lower(), b"") + data[start:end]

    def on_header_end(self):
        self._field = b""

    def on_headers_finished(self):
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options and self._name == self.field:
            if self.writer is not None:
                raise InvalidRequest(f"Send exactly one '{self.field}' part.", param=self.field,
                                     code="invalid_value")
            self._is_file = True
            self.filename = options[b"filename"].decode("utf-8", "replace")
            self.writer = self.artifacts.writer(limit=self.file_limit)

    def on_part_data(self, data, start, end):
        if self._is_file:
            self.writer.write(bytes(data[start:end]))
            # stop streaming once the file cannot fit the storage quota (the final, binding
            # check is made when the file is registered: Files.add)
            if self.storage_limit is not None and self.stored + self.writer.size > self.storage_limit:
                raise storage_exceeded(self.stored, self.storage_limit, self.writer.size)
        else:
            self._value += data[start:end]
            if len(self._value) > FIELD_LIMIT:
                raise InvalidRequest(f"Form field '{self._name}' is too long.", param=self._name)

    def on_part_end(self):
        if not self._is_file and self._name:
            self.fields[self._name] = self._value.decode("utf-8", "replace")

    def callbacks(self) -> dict:
        names = ("on_part_begin", "on_header_field", "on_header_value", "on_header_end",
                 "on_headers_finished", "on_part_data", "on_part_end")
        return {n: getattr(self, n) for n in names}

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()


async def receive_upload(request: Request, artifacts: ArtifactStore, file_limit: int,
                         storage: tuple[int, int | None] = (0, None), field: str = "file") -> Upload:
    """Parse the request body, the file part named `field` going to disk; on any failure no
    partial artifact remains. `storage`: (bytes the project stores, its quota or None), to stop
    a file over the quota while it streams."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in options:
        fields = "a 'file' part and a 'purpose' field" if field == "file" else f"a '{field}' part"
        raise InvalidRequest(f"Upload files as multipart/form-data with {fields}.", param=field,
                             code="invalid_value")
    upload = Upload(artifacts, file_limit, storage, field)
    parser = MultipartParser(options[b"boundary"], upload.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as e:
        upload.abort()
        raise InvalidRequest(f"The multipart body is malformed: {e}", param="file") from e
    except BaseException:  # disconnects and cancellations too: never leave a partial file
        upload.abort()
        raise
    if upload.writer is None:
        raise InvalidRequest(f"Missing required parameter: '{field}'.", param=field,
                             code="missing_required_parameter")
    return upload
