"""Guided filter (He, Sun and Tang, "Guided Image Filtering", ECCV 2010 / TPAMI 2013) and its fast, upsampling form
(He and Sun, "Fast Guided Filter", arXiv:1505.00996, 2015), in torch so that it is differentiable.

For a guide I and an input p, every window ω_k of radius r fits q = a_k I + b_k with

    a_k = cov_k(I, p) / (var_k(I) + ε),    b_k = mean_k(p) − a_k mean_k(I)        (He et al. 2010, eqs. 5-6)

and the output averages the fits of the windows covering a pixel: q = mean(a) I + mean(b) (eq. 8). The fast form
computes mean(a), mean(b) on a low-resolution guide, upsamples them bilinearly and applies them to the
full-resolution guide, so the output follows the full-resolution edges. OpenCV's `cv2.ximgproc.guidedFilter` is in
opencv-contrib only, which this project does not depend on; box means are `avg_pool2d` without the padded taps, i.e.
the normalised box filter of the paper's reference code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over the (2r+1)² window around every pixel, counting only pixels inside the image: N×C×H×W -> same.
    Separable (rows, then columns): the in-image count of a window is the product of its row and column counts."""
    r = max(0, min(int(radius), (min(x.shape[-2:]) - 1) // 2))
    if r == 0:
        return x
    x = F.avg_pool2d(x, (1, 2 * r + 1), stride=1, padding=(0, r), count_include_pad=False)
    return F.avg_pool2d(x, (2 * r + 1, 1), stride=1, padding=(r, 0), count_include_pad=False)


def guided_coefficients(guide: torch.Tensor, src: torch.Tensor, radius: int,
                        eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Window-averaged linear coefficients (mean a, mean b) of the guided filter.

    guide: N×1×H×W (values about in [0,1]); src: N×C×H×W; radius in pixels; eps the regulariser in the guide's
    squared units (larger = smoother, fewer edges kept). Returns (A, B), each N×C×H×W, with the filtered output
    A·guide + B (He et al. 2010, eqs. 5, 6, 8). Differentiable in both inputs.
    """
    mean_i = box_mean(guide, radius)
    mean_p = box_mean(src, radius)
    cov_ip = box_mean(guide * src, radius) - mean_i * mean_p
    var_i = box_mean(guide * guide, radius) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_mean(a, radius), box_mean(b, radius)


class GuidedFilter:
    """guided_coefficients for one fixed guide and many inputs (a refinement loop): the guide's window mean and
    variance are computed once. guide N×1×H×W; radius px; eps as guided_coefficients."""

    def __init__(self, guide: torch.Tensor, radius: int, eps: float) -> None:
        self.guide, self.radius, self.eps = guide, int(radius), float(eps)
        self.mean_i = box_mean(guide, self.radius)
        self.var_i = box_mean(guide * guide, self.radius) - self.mean_i * self.mean_i

    def coefficients(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, B) of src N×C×H×W, each N×C×H×W (He et al. 2010, eqs. 5, 6, 8); differentiable in src."""
        mean_p = box_mean(src, self.radius)
        a = (box_mean(self.guide * src, self.radius) - self.mean_i * mean_p) / (self.var_i + self.eps)
        b = mean_p - a * self.mean_i
        return box_mean(a, self.radius), box_mean(b, self.radius)


def guided_filter(guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """Edge-preserving smoothing of src (N×C×H×W) along the guide's edges (guide N×1×H×W) -> N×C×H×W."""
    a, b = guided_coefficients(guide, src, radius, eps)
    return a * guide + b
