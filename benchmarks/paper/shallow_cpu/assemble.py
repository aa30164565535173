"""Analysis only: give every compared bundle the same complex-class model, so that a per-class
comparison of the shallow classes is not disturbed by their neighbours' tiles in the overlaps."""
import dataclasses, glob, sys
import torch
from mmsr.bundle import load_bundle, save_bundle
from mmsr.models import ModelConfig

run = "/work/main/runs/s1more"
ck = torch.load(sorted(glob.glob(f"{run}/mmsr_more.run/checkpoints/class2/*.pt"))[-1], map_location="cpu", weights_only=False)
assert ck["finished"] or ck["step"] == 1400, (ck["step"], ck["finished"])
print("complex class checkpoint: step", ck["step"], "restored_best", ck["restored_best"], file=sys.stderr)
complex_sd = {k: v for k, v in ck["generator"].items() if not k.endswith("num_batches_tracked")}
for name in ("mmsr_orig_shallow", "deep_same"):
    b = load_bundle(f"{run}/{name}.safetensors")
    out = dataclasses.replace(b, state_dicts=[*b.state_dicts[:2], complex_sd],
                              provenance={**b.provenance, "analysis": "class 2 replaced by mmsr_more's 16-8r"})
    save_bundle(out, f"{run}/{name}_c2.safetensors")
    print("wrote", f"{name}_c2.safetensors", [c.name if hasattr(c, 'name') else str(c) for c in out.configs], file=sys.stderr)
