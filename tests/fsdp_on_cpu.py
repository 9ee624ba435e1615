"""Run a trainer as ``python -m rrhf.training.launch`` does, with accelerate's FSDP on in CPU processes.

accelerate turns its FSDP plugin on only in GPU processes (``AcceleratorState`` sets FSDP for MULTI_GPU and its
kin), while torch's ``fully_shard`` itself runs on the CPU with gloo. Started by ``accelerate launch --config_file
envs/accelerate/fsdp_*.yaml`` with ``ACCELERATE_USE_CPU=true``, this module makes the state FSDP where accelerate
would on GPUs and then runs the trainer unchanged: the same prepare call, sharding, memory-efficient loading from
the first process, gathered copies and full state dict as on GPUs. Used by tests/training/test_sharded_training.py.
"""

import json
import os
import sys
from pathlib import Path

from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import DistributedType

_accelerator_state_init = AcceleratorState.__init__


def _init_with_fsdp_on_cpu(self, *args, **kwargs):
    """AcceleratorState.__init__, then what it does for FSDP on GPUs (accelerate/state.py) for CPU processes."""
    _accelerator_state_init(self, *args, **kwargs)
    plugin = kwargs.get("fsdp_plugin")
    if plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
        self.distributed_type = DistributedType.FSDP
        if self._mixed_precision != "no":
            plugin.set_mixed_precision(self._mixed_precision)
        self.fsdp_plugin = plugin
        PartialState._shared_state["distributed_type"] = self.distributed_type


AcceleratorState.__init__ = _init_with_fsdp_on_cpu


def record_loads(folder: str) -> None:
    """Write, per process, the devices of the weights each model to train was built with (``load_for_training``)
    to ``folder``/loaded_rank{RANK}.json: what that process held in host memory before accelerate sharded it."""
    import rrhf.models.loading as loading

    load = getattr(loading, "load_for_training", None)
    if load is None:  # a version without it: nothing to record
        return

    def recorded(*args, **kwargs):
        model = load(*args, **kwargs)
        path = Path(folder) / f"loaded_rank{os.environ.get('RANK', '0')}.json"
        seen = json.loads(path.read_text()) if path.exists() else []
        path.write_text(json.dumps(seen + [sorted({p.device.type for p in model.parameters()})]))
        return model

    loading.load_for_training = recorded


if __name__ == "__main__":
    if os.environ.get("RRHF_TEST_RECORD_LOADS"):
        record_loads(os.environ["RRHF_TEST_RECORD_LOADS"])
    from rrhf.training.launch import main

    main(sys.argv[1:])
