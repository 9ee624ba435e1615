"""The grammar of setting names: what a table row, a target path or a command line may call a setting.

A setting is one of
- ``none``: the untrained policy;
- ``PPO``: the PPO baseline (config ``ppo``); ``PPO-noKL``: the same with its KL coefficient fixed at 0 (no
  penalty), for the over-optimisation study;
- ``best-of-{n}``: n samples of the untrained policy per test prompt, the best kept (evaluation only);
- a name of the config's ``settings`` (``BP``, ``DP``, ``BP-norank``, ...): RRHF on a fixed training set;
- ``IP-{n}``: iterated RRHF (IP-1 is ``resampling.setting``; IP-n samples with IP-(n-1)'s model);
- ``OP-{k}`` and ``OP-{k}+KL``: online RRHF, sampling again every k steps (+KL: rewards lowered by KL(pi || rho));
- ``FG-PPO`` and ``FG-PPO-{variant}``: fine-grained PPO (config ``fine_grained``), with ``fine_grained.weights``
  or with the weights of ``fine_grained.variants.{variant}``;
- ``{method}@{setting}``: one of RRHF's successors (:data:`METHOD_NAMES`: DPO, R-DPO, IPO, SLiC, SimPO, KTO,
  ORPO; config ``methods``) trained on a named setting's training set, e.g. ``DPO@DP``.

n and k are whole numbers from 1. :func:`parse_setting` reads a name into a :class:`Setting`;
:func:`setting_problem` says why a name is none of these. The patterns are also Snakemake's wildcard
constraints, so a path only matches the rule that makes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Collection

NUMBER = r"[1-9][0-9]*"
ITERATED_PATTERN = rf"IP-{NUMBER}"
LATER_ITERATION_PATTERN = r"IP-(?:[2-9]|[1-9][0-9]+)"  # IP-n with n >= 2: the ones train_rrhf trains
ONLINE_PATTERN = rf"OP-{NUMBER}(?:\+KL)?"
BEST_OF_N_PATTERN = rf"best-of-{NUMBER}"
FINE_GRAINED_PATTERN = r"FG-PPO(?:-[a-z0-9][a-z0-9-]*)?"
PPO_SETTINGS = ("PPO", "PPO-noKL")


@dataclass(frozen=True)
class Method:
    """One of RRHF's successors: what it trains on (``data``: pairs, or labels for KTO), whether it compares with
    the reference rho's log-probabilities, and its hyper-parameters' names (config ``methods.parameters``)."""

    data: str
    reference: bool
    parameters: tuple[str, ...]


# The methods, described once: the plan reads them here, the training (rrhf.studies.preference_methods.trainer) too.
METHODS = {
    "DPO": Method("pairs", True, ("beta",)),
    "R-DPO": Method("pairs", True, ("beta", "length_weight")),
    "IPO": Method("pairs", True, ("beta",)),
    "SLiC": Method("pairs", False, ("beta", "nll_weight")),
    "SimPO": Method("pairs", False, ("beta", "gamma")),
    "KTO": Method("labels", True, ("beta", "desirable_weight", "undesirable_weight")),
    "ORPO": Method("pairs", False, ("odds_ratio_weight",)),
}
METHOD_NAMES = tuple(METHODS)
RESERVED = ("none", *PPO_SETTINGS)
# A path segment that looks like a patterned setting but is none (IP-0, OP-x, best-of-01, ...): a wildcard
# constraint (hence the lookahead to the segment's end) for the rule that explains such a target.
IMPOSSIBLE_SETTING_PATTERN = (rf"(?!(?:{ITERATED_PATTERN}|{ONLINE_PATTERN}|{BEST_OF_N_PATTERN})(?:[/.]|$))"
                              r"(?:IP|OP|best-of)-[^/]*")
# What looks like a patterned setting, whatever its number: for saying what is wrong with one.
PATTERNED = re.compile(r"(?P<kind>IP|OP|best-of)-(?P<number>[^+]*)(?P<kl>\+KL)?")


@dataclass(frozen=True)
class Setting:
    """A parsed setting name. ``kind``: none, ppo, best_of_n, named (a ``settings`` entry), iterated (IP-n) or
    online (OP-k[+KL]); ``number``: n of IP-n and best-of-n, k of OP-k; ``with_kl``: OP-k+KL, and PPO (whose
    KL penalty PPO-noKL drops); ``variant``: the fine_grained.variants entry of FG-PPO-{variant} (kind
    fine_grained); ``method`` and ``training_set``: of {method}@{setting} (kind method)."""

    name: str
    kind: str
    number: int | None = None
    with_kl: bool = False
    variant: str | None = None
    method: str | None = None
    training_set: str | None = None

    @property
    def trains_with_rrhf(self) -> bool:
        """Whether the setting is RRHF training (a named setting, IP-n or OP-k[+KL])."""
        return self.kind in ("named", "iterated", "online")

    @property
    def is_trained(self) -> bool:
        """Whether a model is trained for it (RRHF, PPO or fine-grained PPO)."""
        return self.trains_with_rrhf or self.kind in ("ppo", "fine_grained", "method")

    @property
    def follows_resampling(self) -> bool:
        """Whether the setting's sampler, provided replies and rank weight are resampling.setting's (IP-n, OP-k)."""
        return self.kind in ("iterated", "online")

    @property
    def iteration(self) -> int | None:
        return self.number if self.kind == "iterated" else None


def parse_setting(name: str, named: Collection[str]) -> Setting | None:
    """The :class:`Setting` a name means, given the config's setting names ``named``; None when it is none."""
    name = str(name)
    if name == "none":
        return Setting(name, "none")
    if name in PPO_SETTINGS:
        return Setting(name, "ppo", with_kl=name == "PPO")
    if name in named:
        return Setting(name, "named")
    if match := re.fullmatch(rf"IP-({NUMBER})", name):
        return Setting(name, "iterated", int(match.group(1)))
    if match := re.fullmatch(rf"OP-({NUMBER})(\+KL)?", name):
        return Setting(name, "online", int(match.group(1)), bool(match.group(2)))
    if match := re.fullmatch(rf"best-of-({NUMBER})", name):
        return Setting(name, "best_of_n", int(match.group(1)))
    if "@" in name:
        method, training_set = name.split("@", 1)
        if method in METHOD_NAMES and training_set in named:
            return Setting(name, "method", method=method, training_set=training_set)
        return None
    if re.fullmatch(FINE_GRAINED_PATTERN, name):
        return Setting(name, "fine_grained", with_kl=True, variant=name.removeprefix("FG-PPO-") if name != "FG-PPO"
                       else None)
    return None


def setting_problem(name: str, named: Collection[str]) -> str | None:
    """Why ``name`` is not a setting (None when it is one): a patterned name with an impossible number says so."""
    if parse_setting(name, named) is not None:
        return None
    if match := PATTERNED.fullmatch(str(name)):
        form, letter = {"IP": ("IP-n", "n"), "OP": ("OP-k and OP-k+KL", "k"),
                        "best-of": ("best-of-n", "n")}[match.group("kind")]
        return f"{name!r}: in {form}, {letter} is a whole number from 1, not {match.group('number')!r}"
    if "@" in str(name):
        method, training_set = str(name).split("@", 1)
        if method not in METHOD_NAMES:
            return f"{name!r}: {method!r} is not one of the methods {', '.join(METHOD_NAMES)}"
        return (f"{name!r}: a method trains on a named setting's training set, and {training_set!r} is none of "
                f"{sorted(named)}")
    return (f"{name!r} is not one of {sorted(named)}, none, PPO, PPO-noKL, IP-n, OP-k, OP-k+KL, best-of-n, "
            "FG-PPO, FG-PPO-{variant} or {method}@{setting} (n, k whole numbers from 1)")


def names_pattern(names: Collection[str]) -> str:
    """A regular expression that matches exactly these names (longest first; matches nothing when empty)."""
    return "|".join(sorted(map(re.escape, names), key=len, reverse=True)) or "(?!)"


def method_pattern(named: Collection[str]) -> str:
    """{method}@{setting} for the methods and ``named`` settings, as a wildcard constraint."""
    return f"(?:{names_pattern(METHOD_NAMES)})@(?:{names_pattern(named)})"


# Which rule trains a setting of each kind: the one place that says it. The training rules' wildcard constraints
# (:func:`trained_by_pattern`) and the benchmark files of what a row's training took are read from it.
TRAINERS = {"named": "train_rrhf", "iterated": "train_rrhf", "online": "train_online_rrhf", "ppo": "train_ppo",
            "fine_grained": "train_fine_grained_ppo", "method": "train_preference_method"}


def kind_patterns(named: Collection[str]) -> dict[str, str]:
    """Setting kind -> the names of that kind a model is trained for, as a regular expression (IP-n from n = 2:
    IP-1 is resampling.setting's model)."""
    return {"named": names_pattern(named), "iterated": LATER_ITERATION_PATTERN, "online": ONLINE_PATTERN,
            "ppo": names_pattern(PPO_SETTINGS), "fine_grained": FINE_GRAINED_PATTERN, "method": method_pattern(named)}


def trained_by_pattern(rule: str, named: Collection[str]) -> str:
    """The settings ``rule`` trains a model for (:data:`TRAINERS`), as its wildcard constraint."""
    patterns = kind_patterns(named)
    return "|".join(f"(?:{patterns[kind]})" for kind, trainer in TRAINERS.items() if trainer == rule) or "(?!)"


def evaluated_settings_pattern(named: Collection[str]) -> str:
    """The settings an evaluation accepts, as a wildcard constraint: the untrained policy, PPO, every RRHF setting
    (``named``, IP-n, OP-k[+KL]), fine-grained PPO and the methods (not best-of-n, evaluated by its own rule)."""
    return "|".join([method_pattern(named), names_pattern([*named, *RESERVED]), ITERATED_PATTERN, ONLINE_PATTERN,
                     FINE_GRAINED_PATTERN])


def trained_settings_pattern(named: Collection[str]) -> str:
    """The settings a model is trained for, as a wildcard constraint: ``named``, PPO, PPO-noKL, IP-n with n >= 2
    (IP-1 is resampling.setting's model), OP-k[+KL] and fine-grained PPO."""
    return "|".join(f"(?:{pattern})" for pattern in kind_patterns(named).values())
