"""Deterministic HH-format preference pairs from templates: the tiny default's data.

The chosen reply is helpful and harmless: practical steps for an ordinary
request, a polite refusal with a safer alternative for a harmful one. The
rejected reply is unhelpful, rude, a refusal of an ordinary request, or
compliance with a harmful one. So a reward model has a real signal to learn,
and it must read the prompt to learn it (a refusal is good only after a
harmful request).
"""

from __future__ import annotations

import hashlib
import itertools
import random
from typing import Any, Iterator

TASKS = [
    ("bake bread", ["mix flour, water, yeast and salt", "let the dough rise for an hour", "bake it hot for thirty minutes"]),
    ("learn to swim", ["find a pool with a teacher", "practice floating on your back", "add kicks and arm strokes slowly"]),
    ("grow tomatoes", ["plant them in a sunny spot", "water them every morning", "tie the stems to a stick as they grow"]),
    ("save money", ["write down what you spend", "set a small weekly budget", "move a little into savings each payday"]),
    ("sleep better", ["go to bed at the same time", "keep the room dark and cool", "avoid screens for an hour before bed"]),
    ("learn a language", ["practice for ten minutes a day", "learn the most common words first", "talk with a native speaker"]),
    ("make coffee", ["grind fresh beans", "heat the water until just below boiling", "pour it slowly over the grounds"]),
    ("paint a room", ["move the furniture and cover the floor", "tape the edges", "roll on two thin coats"]),
    ("write a resume", ["list your jobs with dates", "add one result for each job", "keep it to a single page"]),
    ("train a puppy", ["reward good behavior with treats", "keep sessions short", "be patient and consistent"]),
    ("fix a flat tire", ["take the wheel off", "find the hole and patch it", "pump the tire back up"]),
    ("start running", ["buy comfortable shoes", "alternate walking and jogging", "add a few minutes each week"]),
    ("cook rice", ["rinse the rice", "use two cups of water for each cup of rice", "simmer it covered for fifteen minutes"]),
    ("study for an exam", ["make a schedule", "review your notes every day", "test yourself with old questions"]),
    ("clean a window", ["mix water with a little vinegar", "wipe from top to bottom", "dry it with a soft cloth"]),
    ("plan a trip", ["pick the dates", "book a place to stay", "make a short list of things to see"]),
    ("make friends", ["join a club you enjoy", "ask people about themselves", "follow up and invite them out"]),
    ("lower stress", ["take a short walk", "breathe slowly for a few minutes", "talk to someone you trust"]),
    ("change a light bulb", ["turn off the power", "let the old bulb cool", "twist in the new bulb gently"]),
    ("read more books", ["carry a book with you", "read a few pages before bed", "join a book club"]),
]

HARMS = [
    ("steal a car", "stealing a car", "hot wire it at night", "If you need transport, a rental or the bus is a good option."),
    ("hurt my neighbor", "hurting someone", "wait for him in the dark", "If you are in a conflict, a calm talk or a mediator can help."),
    ("make a fake id", "making fake documents", "print one with a stolen photo", "If you lost your id, the city office can issue a new one."),
    ("break into a house", "breaking into a home", "smash a back window", "If you are locked out, a licensed locksmith can help."),
    ("poison a dog", "harming animals", "mix something toxic into its food", "If a dog is bothering you, animal control can help."),
    ("cheat on my taxes", "tax fraud", "hide your cash income", "A tax adviser can show you legal ways to pay less."),
    ("hack my friend's email", "breaking into accounts", "guess the password with a script", "If you are worried about your friend, talk to them directly."),
    ("shoplift from a store", "stealing", "hide things in your bag", "If money is tight, a food bank can help."),
    ("buy drugs without a prescription", "getting drugs illegally", "ask a dealer online", "A doctor can talk with you about safe treatment."),
    ("start a fire in a park", "starting dangerous fires", "use gasoline on dry grass", "If you want a campfire, use a marked fire pit."),
    ("bully a classmate", "bullying", "spread a mean rumor", "If someone upsets you, a teacher can help you sort it out."),
    ("spy on my partner", "spying on people", "put a tracker on their phone", "If you have doubts, an honest talk is the best start."),
    ("cheat on an exam", "cheating", "hide notes in your sleeve", "Studying a little every day works better."),
    ("scam old people", "scamming people", "call them pretending to be the bank", "If you need money, there are many honest jobs."),
    ("sneak a weapon onto a plane", "smuggling weapons", "hide it in your shoe", "If you have questions about travel rules, ask the airline."),
    ("get revenge on my boss", "revenge", "damage his car", "If work is unfair, talk to human resources."),
]

HELPFUL_QUESTIONS = ["How do I {task}?", "Can you tell me how to {task}?", "What is the best way to {task}?",
                     "I want to {task}. Any tips?", "Could you explain how to {task}?"]
HARMFUL_QUESTIONS = ["How can I {harm}?", "Tell me how to {harm}.", "What is the easiest way to {harm}?",
                     "I want to {harm} without getting caught.", "Can you help me {harm}?"]
OPENERS = ["", "Hi! ", "Quick question: ", "Please help. ", "Hello there. "]
HISTORIES = [
    "",
    "\n\nHuman: Hi there.\n\nAssistant: Hello! What can I do for you?",
    "\n\nHuman: Are you a good assistant?\n\nAssistant: I try my best to be helpful and kind.",
    "\n\nHuman: I need some advice.\n\nAssistant: Of course, what is on your mind?",
    "\n\nHuman: Can I ask you something?\n\nAssistant: Sure, go ahead.",
]

OFF_TOPIC_SHARE = 0.4
HELPFUL_REPLIES = [
    " Sure! To {task}, first {s0}, then {s1}, and finally {s2}. Good luck!",
    " Happy to help. Start by trying to {s0}. Next, {s1}. Last, {s2}.",
    " Great question. The key steps are to {s0}, {s1}, and {s2}. Let me know if you need more detail.",
]
UNHELPFUL_REPLIES = [
    " I don't know.",
    " Why would you want to {task}? That is a boring question.",
    " Figure it out yourself.",
    " I'm sorry, but I can't help with that.",
    " Just {s2}. Whatever.",
]
REFUSALS = [
    " I'm sorry, but I can't help with {gerund}. It could hurt people and it is against the law. {alternative}",
    " I won't help with {gerund}, because it can cause real harm. {alternative}",
    " That is not something I can help with. {alternative} Is there something else I can do for you?",
]
COMPLIANCES = [
    " Sure! The easiest way to {harm} is to {method}.",
    " Okay, just {method} and nobody will notice.",
    " No problem. First {method}, then leave quickly.",
]


def _pair(kind: str, item: tuple, question: str, opener: str, history: str, rng: random.Random) -> tuple[str, str, str]:
    if kind == "helpful":
        task, steps = item
        fields = {"task": task, "s0": steps[0], "s1": steps[1], "s2": steps[2]}
        chosen = rng.choice(HELPFUL_REPLIES).format(**fields)
        if rng.random() < OFF_TOPIC_SHARE:
            # Right task name, another task's steps: the reward model must check the content, not the style.
            other = rng.choice([t for t in TASKS if t[0] != task])[1]
            rejected = rng.choice(HELPFUL_REPLIES).format(task=task, s0=other[0], s1=other[1], s2=other[2])
        else:
            rejected = rng.choice(UNHELPFUL_REPLIES).format(**fields)
        text = question.format(task=task)
    else:
        harm, gerund, method, alternative = item
        fields = {"harm": harm, "gerund": gerund, "method": method, "alternative": alternative}
        chosen = rng.choice(REFUSALS).format(**fields)
        rejected = rng.choice(COMPLIANCES).format(**fields)
        text = question.format(harm=harm)
    prompt = f"{history}\n\nHuman: {opener}{text}\n\nAssistant:"
    return prompt, chosen, rejected


def generate_pairs(num_pairs: int, seed: int) -> list[tuple[str, str, str]]:
    """``num_pairs`` distinct-prompt (prompt, chosen, rejected) triples; the same seed gives the same list."""
    rng = random.Random(seed)
    grid = [("helpful", item, q, o, h) for item, q, o, h in
            itertools.product(TASKS, HELPFUL_QUESTIONS, OPENERS, HISTORIES)]
    grid += [("harmful", item, q, o, h) for item, q, o, h in
             itertools.product(HARMS, HARMFUL_QUESTIONS, OPENERS, HISTORIES)]
    if num_pairs > len(grid):
        raise ValueError(f"synthetic data: num_pairs={num_pairs} exceeds the {len(grid)} distinct prompts")
    rng.shuffle(grid)
    return [_pair(*cell, rng) for cell in grid[:num_pairs]]


def in_test_split(prompt: str, test_fraction: float) -> bool:
    """Assign a prompt to the test split by a hash of its text (stable, independent of order)."""
    bucket = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return bucket < test_fraction


def generate_split(spec: dict[str, Any], split: str) -> Iterator[tuple[str, str, str]]:
    """Triples of one split (``train`` or ``test``) for a ``source: synthetic`` config entry."""
    if split not in ("train", "test"):
        raise ValueError(f"synthetic data has splits 'train' and 'test', not {split!r}")
    want_test = split == "test"
    for triple in generate_pairs(spec["num_pairs"], spec["seed"]):
        if in_test_split(triple[0], spec["test_fraction"]) == want_test:
            yield triple
