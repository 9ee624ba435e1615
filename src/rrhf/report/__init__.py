"""The paper's tables and the report's figures and pages, from the evaluations."""
