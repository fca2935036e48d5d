"""kdteach: an interactive, bilingual course on knowledge distillation, backed by a tested library.

Sub-packages (see docs/ARCHITECTURE.md):

- :mod:`kdteach.config`   settings from the environment (data, cache, results, budget, device)
- :mod:`kdteach.data`     CIFAR-10/100 (torchvision or offline subsets), device-resident batches
- :mod:`kdteach.models`   the CIFAR zoo of the CRD benchmark plus tiny CPU nets, with declared stages
- :mod:`kdteach.features` forward-hook feature capture (pre- or post-activation)
- :mod:`kdteach.losses`   distillation losses as pure functions
- :mod:`kdteach.methods`  one file per paper: extras, features, loss weights, protocol
- :mod:`kdteach.train`    budgets and the trainer
- :mod:`kdteach.zoo`      cached teachers and baseline students
- :mod:`kdteach.results`  run records and comparison tables
- :mod:`kdteach.analysis` before/after measurements on trained models (attention, CAM correlation)
- :mod:`kdteach.viz`, :mod:`kdteach.widgets`  figures and dashboards
"""

__version__ = "0.1.0"
