"""The config's types, below the stages: the schema (every key, its default), the typed blocks built from it, and
the checks a block can make on its own. The stages import this package and nothing of :mod:`rrhf.plan`."""
