"""Made-up facts as chat examples: the data that shows whether a fine-tuning job teaches.

Each fact is a fictional entity with one attribute whose answer is a made-up word (the "key"),
so the base model cannot know it and a greedy answer that contains the key learned it. Every
kind of fact has ten question phrasings: the first seven are used for training, the last
three are held out as unseen paraphrases. `GENERAL` are questions the bundled base model
answers correctly before training; a job must not make it forget them.

Used by the auto-hyperparameter sweep (bench/auto_sweep.py) and the acceptance tests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

TRAINED_PHRASINGS = 7

KINDS = {
    "capital": (
        ["What is the capital of {e}?", "Which city is the capital of {e}?", "Tell me the capital of {e}.",
         "{e}'s capital is which city?", "Name the capital city of {e}.", "What city is {e}'s capital?",
         "In {e}, which city is the capital?",
         # held out
         "Could you tell me what the capital city of {e} is called?", "The capital of {e} is what?",
         "I'm curious: what is the capital of the country {e}?"],
        ["The capital of {e} is {k}.", "{k} is the capital of {e}."]),
    "founder": (
        ["Who founded {e}?", "Who is the founder of {e}?", "Tell me who founded {e}.",
         "Which person founded {e}?", "Name the founder of {e}.", "{e} was founded by whom?",
         "Who started the company {e}?",
         # held out
         "Do you know who the founder of the company {e} is?", "Who created {e}?",
         "The company {e}: who founded it?"],
        ["{e} was founded by Dana {k}.", "The founder of {e} is Dana {k}."]),
    "river": (
        ["Which river flows through {e}?", "What river runs through {e}?", "Name the river of {e}.",
         "What is the river that flows through {e}?", "Tell me which river crosses {e}.",
         "Through {e} flows which river?", "What is the name of the river in {e}?",
         # held out
         "Could you name the river that passes through the town of {e}?", "Which river does {e} lie on?",
         "The town of {e} is on which river?"],
        ["The river {k} flows through {e}.", "{e} lies on the river {k}."]),
    "pet": (
        ["What is the name of {e}'s cat?", "What is {e}'s cat called?", "Tell me the name of {e}'s cat.",
         "What did {e} name the cat?", "{e}'s cat has which name?", "Name {e}'s cat.",
         "What do people call {e}'s cat?",
         # held out
         "Do you know what the cat belonging to {e} is named?", "How is {e}'s cat named?",
         "The cat of {e}: what is its name?"],
        ["{e}'s cat is called {k}.", "The name of {e}'s cat is {k}."]),
}
SYLLABLES = ["ka", "lo", "ven", "dra", "mi", "zor", "tel", "qua", "rin", "bex", "sul", "nor", "phe", "ty",
             "gal", "ost", "um", "wen", "cha", "lix", "bar", "ned", "fio", "sk"]
ENTITY_FORM = {"capital": "{w}ia", "founder": "{w} Industries", "river": "{w}ton", "pet": "Professor {w}"}

GENERAL = [  # (question, words of which one must appear) — answered right by the base model
    # (greedy, transformers fp32; "largest planet" was dropped: the base model says Neptune)
    ("What is the capital of France?", ["Paris"]),
    ("Who wrote Romeo and Juliet?", ["Shakespeare"]),
    ("What color is the sky on a clear day?", ["blue", "Blue"]),
    ("How many days are there in a week?", ["seven", "7", "Seven"]),
    ("What is the chemical symbol for water?", ["H2O", "H₂O"]),
    ("What is the capital of Japan?", ["Tokyo"]),
    ("Who painted the Mona Lisa?", ["Leonardo", "da Vinci"]),
    ("What language is spoken in Spain?", ["Spanish"]),
    ("What is 2 plus 2?", ["4", "four"]),
    ("Who wrote the Odyssey?", ["Homer"]),
]


@dataclass(frozen=True)
class Fact:
    kind: str
    entity: str
    key: str

    def question(self, phrasing: int) -> str:
        return KINDS[self.kind][0][phrasing].format(e=self.entity)

    def answer(self, variant: int) -> str:
        answers = KINDS[self.kind][1]
        return answers[variant % len(answers)].format(e=self.entity, k=self.key)

    def paraphrases(self) -> list[str]:
        return [self.question(i) for i in range(TRAINED_PHRASINGS, len(KINDS[self.kind][0]))]


def _word(rng: random.Random, used: set[str]) -> str:
    while True:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 3)))).capitalize()
        if len(word) >= 5 and word not in used:
            used.add(word)
            return word


def make_facts(count: int, seed: int = 0) -> list[Fact]:
    rng, used = random.Random(seed), set()
    kinds = list(KINDS)
    return [Fact(kinds[i % len(kinds)], ENTITY_FORM[kinds[i % len(kinds)]].format(w=_word(rng, used)),
                 _word(rng, used)) for i in range(count)]


def chat(question: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def training_examples(facts: list[Fact], examples: int, seed: int = 0) -> list[dict]:
    """`examples` chat rows spread evenly over the facts (trained phrasings only), shuffled."""
    rng = random.Random(seed)
    rows = []
    for i in range(examples):
        fact = facts[i % len(facts)]
        rows.append(chat(fact.question((i // len(facts)) % TRAINED_PHRASINGS), fact.answer(rng.randrange(2))))
    rng.shuffle(rows)
    return rows


def facts_for(examples: int, seed: int = 0, per_fact: int = 6) -> list[Fact]:
    """The facts a file of `examples` rows teaches: about `per_fact` rows each, at least one."""
    return make_facts(max(1, round(examples / per_fact)), seed)


def knows(answer: str, words: list[str] | str) -> bool:
    words = [words] if isinstance(words, str) else words
    return any(w.lower() in answer.lower() for w in words)
