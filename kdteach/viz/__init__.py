"""Figures for the notebooks: every function returns a :class:`matplotlib.figure.Figure`.

Figures are created without ``pyplot`` (no global state, nothing to close, no ``plt.show``); a
notebook displays a returned figure once. All text is English (no CJK glyphs).

- :func:`plot_softened_distributions`: softmax(z / T) for several T (KD)
- :func:`plot_decoupled_distributions`: p split into b = [p_t, 1 - p_t] and the non-target p-hat (DKD)
- :func:`plot_similarity_matrix`: class-similarity / dark-knowledge matrices
- :func:`plot_similarity_pairs`: teacher and student similarity matrices side by side (MLKD)
- :func:`plot_target_distributions`, :func:`plot_gradient_scale`: targets with knowledge removed and
  per-image gradient norms against the teacher's confidence (understanding_kd)
- :func:`plot_attention_maps`: attention maps of teacher and student per stage (AT)
- :func:`plot_cam_overlays`: CAM vs Grad-CAM overlaid on the images
- :func:`plot_fsp_matrices`: FSP matrices on one colour scale (FSP)
- :func:`plot_singular_vectors`: singular values and right singular vectors (KD-SVD)
- :func:`plot_hint_channels`: a teacher's hint channels next to regressed guided features (FitNets)
- :func:`plot_margins`, :func:`plot_preact_response`: the teacher's per-channel margins and one channel's
  pre-ReLU responses with the margin ReLU and the partial L2's ignored region (OFD)
- :func:`plot_agreement_maps`: teacher/student activation agreement maps per stage, one scale (AB)
- :func:`plot_abf_attention`: the two attention maps of one ReviewKD ABF module for a few images (ReviewKD)
- :func:`plot_selectivity_maps`: teacher and student neuron selectivity maps, MMD² to the first row (NST)
- :func:`plot_relation_matrices`: teacher's and students' pairwise-distance matrices sorted by class (RKD;
  with ``relation=kdteach.losses.sp_similarity``, SP's batch similarity matrices G)
- :func:`plot_embeddings`, :func:`pca_2d`: each network's embedding of the same images in 2-D by PCA (CRD)
- :func:`plot_contrastive_similarity`: SSKD's (3n, n) similarity matrices on one scale, kept rows marked
- :func:`plot_image_grid`: a grid of images, e.g. a generator's samples (DAFL)
- :func:`plot_curves`, :func:`plot_bars`: experiment curves and seed-averaged bars
"""

from .boundary import plot_agreement_maps
from .review import plot_abf_attention
from .charts import history_values, plot_bars, plot_curves, plot_similarity_matrix, plot_softened_distributions
from .decoupled import plot_decoupled_distributions
from .display import figure_png, register_notebook_display
from .embedding import pca_2d, plot_embeddings
from .images import plot_image_grid
from .selfsup import plot_contrastive_similarity
from .hints import plot_hint_channels
from .margins import plot_margins, plot_preact_response
from .selectivity import plot_selectivity_maps
from .relation import plot_relation_matrices
from .maps import plot_attention_maps, plot_cam_overlays, plot_fsp_matrices, plot_singular_vectors
from .similarity import plot_similarity_pairs
from .soft_targets import plot_gradient_scale, plot_target_distributions

register_notebook_display()  # a cell ending in `fig` shows the PNG in Jupyter, even under MPLBACKEND=Agg

__all__ = [
    "plot_softened_distributions",
    "plot_decoupled_distributions",
    "plot_similarity_matrix",
    "plot_similarity_pairs",
    "plot_target_distributions",
    "plot_gradient_scale",
    "plot_attention_maps",
    "plot_cam_overlays",
    "plot_fsp_matrices",
    "plot_singular_vectors",
    "plot_hint_channels",
    "plot_margins",
    "plot_preact_response",
    "plot_selectivity_maps",
    "plot_agreement_maps",
    "plot_abf_attention",
    "plot_relation_matrices",
    "plot_embeddings",
    "pca_2d",
    "plot_image_grid",
    "plot_contrastive_similarity",
    "plot_curves",
    "plot_bars",
    "history_values",
    "figure_png",
    "register_notebook_display",
]
