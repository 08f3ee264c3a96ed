"""/v1/uploads with the official client: parts, complete (ordered ids, md5) into a File that
every file route takes, cancel, the errors (unknown, foreign, duplicate and lost parts, wrong
size or md5, parts after the end), isolation, expiry, and a large upload whose server memory
stays bounded (parts streamed to disk, assembled by streaming copy)."""

from __future__ import annotations

import hashlib
import os
import threading
from datetime import timedelta
from pathlib import Path

import openai
import psutil
import pytest
from sqlalchemy import update

from rixin.errors import InvalidRequest
from rixin.store.artifacts import ArtifactStore
from rixin.store.db import Database
from rixin.store.files import Files
from rixin.store.schema import Upload, utcnow
from rixin.store.tenancy import Tenancy
from rixin.store.uploads import Uploads

LINE = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'


def parts_dir(server, upload_id: str) -> Path:
    return server.data_dir / "artifacts" / "uploads" / upload_id


def test_parts_complete_into_a_file(server):
    client = server.client(server.new_key("uploads-a"))
    data = LINE * 300
    chunks = [data[:10_000], data[10_000:20_000], data[20_000:]]
    upload = client.uploads.create(bytes=len(data), filename="train.jsonl", mime_type="application/jsonl",
                                   purpose="fine-tune")
    assert upload.status == "pending" and upload.object == "upload" and upload.file is None
    assert upload.expires_at - upload.created_at == 3600
    parts = [client.uploads.parts.create(upload.id, data=c) for c in chunks]
    assert all(p.object == "upload.part" and p.upload_id == upload.id for p in parts)
    assert len(list(parts_dir(server, upload.id).iterdir())) == 3
    done = client.uploads.complete(upload.id, part_ids=[p.id for p in parts],
                                   md5=hashlib.md5(data).hexdigest())
    assert done.status == "completed" and done.file.bytes == len(data) and done.file.purpose == "fine-tune"
    assert done.file.filename == "train.jsonl"
    assert client.files.content(done.file.id).read() == data  # a File like any other
    assert done.file.model_extra["sha256"] == hashlib.sha256(data).hexdigest()
    assert not parts_dir(server, upload.id).exists()  # parts are gone once assembled
    with pytest.raises(openai.BadRequestError, match="completed"):
        client.uploads.parts.create(upload.id, data=b"late")
    with pytest.raises(openai.BadRequestError, match="completed"):
        client.uploads.complete(upload.id, part_ids=[p.id for p in parts])


def test_upload_file_chunked_helper(server, tmp_path):
    client = server.client(server.new_key("uploads-helper"))
    path = tmp_path / "big.jsonl"
    path.write_bytes(LINE * 5000)
    data = path.read_bytes()
    done = client.uploads.upload_file_chunked(file=path, mime_type="application/jsonl", purpose="batch",
                                              part_size=100_000, md5=hashlib.md5(data).hexdigest())
    assert done.status == "completed" and done.file.bytes == len(data)
    assert client.files.content(done.file.id).read() == data


def test_parts_out_of_order_or_missing_are_refused(server):
    client = server.client(server.new_key("uploads-errors"))
    data = b"a" * 500 + b"b" * 500
    upload = client.uploads.create(bytes=len(data), filename="d.txt", mime_type="text/plain", purpose="raw")
    a = client.uploads.parts.create(upload.id, data=data[:500])
    b = client.uploads.parts.create(upload.id, data=data[500:])
    md5 = hashlib.md5(data).hexdigest()
    with pytest.raises(openai.BadRequestError, match="md5") as e:
        client.uploads.complete(upload.id, part_ids=[b.id, a.id], md5=md5)  # swapped: the md5 says so
    assert e.value.body["param"] == "md5"
    with pytest.raises(openai.BadRequestError, match="1000") as e:
        client.uploads.complete(upload.id, part_ids=[a.id])  # a part left out: the size says so
    assert e.value.body["code"] == "bytes_mismatch"
    with pytest.raises(openai.BadRequestError, match="more than once"):
        client.uploads.complete(upload.id, part_ids=[a.id, a.id])
    with pytest.raises(openai.BadRequestError, match="part-nope"):
        client.uploads.complete(upload.id, part_ids=[a.id, "part-nope"])
    other = client.uploads.create(bytes=10, filename="o.txt", mime_type="text/plain", purpose="raw")
    foreign = client.uploads.parts.create(other.id, data=b"x" * 500)
    with pytest.raises(openai.BadRequestError, match=foreign.id):  # another upload's part
        client.uploads.complete(upload.id, part_ids=[a.id, foreign.id])
    (parts_dir(server, upload.id) / b.id).unlink()  # a part lost on disk
    with pytest.raises(openai.BadRequestError, match="lost"):
        client.uploads.complete(upload.id, part_ids=[a.id, b.id])
    c = client.uploads.parts.create(upload.id, data=data[500:])  # still pending: send it again
    assert client.uploads.complete(upload.id, part_ids=[a.id, c.id], md5=md5).file.bytes == len(data)


def test_cancel_deletes_parts_and_ends_the_upload(server):
    client = server.client(server.new_key("uploads-cancel"))
    upload = client.uploads.create(bytes=4, filename="c.txt", mime_type="text/plain", purpose="raw")
    part = client.uploads.parts.create(upload.id, data=b"abcd")
    assert parts_dir(server, upload.id).is_dir()
    assert client.uploads.cancel(upload.id).status == "cancelled"
    assert not parts_dir(server, upload.id).exists()
    with pytest.raises(openai.BadRequestError, match="cancelled"):
        client.uploads.parts.create(upload.id, data=b"abcd")
    with pytest.raises(openai.BadRequestError, match="cancelled"):
        client.uploads.complete(upload.id, part_ids=[part.id])


def test_bad_create_parameters_are_400(server):
    client = server.client(server.new_key("uploads-bad"))
    cases = [({"bytes": 0}, "bytes"), ({"bytes": 9 * 2**30}, "bytes"), ({"purpose": "nope"}, "purpose"),
             ({"mime_type": "jsonl"}, "mime_type"), ({"filename": "../x.txt"}, "filename")]
    for change, param in cases:
        args = {"bytes": 10, "filename": "x.txt", "mime_type": "text/plain", "purpose": "raw", **change}
        with pytest.raises(openai.BadRequestError) as e:
            client.uploads.create(**args)
        assert e.value.body["param"] == param, (change, e.value.body)
    upload = client.uploads.create(bytes=10, filename="x.txt", mime_type="text/plain", purpose="raw")
    with server.http(client.api_key) as http:
        r = http.post(f"/v1/uploads/{upload.id}/parts", files={"other": ("x", b"123")})
        assert r.status_code == 400 and r.json()["error"]["param"] == "data"
        assert http.post(f"/v1/uploads/{upload.id}/complete", json={"part_ids": "x"}).status_code == 400


def test_other_projects_uploads_are_404(server):
    a = server.client(server.new_key("uploads-owner"))
    b = server.client(server.new_key("uploads-intruder"))
    upload = a.uploads.create(bytes=3, filename="a.txt", mime_type="text/plain", purpose="raw")
    part = a.uploads.parts.create(upload.id, data=b"abc")
    with pytest.raises(openai.NotFoundError):
        b.uploads.parts.create(upload.id, data=b"abc")
    with pytest.raises(openai.NotFoundError):
        b.uploads.complete(upload.id, part_ids=[part.id])
    with pytest.raises(openai.NotFoundError):
        b.uploads.cancel(upload.id)
    assert a.uploads.complete(upload.id, part_ids=[part.id]).status == "completed"


def test_expired_uploads_lose_their_parts(tmp_path):
    """In-process (nobody waits an hour): an upload past its expiry is expired on sight, its
    parts deleted, and the next create sweeps the ones nobody looks at."""
    db = Database(f"sqlite:///{tmp_path / 'rixin.db'}")
    db.migrate()
    artifacts = ArtifactStore(tmp_path / "artifacts")
    uploads = Uploads(db, artifacts, Files(db, artifacts))
    tenancy = Tenancy(db)
    caller = tenancy.authenticate(tenancy.create_key("p").key)
    seen = uploads.create(caller, filename="a.txt", purpose="raw", size=3, mime_type="text/plain")
    unseen = uploads.create(caller, filename="b.txt", purpose="raw", size=3, mime_type="text/plain")
    for upload in (seen, unseen):
        writer = artifacts.writer()
        writer.write(b"abc")
        writer.place(artifacts.root / "uploads" / upload.id / "part-x")
    with db.session() as s:  # an hour passes
        s.execute(update(Upload).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert uploads.get(caller, seen.id).status == "expired"
    assert not (artifacts.root / "uploads" / seen.id).exists()
    with pytest.raises(InvalidRequest, match="expired"):
        uploads.open(caller, seen.id)
    uploads.create(caller, filename="c.txt", purpose="raw", size=3, mime_type="text/plain")
    assert not (artifacts.root / "uploads" / unseen.id).exists()
    assert uploads.get(caller, unseen.id).status == "expired"


def _rss_peak(pid: int, stop: threading.Event, out: list[int]) -> None:
    proc = psutil.Process(pid)
    while not stop.wait(0.05):
        out.append(proc.memory_info().rss)


def _big_file(path: Path, size: int) -> str:
    """A file of `size` bytes that is not one repeated block (so order matters); its md5."""
    md5, block = hashlib.md5(), os.urandom(2**20)
    with path.open("wb") as f:
        for i in range(size // len(block)):
            chunk = i.to_bytes(8, "little") + block[8:]
            md5.update(chunk)
            f.write(chunk)
    return md5.hexdigest()


def _upload_big(server, tmp_path, size: int, part_size: int) -> int:
    """Upload `size` bytes with the client's chunked helper; the server's peak RSS growth."""
    client = server.client(server.new_key("uploads-big"))
    path = tmp_path / "big.bin"
    md5 = _big_file(path, size)
    base = psutil.Process(server.process.pid).memory_info().rss
    stop, samples = threading.Event(), []
    sampler = threading.Thread(target=_rss_peak, args=(server.process.pid, stop, samples))
    sampler.start()
    try:
        done = client.uploads.upload_file_chunked(file=path, mime_type="application/octet-stream",
                                                  purpose="raw", part_size=part_size, md5=md5)
    finally:
        stop.set()
        sampler.join()
    assert done.status == "completed" and done.file.bytes == size
    path.unlink()
    client.files.delete(done.file.id)
    growth = max(samples, default=base) - base
    print(f"upload of {size / 2**20:.0f} MiB in {part_size / 2**20:.0f} MiB parts: server RSS "
          f"{base / 2**20:.0f} MiB, peak growth {growth / 2**20:.1f} MiB")
    return growth


def test_large_upload_keeps_server_memory_bounded(server, tmp_path):
    """200 MiB in 16 MiB parts: the server's memory grows by less than one part."""
    growth = _upload_big(server, tmp_path, 200 * 2**20, 16 * 2**20)
    assert growth < 16 * 2**20, f"the server's RSS grew by {growth / 2**20:.0f} MiB"


@pytest.mark.slow
def test_upload_of_1_5_gb_keeps_server_memory_bounded(server, tmp_path):
    """The issue's 1.5 GB, in the client's default 64 MiB parts."""
    growth = _upload_big(server, tmp_path, 1536 * 2**20, 64 * 2**20)
    assert growth < 64 * 2**20, f"the server's RSS grew by {growth / 2**20:.0f} MiB"
