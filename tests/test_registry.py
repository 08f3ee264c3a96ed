"""`rixin models add`: what it accepts, what it refuses (with a reason), and `models list`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rixin.errors import Conflict, InvalidRequest, ModelNotFound
from rixin.models.registry import CHAT_MODEL, EMBEDDING_MODEL, Registry
from rixin.store.db import Database
from rixin.store.tenancy import Tenancy
from test_tenancy import bundled_gguf


@pytest.fixture
def registry(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    db.migrate()
    reg = Registry(db)
    reg.sync_bundled()
    yield reg
    db.dispose()


def hf_dir(root: Path, **overrides) -> Path:
    """A directory shaped like a Hugging Face model (contents need not load for these checks)."""
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], **overrides}))
    (root / "model.safetensors").write_bytes(b"\0" * 16)
    (root / "tokenizer.json").write_text("{}")
    return root


def test_bundled_models_are_registered(registry):
    rows = {m.id: m for m in registry.list()}
    assert rows[CHAT_MODEL].engine == "llama.cpp" and rows[CHAT_MODEL].size_bytes > 50_000_000
    assert rows[EMBEDDING_MODEL].kind == "embedding" and Path(rows[EMBEDDING_MODEL].path).is_dir()


def test_add_gguf_and_hf_directory(registry, tmp_path):
    gguf = registry.add(str(bundled_gguf()), "my-gguf")
    assert (gguf.kind, gguf.engine, gguf.format) == ("chat", "llama.cpp", "gguf")
    hf = registry.add(str(hf_dir(tmp_path / "hf")), "my-hf")
    assert (hf.kind, hf.engine, hf.format) == ("chat", "transformers", "hf")
    enc = registry.add(str(hf_dir(tmp_path / "enc", architectures=["BertModel"])), "my-encoder")
    assert (enc.kind, enc.engine) == ("embedding", "sentence")


def not_gguf(root: Path) -> Path:
    (root / "x.gguf").write_bytes(b"NOPE" * 4)
    return root / "x.gguf"


def empty_dir(root: Path) -> Path:
    (root / "empty").mkdir()
    return root / "empty"


@pytest.mark.parametrize("make, match", [
    (lambda p: p / "missing", "No such file"),
    (not_gguf, "not a GGUF"),
    (empty_dir, "no config.json"),
    (lambda p: hf_dir(p / "remote", auto_map={"AutoModel": "x.Model"}), "custom code"),
], ids=["missing", "not-gguf", "no-config", "remote-code"])
def test_add_refuses_with_a_reason(registry, tmp_path, make, match):
    with pytest.raises(InvalidRequest, match=match):
        registry.add(str(make(tmp_path)), "bad")


def test_add_refuses_pickled_weights_and_missing_tokenizer(registry, tmp_path):
    pickled = hf_dir(tmp_path / "pickled")
    (pickled / "model.safetensors").unlink()
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(InvalidRequest, match="pytorch_model.bin"):
        registry.add(str(pickled), "pickled")
    no_tok = hf_dir(tmp_path / "notok")
    (no_tok / "tokenizer.json").unlink()
    with pytest.raises(InvalidRequest, match="tokenizer"):
        registry.add(str(no_tok), "notok")


def test_ids_are_checked_and_unique(registry):
    with pytest.raises(InvalidRequest):
        registry.add(str(bundled_gguf()), "ft:reserved")
    with pytest.raises(InvalidRequest):
        registry.add(str(bundled_gguf()), "has space")
    with pytest.raises(Conflict):
        registry.add(str(bundled_gguf()), CHAT_MODEL)


def test_project_models_are_visible_to_their_project_only(registry):
    tenancy = Tenancy(registry.db)
    a = tenancy.authenticate(tenancy.create_key("a").key)
    b = tenancy.authenticate(tenancy.create_key("b").key)
    registry.add(str(bundled_gguf()), "only-a", project_id=a.project_id)
    assert "only-a" in {m.id for m in registry.list(a)} and "only-a" not in {m.id for m in registry.list(b)}
    assert registry.get("only-a", a).id == "only-a"
    with pytest.raises(ModelNotFound):
        registry.get("only-a", b)


def test_cli_models_add_and_list(server, tmp_path):
    # `models add` is offline (it registers a file of the gateway's machine); `models list` asks the API
    model_id = f"cli-model-{server.backend}"
    server.offline("models", "add", str(bundled_gguf()), "--id", model_id)
    listed = server.cli("models", "list").stdout
    assert model_id in listed and CHAT_MODEL in listed and "llama.cpp" in listed
    bad = server.offline("models", "add", str(tmp_path / "nope"), "--id", "x", check=False)
    assert bad.returncode == 2 and "No such file" in bad.stderr
