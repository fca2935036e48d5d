"""Feature knowledge from one hidden layer: the FitNets hint loss.

Reference: A. Romero, N. Ballas, S. E. Kahou, A. Chassang, C. Gatta, Y. Bengio, "FitNets: Hints for
Thin Deep Nets", ICLR 2015 (arXiv:1412.6550), Sec. 2.2, Eq. 3; CRD benchmark code
(HobbitLong/RepDistiller, ``distiller_zoo/FitNet.py``, ``HintLoss``).

The teacher's *hint* layer output u_h(x) supervises the student's *guided* layer output v_g(x)
through a trainable regressor r (the method's extra, :mod:`kdteach.methods.fitnet`); this module
holds only the distance between the two equal-shape tensors, r(v_g(x)) and u_h(x).
"""

from __future__ import annotations

import torch

from ._validate import as_float, check_same_shape, check_tensor, full_precision

__all__ = ["fitnet_loss"]

HINT = "(B, C, H, W) or (B, D)"


def fitnet_loss(student_hint: torch.Tensor, teacher_hint: torch.Tensor) -> torch.Tensor:
    """FitNets hint loss, CRD benchmark reduction (Romero et al., ICLR 2015, Eq. 3).

    L = mean over all B·C·H·W entries of (s − t)², where s = r(v_g(x)) is the student's guided-layer
    output after the regressor and t = u_h(x) the teacher's hint-layer output, of equal shapes.

    Paper vs benchmark: the paper writes L_HT = ½ ‖u_h(x) − r(v_g(x))‖², the halved squared L2 norm
    summed over the C·H·W entries of one example (a sum, not a mean), trained by SGD over examples.
    The CRD benchmark (``HintLoss`` = ``nn.MSELoss()``) averages over every entry of the batch, which
    this function follows; the two differ by the constant factor C·H·W / 2 per example, which a loss
    weight absorbs (the benchmark's weight on this mean is 100). Because it is a mean over entries,
    the value does not scale with the map's area: halving the input resolution leaves it unchanged for
    the same per-entry mismatch (unlike :func:`kdteach.losses.at_loss`, whose normalised maps shrink
    as 1 / (H·W)).

    Args:
        student_hint: (B, C, H, W) (or (B, D)) regressed student guided features r(v_g(x)); gradients
            flow here (to the student and the regressor).
        teacher_hint: the teacher's hint features u_h(x), the same shape (detached inside).

    Returns:
        Scalar loss, the mean over all entries (float32 for half/bfloat16 inputs). No loss weight.

    Raises:
        TypeError: an input is not a floating-point tensor.
        ValueError: an input has another rank, is empty, or the two shapes or devices differ.
    """
    check_tensor(student_hint, "student_hint", (2, 4), HINT)
    check_tensor(teacher_hint, "teacher_hint", (2, 4), HINT)
    check_same_shape(student_hint, "student_hint", teacher_hint, "teacher_hint")
    with full_precision(student_hint.device):
        s = as_float(student_hint)
        t = as_float(teacher_hint.detach()).to(s.dtype)
        return (s - t).square().mean()
