"""`rixin models export ID --gguf`: a fine-tuned model (base + LoRA) becomes a GGUF that llama.cpp
serves with the same outputs as transformers.

Set-up, once per module: the bundled SmolLM2 GGUF → HF directory (convert_gguf), a seeded random
LoRA adapter on q/k/v/o (the reference is the *unmerged* peft model, so the merge itself is
checked too), and exports at f32 and q8_0. The q4_0 export goes through the CLI.

Measured on the 2-core dev machine (these bounds leave a margin over them):
- f32 GGUF in llama.cpp vs transformers: max |Δlogit| 0.011-0.066 over every position of four
  prompts (logits span ~±30); argmax identical at all 65 positions; 16 greedy tokens identical
  for each prompt. The adapter moves the logits by 3.4-7.2, so an export that dropped it (or
  merged it wrongly) could not pass.
- q8_0: file 3.73x smaller than f32; argmax agrees at 62 of 65 positions, max |Δlogit| 1.3-2.7
  (the bundled Q4_1 file, whose weights are exactly the HF base's, is already 1.36 away:
  llama.cpp quantises activations to 8 bits in these matmuls); the 16 greedy tokens of three
  prompts of four are identical, the fourth diverges at token 12.
- q4_0: 5.9x smaller than f32, but a 135M model does not survive 4-bit symmetric blocks well
  (argmax agreement ~0.6, also when the same rounding is simulated in transformers), so we
  only check that it is written, registered and served.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gguf  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from conftest import RIXIN  # noqa: E402
from rixin.config import Settings  # noqa: E402
from rixin.engines.actor import build_engine  # noqa: E402
from rixin.engines.base import GenerateRequest, SamplingParams  # noqa: E402
from rixin.engines.llama_cpp import open_llama  # noqa: E402
from rixin.errors import Conflict, InvalidRequest  # noqa: E402
from rixin.models.engines import EngineOptions  # noqa: E402
from rixin.models.export import Source, export_gguf, export_model, permute_qk  # noqa: E402
from rixin.models.registry import CHAT_MODEL, spec_of  # noqa: E402
from rixin.platform import Platform  # noqa: E402
from rixin.train.base import convert_gguf  # noqa: E402
from test_tenancy import bundled_gguf  # noqa: E402

POEM = [{"role": "user", "content": "Write a short poem about the sea."}]
PROMPTS = ["The capital of France is", "def fibonacci(n):", "In 2024 there were 12345 cats."]
FT_ID = "ft:smollm2-135m-instruct:alpha:poems:ftjob-export"


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # The machine has 2 shared cores: a second OpenMP thread mostly waits on the other test runs.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("export")


@pytest.fixture(scope="module")
def base_dir(work) -> Path:
    return Path(convert_gguf(str(bundled_gguf()), str(work / "base")))


@pytest.fixture(scope="module")
def tokenizer(base_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base_dir, local_files_only=True)


@pytest.fixture(scope="module")
def peft_model(base_dir, work):
    """The reference: base + a seeded random LoRA on q/k/v/o, applied unmerged by peft.

    lora_alpha 2 with r 4 scales the random B·A by 1/2: the model still writes sentences (so
    greedy comparisons are not decided by near-ties) yet its logits move by 4-9."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base_dir, local_files_only=True, dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=2, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                        init_lora_weights=False, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config).eval()
    peft_model.save_pretrained(work / "adapter")
    return peft_model


@pytest.fixture(scope="module")
def adapter_dir(peft_model, work) -> Path:
    return work / "adapter"


@pytest.fixture(scope="module")
def exported(base_dir, adapter_dir, work) -> dict[str, Path]:
    source = Source(str(base_dir), str(adapter_dir))
    return {q: export_gguf(source, work / f"ft.{q}.gguf", q) for q in ("f32", "q8_0")}


def prompt_ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def chat_text(tokenizer) -> str:
    return tokenizer.apply_chat_template(POEM, tokenize=False, add_generation_prompt=True)


def llama_logits(path: Path, prompts: list[list[int]]) -> list[np.ndarray]:
    """(len(ids), n_vocab) logits of every position, per prompt, from llama.cpp."""
    llm = open_llama(str(path), n_ctx=256, logits_all=True, n_threads=1, verbose=False)
    try:
        out = []
        for ids in prompts:
            llm.reset()
            llm.eval(ids)
            out.append(np.array(llm.scores[:len(ids)]))
        return out
    finally:
        llm.close()


def llama_greedy(path: Path, ids: list[int], n: int) -> list[int]:
    llm = open_llama(str(path), n_ctx=256, n_threads=1, verbose=False)
    try:
        out = []
        for token in llm.generate(ids, temp=0, top_k=1, repeat_penalty=1.0):
            out.append(token)
            if len(out) == n:
                return out
        return out
    finally:
        llm.close()


def hf_logits(model, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


def hf_greedy(model, ids: list[int], n: int) -> list[int]:
    with torch.no_grad():
        out = model.generate(input_ids=torch.tensor([ids]), max_new_tokens=n, do_sample=False,
                             attention_mask=torch.ones(1, len(ids), dtype=torch.long))
    return out[0, len(ids):].tolist()


def fields(path: Path) -> dict:
    reader = gguf.GGUFReader(str(path))
    return {k: f.contents() for k, f in reader.fields.items()}, {t.name: t for t in reader.tensors}


# ── the layout: q/k permutation and metadata, against the bundled GGUF itself ─────────────


def test_qk_permutation_reproduces_llama_cpp_layout(base_dir):
    """transformers un-permuted q/k when it read the bundled GGUF; permute_qk must give back the
    bundled file's tensors exactly (Q4_1 dequantises to exact float32 values)."""
    from safetensors.numpy import load_file

    hf = load_file(base_dir / "model.safetensors")
    bundled = {t.name: t for t in gguf.GGUFReader(str(bundled_gguf())).tensors}
    for layer in (0, 17):
        for proj, gname, heads in (("q_proj", "attn_q", 9), ("k_proj", "attn_k", 3)):
            ours = hf[f"model.layers.{layer}.self_attn.{proj}.weight"]
            t = bundled[f"blk.{layer}.{gname}.weight"]
            theirs = gguf.quants.dequantize(t.data, t.tensor_type).reshape(ours.shape)
            assert np.array_equal(permute_qk(ours, heads), theirs)
            assert not np.allclose(ours, theirs, atol=1e-3)  # HF's rotate-half order differs
    # v is not rotated: it is stored as is
    t = bundled["blk.0.attn_v.weight"]
    v = hf["model.layers.0.self_attn.v_proj.weight"]
    assert np.array_equal(gguf.quants.dequantize(t.data, t.tensor_type).reshape(v.shape), v)


def test_metadata_matches_the_bundled_gguf(exported):
    ours, tensors = fields(exported["f32"])
    theirs, their_tensors = fields(bundled_gguf())
    same = [k for k in theirs if k.startswith(("llama.", "tokenizer.")) and k != "tokenizer.ggml.pre"]
    assert len(same) >= 20
    for key in same:
        assert ours.get(key) == pytest.approx(theirs[key]) if isinstance(theirs[key], float) \
            else ours.get(key) == theirs[key], key
    # transformers rebuilt the tokenizer with plain GPT-2 pre-tokenization (no digit split); we
    # export what the HF model uses. For this vocabulary both split digits alike (no multi-digit
    # tokens), which test_f32_export_matches_transformers checks on "12345".
    assert ours["tokenizer.ggml.pre"] == "gpt-2" and theirs["tokenizer.ggml.pre"] == "smollm"
    assert ours["general.architecture"] == "llama" and ours["general.file_type"] == 0
    assert set(tensors) == set(their_tensors) and "output.weight" not in tensors  # tied
    assert {t.tensor_type for t in tensors.values()} == {gguf.GGMLQuantizationType.F32}


# ── numbers: llama.cpp on the export vs transformers on base + adapter ────────────────────


def test_f32_export_matches_transformers(exported, peft_model, tokenizer):
    prompts = [prompt_ids(tokenizer, p) for p in [*PROMPTS, chat_text(tokenizer)]]
    llm = open_llama(str(exported["f32"]), vocab_only=True, verbose=False)
    for text, ids in zip([*PROMPTS, chat_text(tokenizer)], prompts):
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == ids
    llm.close()
    for ids, ours in zip(prompts, llama_logits(exported["f32"], prompts)):
        reference = hf_logits(peft_model, ids)
        with peft_model.disable_adapter():
            base = hf_logits(peft_model, ids)
        assert np.abs(ours - reference).max() < 0.15  # measured ≤ 0.066
        assert np.abs(base - reference).max() > 2.0   # measured ≥ 3.4: the adapter is in the file
        assert (ours.argmax(-1) == reference.argmax(-1)).all()
    chat = prompts[-1]
    assert llama_greedy(exported["f32"], chat, 16) == hf_greedy(peft_model, chat, 16)


def test_q8_0_export_is_4x_smaller_and_mostly_agrees(exported, peft_model, tokenizer):
    f32, q8 = exported["f32"].stat().st_size, exported["q8_0"].stat().st_size
    assert 3.5 < f32 / q8 < 4.0  # measured 3.73: 34 bytes per 32 weights; norms stay f32
    _, tensors = fields(exported["q8_0"])
    types = {name: t.tensor_type.name for name, t in tensors.items()}
    assert types["blk.0.attn_q.weight"] == types["token_embd.weight"] == "Q8_0"
    assert types["blk.0.attn_norm.weight"] == types["output_norm.weight"] == "F32"

    prompts = [prompt_ids(tokenizer, p) for p in [*PROMPTS, chat_text(tokenizer)]]
    same = np.concatenate([ours.argmax(-1) == hf_logits(peft_model, ids).argmax(-1)
                           for ids, ours in zip(prompts, llama_logits(exported["q8_0"], prompts))])
    assert same.mean() >= 0.9, same  # measured 62 of 65 positions
    chat = prompts[-1]
    ours, reference = llama_greedy(exported["q8_0"], chat, 16), hf_greedy(peft_model, chat, 16)
    first_difference = next((i for i, (a, b) in enumerate(zip(ours, reference)) if a != b), 16)
    assert first_difference >= 8, (tokenizer.decode(ours), tokenizer.decode(reference))  # measured 16


def test_exported_gguf_is_served_by_the_llama_cpp_engine(exported, tokenizer):
    from rixin.models.registry import ModelSpec

    spec = ModelSpec("ft-q8", "chat", "llama.cpp", "gguf", str(exported["q8_0"]))
    engine = build_engine(spec, EngineOptions(threads=1, context_length=256))
    request = GenerateRequest(SamplingParams(max_tokens=12, temperature=0), messages=POEM)
    chunks = list(engine.generate(request))
    text = "".join(c.text for c in chunks)
    assert len(text.split()) >= 3 and chunks[-1].completion_tokens == 12
    # the chat template travelled with the file: the prompt is what transformers renders
    assert chunks[-1].prompt_tokens == len(prompt_ids(tokenizer, chat_text(tokenizer)))
    assert engine.info().context_length == 256


# ── what is refused ───────────────────────────────────────────────────────────────────────


def test_unsupported_models_are_refused_before_loading(tmp_path, base_dir):
    other = tmp_path / "gpt2"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}))
    with pytest.raises(InvalidRequest, match="GPT2LMHeadModel"):
        export_gguf(Source(str(other)), tmp_path / "x.gguf", "q8_0")
    scaled = tmp_path / "scaled"
    scaled.mkdir()
    config = json.loads((base_dir / "config.json").read_text())
    config["rope_parameters"] = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0}
    (scaled / "config.json").write_text(json.dumps(config))
    with pytest.raises(InvalidRequest, match="llama3"):
        export_gguf(Source(str(scaled)), tmp_path / "x.gguf", "q8_0")
    with pytest.raises(InvalidRequest, match="q2_k"):
        export_gguf(Source(str(base_dir)), tmp_path / "x.gguf", "q2_k")
    with pytest.raises(InvalidRequest, match="safetensors"):  # a pickled adapter is never loaded
        (tmp_path / "pickled").mkdir()
        (tmp_path / "pickled" / "adapter_config.json").write_text("{}")
        (tmp_path / "pickled" / "adapter_model.bin").write_bytes(b"\x80\x02")
        export_gguf(Source(str(base_dir), str(tmp_path / "pickled")), tmp_path / "x.gguf", "f16")
    sentencepiece = tmp_path / "sentencepiece"
    sentencepiece.mkdir()
    (sentencepiece / "config.json").write_text((base_dir / "config.json").read_text())
    (sentencepiece / "tokenizer.json").write_text(json.dumps({
        "model": {"type": "Unigram", "vocab": []},
        "pre_tokenizer": {"type": "Metaspace", "replacement": "▁"}}))
    with pytest.raises(InvalidRequest, match="Unigram.*Metaspace"):
        export_gguf(Source(str(sentencepiece)), tmp_path / "x.gguf", "q8_0")
    assert not list(tmp_path.glob("x.gguf*"))


# ── the registry and the CLI ──────────────────────────────────────────────────────────────


def test_cli_exports_and_registers_a_fine_tuned_model(tmp_path, base_dir, adapter_dir):
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIXIN_")}
    platform = Platform.open(Settings(data_dir=data_dir))
    platform.registry.sync_bundled()
    project = platform.tenancy.ensure_project("alpha")
    platform.registry.add_finetuned(FT_ID, project.id, str(base_dir), parent=CHAT_MODEL, owned_by="alpha",
                                    meta={"base_model": CHAT_MODEL, "adapter": str(adapter_dir)})
    with pytest.raises(InvalidRequest, match="already a GGUF"):  # nothing to merge in the bundled model
        export_model(platform.registry, CHAT_MODEL, data_dir)

    def cli(*args):
        return subprocess.run([RIXIN, "models", *args, "--data-dir", str(data_dir)], env=env,
                              capture_output=True, text=True, timeout=300)

    done = cli("export", FT_ID, "--gguf", "--quant", "q4_0", "--id", "poems-q4")
    assert done.returncode == 0, done.stderr
    row = platform.registry.get("poems-q4")
    path = data_dir.resolve() / "models" / "gguf" / "ft_smollm2-135m-instruct_alpha_poems_ftjob-export.q4_0.gguf"
    assert (row.engine, row.format, row.source, row.kind) == ("llama.cpp", "gguf", "export", "chat")
    assert (row.parent_id, row.project_id, row.path) == (FT_ID, project.id, str(path))
    assert row.meta["quant"] == "q4_0" and row.size_bytes == path.stat().st_size
    assert "poems-q4" in done.stdout and not list(path.parent.glob("*.tmp-*"))
    _, tensors = fields(path)
    assert tensors["blk.3.ffn_up.weight"].tensor_type.name == "Q4_0"
    assert tensors["token_embd.weight"].tensor_type.name == "Q8_0"  # also the output projection

    chunks = list(build_engine(spec_of(row), EngineOptions(threads=1, context_length=256)).generate(
        GenerateRequest(SamplingParams(max_tokens=6, temperature=0), messages=POEM)))
    assert chunks[-1].completion_tokens == 6 and "".join(c.text for c in chunks).strip()

    # the lineage `rixin models show` prints (over the API, tested in test_fine_tuning.py)
    assert platform.registry.get(FT_ID).parent_id == CHAT_MODEL
    again = cli("export", FT_ID, "--gguf", "--quant", "q4_0")  # refused before any conversion
    assert again.returncode == 2 and "already exported" in again.stderr and "poems-q4" in again.stderr
    with pytest.raises(Conflict):
        export_model(platform.registry, FT_ID, data_dir, quant="q8_0", new_id="poems-q4")
    no_format = cli("export", FT_ID)
    assert no_format.returncode != 0 and "--gguf" in no_format.stderr
    platform.db.dispose()
