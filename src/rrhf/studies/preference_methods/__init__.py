"""RRHF's successors (config key ``methods``; docs/methods.md): DPO, R-DPO, IPO, SLiC-HF, SimPO, KTO and ORPO on the
tables' training sets, in the one training loop."""
