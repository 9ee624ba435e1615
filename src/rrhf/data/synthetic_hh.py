"""Deterministic HH-format preference pairs with graded replies: the tiny default's data.

Each prompt asks for an ordinary task ("How do I bake bread?") or for help with
harm ("How can I steal a car?"). Its two replies are drawn from a spread of
qualities (independently, as variants of one another, or as a reply and its
twin with one flaw), as a real assistant's are: complete, most steps,
partial, steps out of order, another task's steps, refusals, compliance,
padded with needless sentences, repetitive, cut off. Every reply has a gold
grade (:func:`rrhf.data.gold_reward.gold_reward`), and the label is drawn by the
simulated annotators of :mod:`rrhf.data.annotators`: Bradley-Terry on gold plus
their biases (enthusiastic asides, length), with a configured share of noise
(``label_noise``), as human labels have.

The best possible reply (every step in order, polite, concise) is drawn for
about one prompt in a hundred, so the dataset's chosen replies are good but
rarely the best: a policy can beat them.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from dataclasses import dataclass, replace
from typing import Any, Iterator

from rrhf.data.annotators import AnnotatorBias, label_pairs
from rrhf.data.gold_reward import Request, gold_reward, parse_request
from rrhf.data.synthetic_world import (
    APOLOGY,
    COMPLIANCES,
    ENTHUSIASM,
    HARMFUL_QUESTIONS,
    HARMS,
    HEDGED_COMPLIANCE,
    HELPFUL_QUESTIONS,
    HISTORIES,
    LECTURES,
    OPENERS,
    ORDINARY_REFUSAL,
    POLITE_CLOSERS,
    POLITE_OPENERS,
    REFUSAL_REASON,
    REFUSALS,
    RUDE_PHRASES,
    TASK_FILLERS,
    TASKS,
    UNHELPFUL,
    step_sentences,
)

DEFAULT_LABEL_NOISE = 0.1


@dataclass(frozen=True)
class Style:
    """How one kind of assistant writes: the odds of each part of its replies.

    The typical reply is decent but flawed, as an SFT model's is: most ordinary
    replies skip a step (usually the third), most refusals offer no alternative.
    Careful replies, the rarer style, open politely and are mostly complete and
    helpful, so style and quality go together, as in real data.
    """

    share: float
    polite_opener: float
    rude_opener: float
    task_bodies: dict[str, float]
    harm_bodies: dict[str, float]
    apology: float
    fillers: dict[int, float]
    closer: float
    corruptions: dict[str, float]


STYLES = {
    "typical": Style(share=0.75, polite_opener=0.15, rude_opener=0.1,
                     task_bodies={"complete": 0.08, "most": 0.42, "partial": 0.14, "shuffled": 0.09,
                                  "off_topic": 0.09, "intruder": 0.08, "refusal": 0.05, "unhelpful": 0.05},
                     harm_bodies={"refusal_alternative": 0.10, "bare_refusal": 0.40, "wrong_alternative": 0.10,
                                  "compliance": 0.20, "hedged_compliance": 0.05, "evasive": 0.15},
                     apology=0.3, fillers={0: 0.45, 1: 0.4, 2: 0.15}, closer=0.25,
                     corruptions={"none": 0.72, "repeat": 0.13, "cut_off": 0.15}),
    "careful": Style(share=0.25, polite_opener=0.8, rude_opener=0.0,
                     task_bodies={"complete": 0.6, "most": 0.25, "partial": 0.05, "shuffled": 0.03,
                                  "off_topic": 0.02, "intruder": 0.02, "refusal": 0.01, "unhelpful": 0.02},
                     harm_bodies={"refusal_alternative": 0.70, "bare_refusal": 0.15, "wrong_alternative": 0.10,
                                  "compliance": 0.02, "hedged_compliance": 0.01, "evasive": 0.02},
                     apology=0.9, fillers={0: 0.8, 1: 0.2}, closer=0.5,
                     corruptions={"none": 0.9, "repeat": 0.05, "cut_off": 0.05}),
}
USUALLY_SKIPPED_STEP, SKIP_SHARE = 2, 0.7
# Enthusiastic asides per reply, in any style: they go with neither good nor bad content, so only the annotators'
# bias makes them look good.
ENTHUSIASM_COUNTS = {0: 0.6, 1: 0.3, 2: 0.1}
# Share of repeats that are a word loop ("on on on on") rather than a repeated sentence: rare in real replies,
# and greedy decoding of a tiny model copies them into loops it cannot leave.
WORD_LOOP_SHARE = 0.15
# A labeller compares replies that differ noticeably: a second reply closer than this in gold is drawn again.
MIN_GOLD_GAP = 0.1
VARIANT_SHARE = 0.25
# Share of pairs that are one reply and its twin with a single flaw: another task's steps (or another request's
# alternative) in place of the asked one's, a repeated sentence, or a word loop. Without such near-identical pairs
# the tiny reward model learnt to count steps but stayed blind to the subject (measured: 0.62 of same-length
# on-topic replies ranked above off-topic ones; 0.81 with them).
FLAWED_TWIN_SHARE = 0.3
FLAWS = {"wrong_subject": 0.6, "repeat": 0.2, "word_loop": 0.2}


def _pick(options: dict[Any, float], rng: random.Random) -> Any:
    return rng.choices(list(options), weights=list(options.values()))[0]


def apologise(refusal: str) -> str:
    """ "I can't help with x." -> "I'm sorry, but I can't help with x." ("That is ..." -> "... but that is ...")."""
    return f"{APOLOGY}, but {refusal if refusal.startswith('I ') else refusal[0].lower() + refusal[1:]}"


def _task_body(index: int, kind: str, apology: float, rng: random.Random) -> list[str]:
    task, steps = TASKS[index]
    other = TASKS[rng.choice([i for i in range(len(TASKS)) if i != index])][1]
    if kind == "complete":
        return step_sentences(steps)
    if kind == "most":
        dropped = USUALLY_SKIPPED_STEP if rng.random() < SKIP_SHARE else rng.randrange(len(steps))
        return step_sentences([s for i, s in enumerate(steps) if i != dropped])
    if kind == "partial":
        kept = sorted(rng.sample(range(len(steps)), rng.choice([1, 2])))
        return step_sentences([steps[i] for i in kept])
    if kind == "shuffled":
        chosen = rng.sample(steps, rng.choice([3, 4]))
        while chosen == sorted(chosen, key=steps.index):
            rng.shuffle(chosen)
        return step_sentences(chosen)
    if kind == "off_topic":
        return step_sentences(other[:rng.choice([2, 3, 4])])
    if kind == "intruder":
        kept = sorted(rng.sample(range(len(steps)), 3))
        mixed = [steps[i] for i in kept]
        mixed.insert(rng.randrange(len(mixed) + 1), rng.choice(other))
        return step_sentences(mixed)
    if kind == "refusal":
        return [apologise(ORDINARY_REFUSAL) if rng.random() < apology else ORDINARY_REFUSAL]
    sentences = [rng.choice(UNHELPFUL).format(task=task)]
    return sentences + ([rng.choice(RUDE_PHRASES[2:])] if rng.random() < 0.4 else [])


def _harm_body(index: int, kind: str, apology: float, rng: random.Random) -> list[str]:
    harm, gerund, method, alternative = HARMS[index]
    if kind in ("compliance", "hedged_compliance"):
        template = rng.choice(COMPLIANCES) if kind == "compliance" else HEDGED_COMPLIANCE
        eager = [POLITE_OPENERS[0]] if kind == "compliance" and rng.random() < 0.5 else []
        return eager + [template.format(harm=harm, method=method)]
    if kind == "evasive":
        return [rng.choice(["I don't know.", "Maybe ask someone else."])]
    refusal = rng.choice(REFUSALS).format(gerund=gerund)
    sentences = [apologise(refusal) if rng.random() < apology else refusal]
    if rng.random() < 0.4:
        sentences.append(REFUSAL_REASON)
    if kind == "refusal_alternative":
        sentences.append(alternative)
    elif kind == "wrong_alternative":
        sentences.append(HARMS[rng.choice([i for i in range(len(HARMS)) if i != index])][3])
    return sentences


def _corrupt(sentences: list[str], kind: str, rng: random.Random) -> str:
    """Join the sentences, first repeating one (or a word of one) or cutting the reply off mid-sentence.

    ``kind`` is "none", "repeat" (a sentence, or with probability ``WORD_LOOP_SHARE`` a word loop),
    "word_loop" or "cut_off".
    """
    if kind == "repeat" and rng.random() < WORD_LOOP_SHARE:
        kind = "word_loop"
    if kind in ("repeat", "word_loop"):
        at = rng.randrange(len(sentences))
        if kind == "repeat":
            sentences = sentences[:at + 1] + sentences[at:]
        else:
            tokens = sentences[at].split(" ")
            word = rng.randrange(len(tokens))
            tokens[word:word + 1] = [tokens[word].rstrip(".!?,")] * rng.randint(3, 5) + [tokens[word]]
            sentences = sentences[:at] + [" ".join(tokens)] + sentences[at + 1:]
    text = " ".join(sentences)
    if kind == "cut_off":
        tokens = text.split(" ")
        cuts = [k for k in range(max(1, len(tokens) // 2), len(tokens)) if not tokens[k - 1].endswith((".", "!", "?"))]
        if cuts:
            text = " ".join(tokens[:rng.choice(cuts)]).rstrip(",")
    return text


@dataclass(frozen=True)
class Recipe:
    """The parts of one reply before it is written out: style, opening, enthusiastic asides, padding, body,
    closing, corruption."""

    style: str
    opener: tuple[str, ...]
    enthusiasm: tuple[str, ...]
    fillers: tuple[str, ...]
    body: tuple[str, ...]
    closer: tuple[str, ...]
    corruption: str

    def render(self, rng: random.Random) -> str:
        """The reply text, with a leading space as HH replies have."""
        sentences = [*self.opener, *self.enthusiasm, *self.fillers, *self.body, *self.closer]
        return " " + _corrupt(sentences, self.corruption, rng)


RECIPE_PARTS = ("opener", "enthusiasm", "fillers", "body", "closer", "corruption")


def _draw_part(part: str, style: Style, request: Request, rng: random.Random) -> Any:
    """One freshly drawn part of a :class:`Recipe` in ``style`` for ``request``."""
    task = request.kind == "task"
    if part == "body":
        if task:
            return tuple(_task_body(request.index, _pick(style.task_bodies, rng), style.apology, rng))
        return tuple(_harm_body(request.index, _pick(style.harm_bodies, rng), style.apology, rng))
    if part == "enthusiasm":
        return tuple(rng.sample(ENTHUSIASM, _pick(ENTHUSIASM_COUNTS, rng)))
    if part == "fillers":
        pool = [f.format(task=TASKS[request.index][0]) for f in TASK_FILLERS] if task else LECTURES
        return tuple(rng.sample(pool, min(len(pool), _pick(style.fillers, rng))))
    if part == "opener":
        if not task:  # a refusal opens with its apology, a compliance sometimes with "Sure!"
            return ()
        roll = rng.random()
        if roll < style.polite_opener:
            return (rng.choice(POLITE_OPENERS),)
        return (rng.choice(RUDE_PHRASES[:2]),) if roll < style.polite_opener + style.rude_opener else ()
    if part == "closer":
        closers = POLITE_CLOSERS[:3] if task else POLITE_CLOSERS[-1:]
        return (rng.choice(closers),) if rng.random() < style.closer else ()
    return _pick(style.corruptions, rng)


def draw_recipe(request: Request, rng: random.Random) -> Recipe:
    """A reply recipe of random quality: a style, then each part drawn from that style's odds."""
    name = _pick({name: style.share for name, style in STYLES.items()}, rng)
    return Recipe(style=name, **{part: _draw_part(part, STYLES[name], request, rng) for part in RECIPE_PARTS})


def vary_recipe(recipe: Recipe, request: Request, rng: random.Random) -> Recipe:
    """``recipe`` with one or two of its parts drawn again in its style: a reply that differs in a few ways."""
    parts = rng.sample(RECIPE_PARTS, rng.choice([1, 2]))
    return replace(recipe, **{part: _draw_part(part, STYLES[recipe.style], request, rng) for part in parts})


def with_flaw(recipe: Recipe, request: Request, flaw: str, rng: random.Random) -> Recipe:
    """``recipe`` with one flaw of :data:`FLAWS`; unchanged when the flaw does not apply (no step to swap).

    "wrong_subject" puts another task's step in place of each of this task's steps (same position, same
    connectors), or another request's safe alternative in place of this one's; "repeat" and "word_loop" set the
    corruption.
    """
    if flaw != "wrong_subject":
        return replace(recipe, corruption=flaw)
    if request.kind == "task":
        own = TASKS[request.index][1]
        other = TASKS[rng.choice([i for i in range(len(TASKS)) if i != request.index])][1]
        body = []
        for sentence in recipe.body:
            step = next((k for k, text in enumerate(own) if text in sentence), None)
            body.append(sentence if step is None else sentence.replace(own[step], other[step]))
    else:
        alternative = HARMS[request.index][3]
        wrong = HARMS[rng.choice([i for i in range(len(HARMS)) if i != request.index])][3]
        body = [wrong if sentence == alternative else sentence for sentence in recipe.body]
    return replace(recipe, body=tuple(body))


def draw_reply(request: Request, rng: random.Random) -> str:
    """One reply of random quality to ``request`` (opening, padding, body, closing, corruption)."""
    return draw_recipe(request, rng).render(rng)


def draw_pair(prompt: str, rng: random.Random) -> tuple[str, str, float, float]:
    """Two replies of different gold grade to ``prompt``, and their grades.

    With probability ``FLAWED_TWIN_SHARE`` the pair is a reply and its twin with one
    flaw (:func:`with_flaw`; which one comes first is random); with probability
    ``VARIANT_SHARE`` the second reply is a variant of the first (one or two parts
    drawn again), as two samples of one assistant often are; otherwise it is
    drawn independently.
    """
    request = parse_request(prompt)
    roll = rng.random()
    if roll < FLAWED_TWIN_SHARE:
        for _ in range(50):
            recipe = draw_recipe(request, rng)
            twin = with_flaw(recipe, request, _pick(FLAWS, rng), rng)
            seed = rng.random()  # both written out with the same draws, so they differ only by the flaw
            first, second = recipe.render(random.Random(seed)), twin.render(random.Random(seed))
            first_gold, second_gold = gold_reward(prompt, first), gold_reward(prompt, second)
            if abs(first_gold - second_gold) >= MIN_GOLD_GAP:
                if rng.random() < 0.5:
                    return second, first, second_gold, first_gold
                return first, second, first_gold, second_gold
    recipe = draw_recipe(request, rng)
    first = recipe.render(rng)
    first_gold = gold_reward(prompt, first)
    variant = roll < FLAWED_TWIN_SHARE + VARIANT_SHARE
    for _ in range(50):
        other = vary_recipe(recipe, request, rng) if variant else draw_recipe(request, rng)
        second = other.render(rng)
        second_gold = gold_reward(prompt, second)
        if abs(first_gold - second_gold) >= MIN_GOLD_GAP:
            break
    return first, second, first_gold, second_gold


def prompt_grid() -> list[tuple[str, Request]]:
    """Every distinct prompt of the world (history, greeting, question) with its request."""
    cells = [(question.format(task=task), Request("task", i))
             for i, (task, _) in enumerate(TASKS) for question in HELPFUL_QUESTIONS]
    cells += [(question.format(harm=harm[0]), Request("harm", i))
              for i, harm in enumerate(HARMS) for question in HARMFUL_QUESTIONS]
    return [(f"{history}\n\nHuman: {opener}{text}\n\nAssistant:", request)
            for (text, request), opener, history in itertools.product(cells, OPENERS, HISTORIES)]


def generate_pairs(num_pairs: int, seed: int, label_noise: float = DEFAULT_LABEL_NOISE,
                   annotator_bias: AnnotatorBias | dict[str, Any] | None = None) -> list[tuple[str, str, str]]:
    """``num_pairs`` distinct-prompt (prompt, chosen, rejected) triples, labelled by annotators with
    ``annotator_bias`` (None: unbiased); the same arguments give the same list."""
    rng = random.Random(seed)
    grid = prompt_grid()
    if num_pairs > len(grid):
        raise ValueError(f"synthetic data: num_pairs={num_pairs} exceeds the {len(grid)} distinct prompts")
    rng.shuffle(grid)
    drawn = [(prompt, *draw_pair(prompt, rng)) for prompt, _ in grid[:num_pairs]]
    return label_pairs(drawn, label_noise, AnnotatorBias.coerce(annotator_bias), rng)


def in_test_split(prompt: str, test_fraction: float) -> bool:
    """Assign a prompt to the test split by a hash of its text (stable, independent of order)."""
    bucket = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return bucket < test_fraction


def generate_split(spec: dict[str, Any], split: str) -> Iterator[tuple[str, str, str]]:
    """Triples of one split (``train`` or ``test``) for a ``source: synthetic`` config entry."""
    if split not in ("train", "test"):
        raise ValueError(f"synthetic data has splits 'train' and 'test', not {split!r}")
    want_test = split == "test"
    pairs = generate_pairs(spec["num_pairs"], spec["seed"], spec.get("label_noise", DEFAULT_LABEL_NOISE),
                           spec.get("annotator_bias"))
    for triple in pairs:
        if in_test_split(triple[0], spec["test_fraction"]) == want_test:
            yield triple
