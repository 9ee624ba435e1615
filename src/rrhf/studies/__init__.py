"""The studies beyond the paper's pipeline, one folder each: its config blocks, its plan (the files it makes, its
checks, its targets), its own stages' code, its tables and pages. A study imports the stages, :mod:`rrhf.config`
and :mod:`rrhf.plan`; nothing below imports a study."""
