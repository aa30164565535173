"""Analysis only: a K-class bundle whose every class starts from one deep generator, cut to its depth.

Class k's generator keeps the deep model's head, its first X_k residual blocks, and its trunk,
upsampler and tail: the residual blocks all add to one skip path, so the first X_k of them are a
working, shallower network that fine-tuning (mmsr train --init) can go on from. The layout (configs,
boundaries, threshold, tiling) comes from TEMPLATE, a bundle of the run being studied.

    python truncate.py OUT TEMPLATE_BUNDLE DEEP_SNAPSHOT
"""
import dataclasses
import sys

from mmsr.bundle import load_bundle, save_bundle
from mmsr.train.warm_start import first_blocks, generator_fits

out_path, template_path, deep_path = sys.argv[1:4]
template = load_bundle(template_path)
deep = load_bundle(deep_path)
if len(deep.configs) != 1:
    sys.exit(f"{deep_path} holds {len(deep.configs)} models; a one-model snapshot is needed; nothing written")
deep_config, deep_state = deep.configs[0], deep.state_dicts[0]

for config in template.configs:
    if not generator_fits(config.name, deep_config.name):
        sys.exit(f"{config.name} cannot be cut from {deep_config.name}: width, input skip or depth differ; nothing written")
out = dataclasses.replace(
    template,
    state_dicts=[first_blocks(deep_state, config.blocks) for config in template.configs],
    provenance={**template.provenance, "analysis": {"cut from": deep_path, "deep": deep.provenance}},
)
save_bundle(out, out_path)
print(f"wrote {out_path}: " + ", ".join(f"{c.name} from the first {c.blocks} blocks" for c in template.configs), file=sys.stderr)
