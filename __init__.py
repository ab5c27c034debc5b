"""LUTFuse: exposure-bracket fusion with a learned, editable 3D LUT.

The repository's top-level folders install as one package: ``lutfuse.core`` (the engine, no Qt),
``lutfuse.app`` (the Qt editor) and the shipped ``resources`` (weights, demo bracket) as package data.
"""

import os

__version__ = "0.2.0"

# Apple's GPU backend (torch "mps") lacks some ops in many torch versions; with this set before torch loads, torch
# runs such an op on the CPU instead of raising (see lutfuse.core.device). The user's own setting wins.
os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")
# Large CPU tensors on transparent huge pages (torch's allocator madvises 2 MiB-aligned blocks when this is set before
# torch loads). Without it every fresh UHD temporary faults in 4 KiB at a time: a new 100 MB tensor took 130-150 ms
# to fill instead of 27-31 ms (24 300 page faults instead of 300), and the detail layer and render allocate several.
# numpy already does this by itself. No effect where the kernel has no THP. The user's own setting wins.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
