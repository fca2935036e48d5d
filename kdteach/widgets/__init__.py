"""Widgets for the notebooks: ipywidgets over pure functions, so pytest can drive them headlessly.

One module per widget family, each readable on its own:

- :mod:`kdteach.widgets.comparison`: :class:`ComparisonDashboard` and :func:`results_dashboard`, the
  shared footer of every notebook's section 7 (methods side by side over the runs of one budget).
- :mod:`kdteach.widgets.kd`: :class:`KDTemperatureExplorer` (kd notebook).
- :mod:`kdteach.widgets.cam`: :class:`CAMExplorer` (cam notebook).
- :mod:`kdteach.widgets.fsp`: :class:`FSPExplorer` (fsp notebook).
- :mod:`kdteach.widgets.at`: :class:`AttentionExplorer` (at notebook).
- :mod:`kdteach.widgets.kdsvd`: :class:`SVDExplorer` (kdsvd notebook).
- :mod:`kdteach.widgets.takd`: :class:`TAKDChainExplorer` (takd notebook).
- :mod:`kdteach.widgets.dafl`: :class:`DAFLLossExplorer` (dafl notebook).
- :mod:`kdteach.widgets.dml`: :class:`DMLPeerExplorer` (dml notebook).
- :mod:`kdteach.widgets.byot`: :class:`BYOTExitExplorer` (byot notebook).
- :mod:`kdteach.widgets.dot`: :class:`DOTTrajectoryExplorer` (dot notebook).
- :mod:`kdteach.widgets.dkd`: :class:`DKDExplorer` (dkd notebook).
- :mod:`kdteach.widgets.mlkd`: :class:`MLKDExplorer` (mlkd notebook).
- :mod:`kdteach.widgets.understanding_kd`: :class:`KDEffectsExplorer` (understanding_kd notebook).
- :mod:`kdteach.widgets.tfkd`: :class:`VirtualTeacherExplorer` (tfkd notebook).
- :mod:`kdteach.widgets.fitnet`: :class:`RegressorExplorer` (fitnet notebook).
- :mod:`kdteach.widgets.nst`: :class:`SelectivityExplorer` (nst notebook).
- :mod:`kdteach.widgets.reviewkd`: :class:`HCLExplorer` (reviewkd notebook).
- :mod:`kdteach.widgets.ab`: :class:`BoundaryExplorer` (ab notebook).
- :mod:`kdteach.widgets.ofd`: :class:`MarginExplorer` (ofd notebook).
- :mod:`kdteach.widgets.rkd`: :class:`RKDInvarianceExplorer` (rkd notebook).
- :mod:`kdteach.widgets.sp`: :class:`SimilarityExplorer` (sp notebook).
- :mod:`kdteach.widgets.crd`: :class:`NCEExplorer` (crd notebook).
- :mod:`kdteach.widgets.sskd`: :class:`SSKDSelectionExplorer` (sskd notebook).

A method-specific widget (section 7 of its notebook) lives in its own module here: the logic is a
pure function returning a dict (tested without a widget), the widget a thin layer over it. The
widgets never print: figures are rendered to PNG and placed, with the tables, into an
``ipywidgets.Output`` as display data (no matplotlib object reprs reach the notebook).
"""

from .comparison import (ALL, FILTER_FIELDS, METRICS, ComparisonDashboard, comparison_figure, curves_figure,
                         grouping, results_dashboard, select_records, summarise)
from .cam import CAMExplorer, cam_explorer_state
from .fsp import FSPExplorer, fsp_explorer_state
from .kd import KDTemperatureExplorer, kd_explorer_state
from .at import AttentionExplorer, attention_explorer_state
from .kdsvd import SVDExplorer, svd_explorer_state
from .takd import TAKDChainExplorer, takd_explorer_state
from .dafl import DAFLLossExplorer, dafl_explorer_state
from .dml import DMLPeerExplorer, dml_explorer_state
from .byot import BYOTExitExplorer, byot_explorer_state
from .dot import DOTTrajectoryExplorer, dot_toy_figure, dot_toy_state
from .dkd import DKDExplorer, dkd_explorer_state
from .mlkd import MLKDExplorer, mlkd_explorer_state
from .understanding_kd import KDEffectsExplorer, kd_effects_state
from .tfkd import VirtualTeacherExplorer, tfkd_explorer_state
from .fitnet import RegressorExplorer, regressor_explorer_state
from .nst import SelectivityExplorer, selectivity_explorer_state
from .reviewkd import HCLExplorer, hcl_explorer_state
from .ab import BoundaryExplorer, boundary_explorer_state, boundary_figure
from .ofd import MarginExplorer, margin_explorer_state
from .rkd import RKDInvarianceExplorer, rkd_invariance_state
from .sp import SimilarityExplorer, sp_explorer_state
from .crd import NCEExplorer, nce_explorer_state
from .sskd import SSKDSelectionExplorer, sskd_selection_state

__all__ = [
    "METRICS", "FILTER_FIELDS", "ALL", "select_records", "grouping", "summarise", "comparison_figure",
    "curves_figure", "ComparisonDashboard", "results_dashboard", "kd_explorer_state", "KDTemperatureExplorer",
    "cam_explorer_state", "CAMExplorer", "fsp_explorer_state", "FSPExplorer",
    "attention_explorer_state", "AttentionExplorer", "svd_explorer_state", "SVDExplorer",
    "takd_explorer_state", "TAKDChainExplorer",
    "dafl_explorer_state", "DAFLLossExplorer",
    "dml_explorer_state", "DMLPeerExplorer",
    "byot_explorer_state", "BYOTExitExplorer",
    "dot_toy_state", "dot_toy_figure", "DOTTrajectoryExplorer",
    "dkd_explorer_state", "DKDExplorer",
    "mlkd_explorer_state", "MLKDExplorer",
    "kd_effects_state", "KDEffectsExplorer",
    "tfkd_explorer_state", "VirtualTeacherExplorer",
    "regressor_explorer_state", "RegressorExplorer",
    "selectivity_explorer_state", "SelectivityExplorer",
    "hcl_explorer_state", "HCLExplorer",
    "margin_explorer_state", "MarginExplorer",
    "boundary_explorer_state", "boundary_figure", "BoundaryExplorer",
    "rkd_invariance_state", "RKDInvarianceExplorer",
    "nce_explorer_state", "NCEExplorer",
    "sp_explorer_state", "SimilarityExplorer",
    "sskd_selection_state", "SSKDSelectionExplorer",
]
