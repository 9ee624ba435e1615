"""The findings (config key ``findings``; docs/findings.md): the paper's claims as data, each judged by its
interval over replicates."""
