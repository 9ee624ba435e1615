"""What a study is to the plan of a run: a config key, the typed block read from it, its checks, the settings it
trains or evaluates beyond the tables' rows, its GPU memory and what `all` builds of it.

A study (:mod:`rrhf.studies`) subclasses :class:`Study` in its own folder; the Snakefile hands the classes to
:meth:`rrhf.plan.plan.Plan.from_config`, which builds one object per study whose key the config gives (None
otherwise) and runs every study's checks with its own. The plan itself imports no study.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, ClassVar

if TYPE_CHECKING:
    from rrhf.plan.memory import RuleMemory
    from rrhf.plan.plan import Plan


class Study:
    """One study of a run, planned on top of the run's :class:`rrhf.plan.plan.Plan` (``self.plan``)."""

    KEY: ClassVar[str]  # its config key
    BLOCK: ClassVar[Any]  # the typed block of that key (rrhf.config.typed_config.Block)

    def __init__(self, plan: "Plan", block: Any):
        self.plan = plan
        self.block = block  # its config block, typed

    @classmethod
    def of(cls, plan: "Plan") -> "Study | None":
        """The study of a run, or None when the config leaves its key out (null)."""
        value = plan.config.get(cls.KEY)
        return None if value is None else cls(plan, cls.BLOCK.from_config(value))

    @classmethod
    def problems_without(cls, plan: "Plan") -> list[str]:
        """What cannot be made when the config leaves the study out: table rows that need it."""
        return []

    def problems(self) -> list[str]:
        """What in the config the study cannot do, each naming its key."""
        return []

    def settings_used(self) -> set[str]:
        """Settings the study trains or evaluates beyond the tables' rows (for the GPU memory plan)."""
        return set()

    def memory(self) -> list["RuleMemory"]:
        """The GPU memory of the study's own rules (rrhf.plan.memory_plan)."""
        return []

    def targets(self, note: Callable[[str], None]) -> list[str]:
        """What `all` builds of the study; ``note`` is told what it leaves out, and why."""
        return []
