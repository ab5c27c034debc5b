"""Layout conversions between the CPU API's images (numpy H×W×3, channels last) and the models' tensors (torch
N×C×H×W, channels first), one home. The conventions are docs/ARCHITECTURE.md's: float32 RGB in [0,1].
"""

from __future__ import annotations

import numpy as np
import torch


def to_planar(image: np.ndarray) -> torch.Tensor:
    """...×H×W×3 numpy (any float or int dtype) -> ...×3×H×W float32 tensor on the CPU (one copy)."""
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(image, -1, -3), dtype=np.float32))


def to_tensor(image: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
    """H×W×3 float image in [0,1] -> 1×3×H×W float32 tensor (a batch of one) on `device` (None: the CPU)."""
    x = to_planar(image)[None]
    return x if device is None else x.to(device)


def to_image(x: torch.Tensor) -> np.ndarray:
    """1×3×H×W (or 3×H×W) tensor -> H×W×3 float32 numpy on the host, clipped to [0,1]."""
    planes = x[0] if x.dim() == 4 else x
    return planes.detach().permute(1, 2, 0).clamp(0, 1).float().cpu().numpy()
