"""Turning uploaded files into dataset records, one JSON object per line.

A record is {"id", "meta", ...} plus the fields of its format: `messages` (chat),
`prompt`/`completion`, `input`/`preferred_output`/`non_preferred_output` (preference) or
`text` (raw text for continued pretraining and cleaning). Records are read lazily so a
large file never sits in memory whole.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Iterator

from rixin.data.formats import detect_format
from rixin.errors import InvalidRequest

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def _from_object(obj, where: str, rid: str) -> dict:
    if not isinstance(obj, dict):
        raise InvalidRequest(f"{where}: expected a JSON object, got {type(obj).__name__}.", param="files")
    fmt = detect_format(obj)
    if fmt is None or (fmt == "text" and not isinstance(obj["text"], str)):
        raise InvalidRequest(f"{where}: no known fields; a record needs 'messages', 'prompt' and "
                             "'completion', 'input' with preferred/non_preferred outputs, or a string "
                             "'text'.", param="files")
    keep = {"chat": ("messages", "tools"), "prompt_completion": ("prompt", "completion"),
            "preference": ("input", "preferred_output", "non_preferred_output"), "text": ("text",)}[fmt]
    record = {"id": rid, **{k: obj[k] for k in keep if k in obj}}
    record["meta"] = {k: v for k, v in obj.items() if k not in keep and k != "id"}
    return record


def _jsonl(path: Path, file_id: str) -> Iterator[dict]:
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except ValueError as e:
                raise InvalidRequest(f"File {file_id} line {n}: invalid JSON ({e}).", param="files") from e
            yield _from_object(obj, f"File {file_id} line {n}", f"{file_id}:{n}")


def _rows(rows: Iterator[dict], file_id: str, columns: list[str]) -> Iterator[dict]:
    if "text" not in columns and not {"prompt", "completion"} <= set(columns):
        raise InvalidRequest(f"File {file_id}: columns {columns} have no 'text' column and no "
                             "'prompt' and 'completion' columns.", param="files")
    for n, row in enumerate(rows, 1):
        yield _from_object({k: v for k, v in row.items() if v is not None}, f"File {file_id} row {n}",
                           f"{file_id}:{n}")


def _csv(path: Path, file_id: str) -> Iterator[dict]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        yield from _rows(reader, file_id, list(reader.fieldnames or []))


def _parquet(path: Path, file_id: str) -> Iterator[dict]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    columns = parquet.schema_arrow.names

    def rows():
        for batch in parquet.iter_batches(batch_size=1024):
            yield from batch.to_pylist()

    yield from _rows(rows(), file_id, columns)


def _text(path: Path, file_id: str, split: str) -> Iterator[dict]:
    """Plain text or Markdown: one record per paragraph, per line, or the whole file."""
    content = path.read_text(encoding="utf-8", errors="replace")
    pieces = {"file": [content], "line": content.splitlines(),
              "paragraph": PARAGRAPH_BREAK.split(content)}[split]
    for n, piece in enumerate(pieces, 1):
        if piece.strip():
            yield {"id": f"{file_id}:{n}", "text": piece.strip("\n"), "meta": {"source": file_id}}


def read_file(path: Path, filename: str, file_id: str, *, text_split: str = "paragraph") -> Iterator[dict]:
    """Records of one uploaded file, by its name's suffix (JSONL, CSV, Parquet, text, Markdown)."""
    suffix = Path(filename).suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return _jsonl(path, file_id)
    if suffix == ".csv":
        return _csv(path, file_id)
    if suffix == ".parquet":
        return _parquet(path, file_id)
    if suffix in TEXT_SUFFIXES:
        return _text(path, file_id, text_split)
    raise InvalidRequest(f"File {file_id} ({filename}): unsupported type {suffix or '(none)'}; use .jsonl, "
                         ".csv, .parquet, .txt or .md.", param="files")


def write_jsonl(records, sink) -> int:
    """Write records as JSON lines to a binary sink (an ArtifactWriter); returns the count."""
    count = 0
    buffer = io.BytesIO()
    for record in records:
        buffer.write(json.dumps(record, ensure_ascii=False).encode() + b"\n")
        count += 1
        if buffer.tell() > 1 << 20:
            sink.write(buffer.getvalue())
            buffer = io.BytesIO()
    sink.write(buffer.getvalue())
    return count


def iter_jsonl(path: Path) -> Iterator[dict]:
    with path.open("rb") as f:
        for raw in f:
            if raw.strip():
                yield json.loads(raw)


def _message_fields(messages) -> list[tuple[object, object]]:
    """(container, key) of the text in a message list: string contents and the text parts of
    content arrays ([{"type": "text", "text": ...}])."""
    out: list[tuple[object, object]] = []
    for m in messages if isinstance(messages, list) else []:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            out.append((m, "content"))
        elif isinstance(content, list):
            out += [(p, "text") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return out


def text_fields(record: dict) -> list[tuple[object, object]]:
    """(container, key) of every text field a cleaning block may rewrite (and must redact):
    chat messages, prompt/completion, both sides of a preference pair, or text."""
    if "messages" in record:
        return _message_fields(record["messages"])
    if "preferred_output" in record or "non_preferred_output" in record:
        source = record.get("input")
        fields = _message_fields(source.get("messages") if isinstance(source, dict) else None)
        return fields + _message_fields(record.get("preferred_output")) + _message_fields(
            record.get("non_preferred_output"))
    keys = [k for k in ("text", "prompt", "completion") if isinstance(record.get(k), str)]
    return [(record, k) for k in keys]
