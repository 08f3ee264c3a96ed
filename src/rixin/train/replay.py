"""Replay: the base model's own answers to general prompts, mixed into a supervised job so that a
small file does not make the model forget what it knew.

Why: trained on a hundred examples of made-up facts, a LoRA learns the facts and also the
*shape* of their questions ("Who founded X?" → "Dana Y"), and then answers "Who wrote Romeo and
Juliet?" with a made-up founder (docs/fine-tuning.md, the sweep). Mixing in answers the base
model gives to general questions — generated greedily by the model about to be trained, before
its first step, so no outside data is needed — keeps those answers where they were: it is
sequence-level self-distillation, the cheapest form of a KL penalty towards the base model.

The prompts below are deliberately NOT the questions that measure general knowledge
(facts.GENERAL): the measure asks other questions of the same kinds.
"""

from __future__ import annotations

PROMPTS = [
    # who / what / which / where / how many: the shapes a file of facts teaches
    "Who discovered penicillin?", "Who developed the theory of relativity?", "Who was Albert Einstein?",
    "Who was Isaac Newton?", "Who invented the telephone?", "Who was Cleopatra?",
    "What is the capital of Germany?", "What is the capital of Italy?", "Which city is the capital of Canada?",
    "What is the largest ocean on Earth?", "Which river flows through Egypt?", "Which river flows through London?",
    "What is the name of the closest star to Earth?", "What do bees make?", "What is the boiling point of water?",
    "How many continents are there?", "How many hours are there in a day?", "How many legs does a cat have?",
    "Where is the Eiffel Tower?", "Where do penguins live?", "What is photosynthesis?",
    "What is the opposite of hot?", "What is the main language spoken in Brazil?", "What is a noun?",
    "Name a fruit that is yellow.", "Name three primary colors.", "Tell me the name of a famous composer.",
    "What animal is known as the king of the jungle?", "What is gravity?", "What is the tallest mountain?",
    # instructions: replies of other lengths and forms
    "Write one sentence about the sea.", "Give me a tip for sleeping better.", "Say hello in Spanish.",
    "Explain what a computer is in one sentence.", "Suggest a name for a dog.", "What should I eat for breakfast?",
    "Describe the color green.", "Why is exercise good for you?", "How do I make a cup of tea?",
    "What is 3 plus 5?", "Count from one to five.", "What is your name?",
]
MAX_NEW_TOKENS = 48


def _trim(text: str) -> str:
    """Whole sentences only: a reply cut off by MAX_NEW_TOKENS ends at its last full stop."""
    text = text.strip()
    end = max(text.rfind(c) for c in ".!?")
    return text[:end + 1] if end > 0 else text


def replay_records(model, tokenizer, count: int) -> list[dict]:
    """`count` chat records (at most len(PROMPTS)): the model's greedy replies to the prompts."""
    import torch

    prompts = PROMPTS[:count]
    if not prompts:
        return []
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                           add_generation_prompt=True) for p in prompts]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    tokenizer.padding_side = side
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, top_p=None, top_k=None,
                             temperature=None, pad_token_id=tokenizer.pad_token_id
                             if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
    model.train(was_training)
    replies = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    return [{"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": _trim(r)}]}
            for p, r in zip(prompts, replies) if _trim(r)]
