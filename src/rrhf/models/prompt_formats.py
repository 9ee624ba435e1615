"""How a model reads a prompt: the paper's raw HH text, or the model's own chat template.

The data keep HH's raw transcripts (``"\\n\\nHuman: ...\\n\\nAssistant:"``) and every stage passes them on as they
are; each model reads them in the format its folder records (:func:`prompt_format`, written by the import stage,
``models.NAME.prompt_format``, and kept by every model trained from it, whose tokenizer is saved with it):

- ``raw``: the transcript as it is, the response after it as it is (HH's replies start with a space);
- ``chat_template``: the transcript's turns as messages, rendered by the tokenizer's chat template with the
  assistant's turn opened (SmolLM2's ``<|im_start|>assistant\\n``), and the response without its leading
  whitespace; the response then ends with the model's EOS (``<|im_end|>``), as every encoder appends it.

Each model applies its own format, as TRL's trainers do: a reward model trained from a chat model scores in its
chat format whatever format the policy sampled in.
"""

from __future__ import annotations

import re

FORMATS = ("raw", "chat_template")
FORMAT_KEY = "rrhf_prompt_format"  # the key of tokenizer_config.json that records a model's format
TURN = re.compile(r"\n\n(Human|Assistant):")
ROLES = {"Human": "user", "Assistant": "assistant"}


def prompt_format(tokenizer) -> str:
    """The format a model reads prompts in: its tokenizer_config.json's ``rrhf_prompt_format`` (``raw`` when
    absent, as for every model not imported with another)."""
    found = getattr(tokenizer, "init_kwargs", {}).get(FORMAT_KEY, "raw")
    if found not in FORMATS:
        raise ValueError(f"tokenizer_config.json: {FORMAT_KEY} is {found!r}; expected one of {FORMATS}")
    return found


def set_prompt_format(tokenizer, format: str) -> None:
    """Make a loaded tokenizer read prompts in ``format`` (as if its folder recorded it): for measuring one model
    in both formats (results/prompt_formats.csv)."""
    if format not in FORMATS:
        raise ValueError(f"prompt_format {format!r} is not one of {FORMATS}")
    if format == "chat_template" and not getattr(tokenizer, "chat_template", None):
        raise ValueError("prompt_format chat_template: the tokenizer has no chat template; use prompt_format: raw")
    tokenizer.init_kwargs[FORMAT_KEY] = format


def transcript_messages(prompt: str) -> list[dict[str, str]]:
    """The turns of an HH prompt as chat messages: ``"\\n\\nHuman: a\\n\\nAssistant: b\\n\\nHuman: c\\n\\nAssistant:"``
    -> user a, assistant b, user c (the final, empty assistant turn is the one to answer). Text before the first
    marker, or a prompt with no marker at all, is one user message."""
    parts = TURN.split(prompt)
    messages = [{"role": "user", "content": parts[0].strip()}] if parts[0].strip() else []
    for speaker, text in zip(parts[1::2], parts[2::2]):
        messages.append({"role": ROLES[speaker], "content": text.strip()})
    if messages and messages[-1]["role"] == "assistant" and not messages[-1]["content"]:
        messages.pop()
    return messages or [{"role": "user", "content": prompt.strip()}]


def render_chat(tokenizer, prompt: str) -> str:
    """An HH prompt rendered by ``tokenizer``'s chat template, the assistant's turn opened."""
    return tokenizer.apply_chat_template(transcript_messages(prompt), add_generation_prompt=True, tokenize=False)


def model_prompts(tokenizer, prompts: list[str], format: str | None = None) -> list[str]:
    """Each prompt as the model reads it (``format``, default :func:`prompt_format` of ``tokenizer``)."""
    format = format or prompt_format(tokenizer)
    if format == "raw":
        return list(prompts)
    return [render_chat(tokenizer, prompt) for prompt in prompts]


def model_responses(tokenizer, responses: list[str], format: str | None = None) -> list[str]:
    """Each response as it follows the prompt in the model's format: as it is (raw), or without the leading
    whitespace HH's replies carry after ``Assistant:`` (chat_template, whose assistant turn starts a line)."""
    format = format or prompt_format(tokenizer)
    return list(responses) if format == "raw" else [response.lstrip() for response in responses]
