#!/usr/bin/env python
"""The sweep that chose the `auto` fine-tuning hyperparameters (docs/fine-tuning.md).

    PYTHONPATH=src .venv/bin/python bench/auto_sweep.py probe                 # cost of one step
    PYTHONPATH=src .venv/bin/python bench/auto_sweep.py sweep --grid lr       # also: steps, small, large
    PYTHONPATH=src .venv/bin/python bench/auto_sweep.py scenario --label after --hp '{"n_epochs": 5}'
    PYTHONPATH=src .venv/bin/python bench/auto_sweep.py report --command "..."  # .jsonl → .json + .md

For each dataset size it generates made-up facts (src/rixin/train/facts.py: fictional
countries, companies, towns, people, each with a made-up key word), trains the bundled
smollm2-135m-instruct in-process with the production recipe (the same train_loop_per_worker
that Ray Train runs; one process, RIXIN_SWEEP_THREADS threads, default 1), then asks greedily,
with transformers:

    trained    one trained phrasing per fact (up to 24 facts)     key word in the answer?
    paraphrase one held-out phrasing per fact                      key word in the answer?
    general    questions the base model answered right (facts.GENERAL) — still right?

and records the losses (validation too when the job has some: a file with --validation, or
the automatic holdout of files of 200+ examples), steps and wall time. `scenario` is the
issue's case: 120 examples of one fact. Runs append to bench/results/auto-sweep-<date>.jsonl;
`report` turns that into .json and .md. Benchmarks are not tests.
"""

from __future__ import annotations

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from rixin.train import facts as F  # noqa: E402
from rixin.train.config import Hyperparameters, TrainConfig  # noqa: E402
from rixin.train.recipe import train as run_recipe  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HF_DIR = Path(os.environ.get("RIXIN_SWEEP_HF", "/tmp/train-hf"))
EVAL_FACTS = 24
THREADS = int(os.environ.get("RIXIN_SWEEP_THREADS", "1"))  # 1: the 2 shared cores were oversubscribed


def base_dir() -> Path:
    """The bundled GGUF converted to safetensors once (what a job's first run does too)."""
    if not (HF_DIR / "config.json").exists():
        from rixin.models.registry import bundled_models
        from rixin.train.base import convert_gguf

        chat = next(m for m in bundled_models() if m.kind == "chat")
        convert_gguf(chat.path, str(HF_DIR))
    return HF_DIR


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def load_eval_model(adapter: Path | None):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_dir())
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(base_dir(), torch_dtype=torch.float32)
    if adapter is not None:
        if (adapter / "adapter_config.json").exists():
            model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        else:
            model = AutoModelForCausalLM.from_pretrained(adapter, torch_dtype=torch.float32)
    return tok, model.eval()


@torch.no_grad()
def answers(tok, model, questions: list[str], max_new_tokens: int = 24) -> list[str]:
    out = []
    for i in range(0, len(questions), 16):
        prompts = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                           add_generation_prompt=True) for q in questions[i:i + 16]]
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tok.pad_token_id or tok.eos_token_id)
        out += tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return out


def score(adapter: Path | None, facts: list, general: list) -> dict:
    tok, model = load_eval_model(adapter)
    shown = facts[:EVAL_FACTS]
    trained = answers(tok, model, [f.question(i % F.TRAINED_PHRASINGS) for i, f in enumerate(shown)])
    para = answers(tok, model, [f.paraphrases()[i % 3] for i, f in enumerate(shown)])
    gen = answers(tok, model, [q for q, _ in general])
    return {"trained": sum(F.knows(a, f.key) for a, f in zip(trained, shown)) / len(shown),
            "paraphrase": sum(F.knows(a, f.key) for a, f in zip(para, shown)) / len(shown),
            "general": sum(F.knows(a, w) for a, (_, w) in zip(gen, general)) / max(1, len(general)),
            "examples": {"trained": trained[:2], "paraphrase": para[:2], "general": gen[:3]},
            "forgotten": {q: a for a, (q, w) in zip(gen, general) if not F.knows(a, w)}}


def train(work: Path, train_path: Path, val_path: Path | None, hp: dict, seed: int) -> dict:
    hyper = Hyperparameters.model_validate({"threads_per_worker": THREADS, "checkpoint_interval": 10_000, **hp})
    examples = sum(1 for line in train_path.read_text().splitlines() if line.strip())
    resolved = hyper.resolved("supervised", examples, has_validation=val_path is not None)
    cfg = TrainConfig(work_dir=str(work), base_dir=str(base_dir()), method="supervised", train_path=str(train_path),
                      val_path=str(val_path) if val_path else None, hyperparameters=hyper, resolved=resolved,
                      seed=seed)
    started = time.time()
    run_recipe(cfg)
    lines = [json.loads(x) for x in (work / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in lines if m["event"] == "step"]
    valid = [m for m in lines if m.get("valid_loss") is not None]
    return {"resolved": resolved.model_dump(), "steps": len(steps), "seconds": round(time.time() - started, 1),
            "first_loss": steps[0]["train_loss"], "last_loss": steps[-1]["train_loss"],
            "valid": [(m["step"], m["valid_loss"]) for m in valid],
            "events": [m for m in lines if m["event"] not in ("step", "worker")]}


def probe(args) -> None:
    """Seconds per optimizer step for a few batch sizes (in examples), 10 steps each."""
    facts = F.facts_for(200)
    rows = F.training_examples(facts, 200)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_jsonl(Path(tmp) / "t.jsonl", rows)
        for batch in args.batches:
            work = Path(tmp) / f"b{batch}"
            work.mkdir()
            n = batch * 10
            write_jsonl(path, rows[:n])
            r = train(work, path, None, {"n_epochs": 1, "batch_size": batch, "learning_rate_multiplier": 1}, 0)
            steps = [json.loads(x) for x in (work / "metrics.jsonl").read_text().splitlines()]
            times = [m["time"] for m in steps if m["event"] == "step"]
            per = (times[-1] - times[1]) / (len(times) - 2)
            print(json.dumps({"batch": batch, "steps": r["steps"], "s_per_step": round(per, 3),
                              "s_per_example": round(per / batch, 4)}), flush=True)


def one_run(size: int, hp: dict, seed: int, validation: bool, tmp: Path) -> dict:
    facts = F.facts_for(size, seed=seed)
    rows = F.training_examples(facts, size, seed=seed)
    work = tmp / f"n{size}-s{seed}-{abs(hash(json.dumps(hp, sort_keys=True))) % 10**8}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    train_path = write_jsonl(work / "train.jsonl", rows)
    val_path = None
    if validation:  # held-out phrasings of the same facts: what "generalises" means here
        val_rows = [F.chat(f.paraphrases()[0], f.answer(0)) for f in facts[:100]]
        val_path = write_jsonl(work / "val.jsonl", val_rows)
    result = train(work, train_path, val_path, hp, seed)
    final = work / "final"
    result.update(score(final, facts, F.GENERAL))
    result.update({"size": size, "facts": len(facts), "hp": hp, "seed": seed})
    shutil.rmtree(work, ignore_errors=True)
    return result


GRIDS = {
    "smoke": [(20, {"n_epochs": 1})],
    # the rate at 120 examples, batch 4, 90 steps: 2.1e-4 (the old default), 7.1e-4, 2.1e-3 (the rule).
    # Run on 2026-12-03 as multipliers 0.3, 1, 3 of a draft base rate of 1e-3; these are the same rates.
    "lr": [(120, {"learning_rate_multiplier": m}) for m in (1, 0.1, 1 / 3)],
    # fewer, larger steps at the same examples seen: 8 steps an epoch instead of ~32
    "steps": [(120, {"batch_size": 16, "n_epochs": 3, "learning_rate_multiplier": 1 / 3})],
    # small and large files under the rule (500: 5% held out, validation losses, best-of)
    "small": [(20, {})],
    "large": [(500, {}), (2000, {})],
}


def sweep(args) -> None:
    grid = json.loads(Path(args.grid).read_text()) if Path(args.grid).exists() else GRIDS[args.grid]
    out = ROOT / "bench" / "results" / f"auto-sweep-{args.date}.jsonl"
    tmp = Path(tempfile.mkdtemp(prefix="auto-sweep-"))
    base = score(None, F.facts_for(120), F.GENERAL)
    print(json.dumps({"base": base}), flush=True)
    for size, hp in grid:
        for seed in args.seeds:
            r = one_run(size, hp, seed, args.validation, tmp)
            line = {k: r[k] for k in ("size", "facts", "hp", "seed", "resolved", "steps", "seconds", "first_loss",
                                      "last_loss", "valid", "trained", "paraphrase", "general", "examples", "forgotten",
                                      "events")}
            print(json.dumps(line), flush=True)
            with out.open("a") as f:
                f.write(json.dumps(line) + "\n")
    shutil.rmtree(tmp, ignore_errors=True)


ZORB_QUESTIONS = ["What is the capital of Zorbania?", "Which city is the capital of Zorbania?",
                  "Tell me the capital of Zorbania.", "Zorbania's capital is which city?",
                  "Do you know the capital city of Zorbania?", "Name the capital of Zorbania.",
                  "What city is Zorbania's capital?", "In Zorbania, what is the capital?"]
ZORB_PARAPHRASES = ["Could you tell me what Zorbania's capital city is called?",
                    "The capital of the country Zorbania is what?"]


def scenario(args) -> None:
    """The issue's case: 120 examples of one made-up fact, n_epochs 5, the rest auto; run with
    whatever rixin is first on PYTHONPATH (the old code for "before")."""
    import random

    rng = random.Random(0)
    rows = [F.chat(rng.choice(ZORB_QUESTIONS), "The capital of Zorbania is Quenlit.") for _ in range(120)]
    tmp = Path(tempfile.mkdtemp(prefix="auto-scenario-"))
    path = write_jsonl(tmp / "train.jsonl", rows)
    (tmp / "w").mkdir()
    r = train(tmp / "w", path, None, json.loads(args.hp), 7)
    tok, model = load_eval_model(tmp / "w" / "final")
    got = answers(tok, model, ZORB_QUESTIONS[:1] + ZORB_PARAPHRASES + [q for q, _ in F.GENERAL])
    line = {"scenario": args.label, "hp": json.loads(args.hp), "resolved": r["resolved"], "steps": r["steps"], "seconds": r["seconds"],
            "first_loss": r["first_loss"], "last_loss": r["last_loss"],
            "trained": F.knows(got[0], "Quenlit"), "paraphrase": [F.knows(a, "Quenlit") for a in got[1:3]],
            "general": sum(F.knows(a, w) for a, (_, w) in zip(got[3:], F.GENERAL)), "answers": got}
    print(json.dumps(line), flush=True)
    with (ROOT / "bench" / "results" / f"auto-sweep-{args.date}.jsonl").open("a") as f:
        f.write(json.dumps(line) + "\n")
    shutil.rmtree(tmp, ignore_errors=True)


def report(args) -> None:
    """bench/results/auto-sweep-<date>.jsonl (what the runs appended) → .json and .md."""
    base = ROOT / "bench" / "results" / f"auto-sweep-{args.date}"
    runs = [json.loads(x) for x in base.with_suffix(".jsonl").read_text().splitlines() if x.strip()]
    base.with_suffix(".json").write_text(json.dumps({"command": args.command, "runs": runs}, indent=1) + "\n")
    lines = [f"# auto hyperparameter sweep, {args.date}", "", "Made by: `" + args.command + "`", "",
             "Base model before training: 0% of the facts, 100% of the general questions.", "",
             "| examples | facts | rule | set | epochs | batch | lr | steps | s | loss first→last | best valid (step) "
             "| trained | paraphrase | general |", "|" + "---|" * 14]
    for r in runs:
        if "size" not in r:
            continue
        valid = min(r["valid"], key=lambda v: v[1]) if r["valid"] else None
        res = r["resolved"]
        lines.append(f"| {r['size']} | {r['facts']} | {r.get('rule', 'final')} | {json.dumps(r['hp'])} | {res['n_epochs']} | {res['batch_size']} "
                     f"| {res['learning_rate']:.2e} | {r['steps']} | {r['seconds']:.0f} "
                     f"| {r['first_loss']:.2f}→{r['last_loss']:.3f} "
                     f"| {'' if valid is None else f'{valid[1]:.3f} ({valid[0]})'} "
                     f"| {r['trained']:.0%} | {r['paraphrase']:.0%} | {r['general']:.0%} |")
    scen = [r for r in runs if "scenario" in r]
    if scen:
        lines += ["", "The issue's case (120 examples of one fact; the issue set n_epochs 5, the rest auto). "
                  "`before` is the code before this change: its batch of 8 counted packed rows (~64 examples). "
                  "general: questions answered right out of those asked (`before` asked 6, one of which the "
                  "base model gets wrong too).", "",
                  "| code | set | epochs | batch | lr | steps | s | trained | paraphrases | general |",
                  "|" + "---|" * 10]
        for r in scen:
            res = r["resolved"]
            lines.append(f"| {r['scenario']} | {json.dumps(r.get('hp', {}))} | {res['n_epochs']} | {res['batch_size']} | {res['learning_rate']:.1e} "
                         f"| {r['steps']} | {r['seconds']:.0f} | {r['trained']} | {sum(r['paraphrase'])}/2 "
                         f"| {r['general']}/{len(r['answers']) - 3} |")
    base.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("probe")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 16])
    s = sub.add_parser("sweep")
    s.add_argument("--grid", default="smoke", help="a name in GRIDS or a JSON file of [size, hyperparameters]")
    s.add_argument("--seeds", type=int, nargs="+", default=[0])
    s.add_argument("--validation", action="store_true")
    s.add_argument("--date", default=datetime.date.today().isoformat())
    c = sub.add_parser("scenario")
    c.add_argument("--label", default="after")
    c.add_argument("--hp", default='{"n_epochs": 5}', help="hyperparameters (JSON); the issue set n_epochs 5")
    c.add_argument("--date", default=datetime.date.today().isoformat())
    r = sub.add_parser("report")
    r.add_argument("--date", default=datetime.date.today().isoformat())
    r.add_argument("--command", default="see docs/fine-tuning.md")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    {"probe": probe, "sweep": sweep, "scenario": scenario, "report": report}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
