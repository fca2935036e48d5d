"""Distillation losses as pure functions: tensors in, a scalar out, no loss weights inside.

Grouped by the knowledge they transfer (see ``docs/ARCHITECTURE.md`` and DESIGN §8):

- :mod:`kdteach.losses.response`: :func:`kd_loss`, :func:`softened_probs` (Hinton et al.);
  :func:`mlkd_batch_loss`, :func:`mlkd_class_loss` (MLKD's batch and class levels)
- :mod:`kdteach.losses.decoupled`: :func:`dkd_loss`, :func:`dkd_terms`, :func:`binary_probs`,
  :func:`nontarget_probs` (DKD: KD split into TCKD and NCKD)
- :mod:`kdteach.losses.soft_targets`: :func:`soft_target_loss`, :func:`smoothed_targets`,
  :func:`matched_epsilon`, :func:`permute_nontarget` (Tang et al. 2020: KD against targets with
  the teacher's knowledge removed level by level)
- :mod:`kdteach.losses.tfkd`: :func:`virtual_teacher_probs`, :func:`virtual_teacher_target`,
  :func:`tfkd_reg_loss` (Tf-KD reg's manually designed teacher, as the authors' code builds it)
- :mod:`kdteach.losses.feature`: :func:`attention_map`, :func:`at_loss`, :func:`at_loss_paper` (AT);
  :func:`fsp_matrix`, :func:`fsp_loss` (FSP); :func:`kdsvd_loss` and its steps
  :func:`svd_features`, :func:`align_singular_vectors`, :func:`canonical_signs`, :func:`rbf_dfv`,
  :func:`kdsvd_vector_loss` (KD-SVD)
- :mod:`kdteach.losses.hint`: :func:`fitnet_loss` (FitNets' hint loss; the regressor is the method's)
- :mod:`kdteach.losses.selectivity`: :func:`nst_loss`, :func:`nst_kernel`, :func:`selectivity_vectors`
  (NST: squared MMD between the channel distributions, linear / polynomial / Gaussian kernels)
- :mod:`kdteach.losses.boundary`: :func:`ab_loss` (AB's squared hinge on pre-ReLU features; the connector is
  the method's)
- :mod:`kdteach.losses.overhaul`: :func:`ofd_margin`, :func:`ofd_loss` (OFD's per-channel margin from the
  teacher's BN and the partial L2 against the margin-ReLU'd teacher; the connector is the method's)
- :mod:`kdteach.losses.review`: :func:`hcl_loss`, :func:`hcl_level_weights` (ReviewKD's hierarchical
  context loss: MSE plus pooled MSEs at 4, 2, 1; the review path and its ABF modules are the method's)
- :mod:`kdteach.losses.relation`: :func:`rkd_loss`, :func:`rkd_terms`, :func:`rkd_distance_potential`,
  :func:`rkd_angle_potential`, :func:`pairwise_distances` (RKD's distance and angle potentials)
- :mod:`kdteach.losses.similarity`: :func:`sp_loss`, :func:`sp_similarity` (SP: row-normalised batch
  similarity matrices G = normalise(Q·Qᵀ) of teacher and student, ‖G_t − G_s‖²_F / B²)
- :mod:`kdteach.losses.contrastive`: :func:`crd_nce_loss`, :func:`crd_scores` (CRD's critic scores and NCE
  loss; the memory bank is the method's state)
- :mod:`kdteach.losses.selfsup`: :func:`sskd_ss_loss`, :func:`sskd_tf_loss`, :func:`sskd_head_loss`,
  :func:`contrastive_similarity`, :func:`rotation_views`, :func:`view_targets`, :func:`error_rank_keep`
  (SSKD: rotated views, contrastive similarity matrices, selective KL terms)
- :mod:`kdteach.losses.datafree`: :func:`dafl_onehot_loss`, :func:`dafl_activation_loss`,
  :func:`dafl_entropy_loss` (DAFL's generator losses; these keep the teacher's gradients)
- :mod:`kdteach.losses.cam`: :func:`class_activation_map` (CAM), :func:`grad_cam` (captum),
  :func:`normalize_map`

Conventions: teacher inputs are detached inside; half/bfloat16 inputs are reduced in float32
(autocast is disabled inside the loss); where the paper and the CRD benchmark code differ, the
function follows the benchmark and its docstring says how.
"""

from .boundary import ab_loss
from .overhaul import ofd_loss, ofd_margin
from .review import HCL_LEVELS, hcl_level_weights, hcl_loss
from .cam import class_activation_map, grad_cam, normalize_map
from .contrastive import CRD_EPS, crd_nce_loss, crd_scores
from .relation import pairwise_distances, rkd_angle_potential, rkd_distance_potential, rkd_loss, rkd_terms
from .selfsup import (contrastive_similarity, error_rank_keep, rotation_views, sskd_head_loss, sskd_ss_loss,
                      sskd_tf_loss, view_targets)
from .datafree import dafl_activation_loss, dafl_entropy_loss, dafl_onehot_loss
from .feature import (ATTENTION_MODES, align_singular_vectors, at_loss, at_loss_paper, attention_map,
                      canonical_signs, fsp_loss, fsp_matrix, kdsvd_loss, kdsvd_vector_loss, rbf_dfv, svd_features)
from .hint import fitnet_loss
from .similarity import sp_loss, sp_similarity
from .selectivity import NST_KERNELS, nst_kernel, nst_loss, selectivity_vectors
from .response import kd_loss, mlkd_batch_loss, mlkd_class_loss, softened_probs
from .decoupled import binary_probs, dkd_loss, dkd_terms, nontarget_probs
from .soft_targets import matched_epsilon, permute_nontarget, smoothed_targets, soft_target_loss
from .tfkd import tfkd_reg_loss, virtual_teacher_probs, virtual_teacher_target

__all__ = [
    "sp_loss", "sp_similarity",
    # response
    "kd_loss",
    "softened_probs",
    # response: MLKD
    "mlkd_batch_loss",
    "mlkd_class_loss",
    # response: DKD
    "dkd_loss",
    "dkd_terms",
    "binary_probs",
    "nontarget_probs",
    # response: Tang et al. (soft targets with levels of knowledge removed)
    "soft_target_loss",
    "smoothed_targets",
    "matched_epsilon",
    "permute_nontarget",
    # response: Tf-KD reg (the virtual teacher)
    "virtual_teacher_probs",
    "virtual_teacher_target",
    "tfkd_reg_loss",
    # feature: AT
    "ATTENTION_MODES",
    "attention_map",
    "at_loss",
    "at_loss_paper",
    # feature: FitNets
    "fitnet_loss",
    # feature: NST
    "NST_KERNELS",
    "selectivity_vectors",
    "nst_kernel",
    "nst_loss",
    # feature: AB (activation boundaries)
    "ab_loss",
    # feature: OFD
    "ofd_margin",
    "ofd_loss",
    # feature: ReviewKD
    "HCL_LEVELS",
    "hcl_level_weights",
    "hcl_loss",
    # feature: FSP
    "fsp_matrix",
    "fsp_loss",
    # feature: KD-SVD
    "svd_features",
    "align_singular_vectors",
    "rbf_dfv",
    "canonical_signs",
    "kdsvd_vector_loss",
    "kdsvd_loss",
    # relation: RKD
    "pairwise_distances",
    "rkd_distance_potential",
    "rkd_angle_potential",
    "rkd_terms",
    "rkd_loss",
    # relation: CRD
    "CRD_EPS",
    "crd_scores",
    "crd_nce_loss",
    # relation: SSKD
    "rotation_views",
    "view_targets",
    "contrastive_similarity",
    "error_rank_keep",
    "sskd_head_loss",
    "sskd_ss_loss",
    "sskd_tf_loss",
    # data-free: DAFL
    "dafl_onehot_loss",
    "dafl_activation_loss",
    "dafl_entropy_loss",
    # CAM
    "class_activation_map",
    "grad_cam",
    "normalize_map",
]
