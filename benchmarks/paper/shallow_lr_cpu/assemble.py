"""Analysis only: SHALLOW's bundle with DONOR's most textured class's model, written to OUT.

The shallow-only runs train their complex class for one step; blending in tile overlaps would mix that
untrained model into the shallow classes' tiles. Usage: python assemble.py DONOR SHALLOW OUT
"""
import dataclasses
import sys

from mmsr.bundle import load_bundle, save_bundle

donor_path, shallow_path, out_path = sys.argv[1:4]
donor, shallow = load_bundle(donor_path), load_bundle(shallow_path)
if [str(c) for c in donor.configs] != [str(c) for c in shallow.configs] or list(donor.boundaries) != list(shallow.boundaries):
    sys.exit(f"{donor_path} and {shallow_path} differ in models or boundaries; nothing written")
out = dataclasses.replace(
    shallow,
    state_dicts=[*shallow.state_dicts[:-1], donor.state_dicts[-1]],
    provenance={**shallow.provenance, "analysis": f"most textured class's model from {donor_path}"},
)
save_bundle(out, out_path)
print(f"wrote {out_path}: classes {[str(c) for c in out.configs]}, the last from {donor_path}", file=sys.stderr)
