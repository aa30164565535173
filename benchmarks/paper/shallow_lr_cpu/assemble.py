"""Analysis only: a bundle whose class k's model comes from the k-th bundle given.

Shallow-only runs train the classes they do not study for one step; blending in tile overlaps would
mix those untrained models into the studied classes' tiles, so each class takes its model from the
run that trained it. The bundles must share models and boundaries; the first one's metadata is kept.

    python assemble.py OUT CLASS0_BUNDLE CLASS1_BUNDLE CLASS2_BUNDLE
"""
import dataclasses
import sys

from mmsr.bundle import load_bundle, save_bundle

out_path, sources = sys.argv[1], sys.argv[2:]
bundles = [load_bundle(path) for path in sources]
first = bundles[0]
if len(bundles) != len(first.configs):
    sys.exit(f"{len(first.configs)} classes need {len(first.configs)} bundles, got {len(bundles)}; nothing written")
for path, bundle in zip(sources, bundles):
    if [str(c) for c in bundle.configs] != [str(c) for c in first.configs] or list(bundle.boundaries) != list(first.boundaries):
        sys.exit(f"{path} and {sources[0]} differ in models or boundaries; nothing written")
out = dataclasses.replace(
    first,
    state_dicts=[bundle.state_dicts[k] for k, bundle in enumerate(bundles)],
    provenance={**first.provenance, "analysis": {f"class {k}": path for k, path in enumerate(sources)}},
)
save_bundle(out, out_path)
print(f"wrote {out_path}: " + ", ".join(f"class {k} from {path}" for k, path in enumerate(sources)), file=sys.stderr)
