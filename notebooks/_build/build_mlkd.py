"""Build notebooks/01_response/mlkd.ipynb (Multi-level Logit Distillation) with kdteach.nbtools.

Run from the repository root: ``python notebooks/_build/build_mlkd.py``, then execute the notebook with
``kdteach notebooks run notebooks/01_response/mlkd.ipynb`` (KDTEACH_BUDGET=ci) before committing it.
"""

from __future__ import annotations

from pathlib import Path

from kdteach import nbtools as nbt

OUT = Path(__file__).resolve().parents[1] / "01_response" / "mlkd.ipynb"

nb = nbt.new_notebook({"id": "mlkd", "paper": "Multi-level Logit Distillation", "venue": "CVPR 2023",
                       "part": "01_response"})

# ---------------------------------------------------------------------------------------------- 0
nbt.add_prose(nb, r"""
    # Multi-level Logit Distillation

    **Paper.** Ying Jin, Jiaqi Wang, Dahua Lin. *Multi-level Logit Distillation.* CVPR 2023,
    pp. 24276-24285.
    <https://openaccess.thecvf.com/content/CVPR2023/html/Jin_Multi-Level_Logit_Distillation_CVPR_2023_paper.html>.
    The authors' code (built on mdistiller): <https://github.com/Jin-Ying/Multi-Level-Logit-Distillation>.

    **The idea in one sentence.** Besides matching each image's softened prediction (KD), make the
    student's batch of predictions reproduce the teacher's image-to-image similarities (a $B \times B$
    matrix) and class-to-class co-occurrences (a $K \times K$ matrix), at several temperatures and on a
    weakly and a strongly augmented view of every batch.

    **Run time** (whole notebook, teacher and student-alone baselines cached with `kdteach zoo warm`):

    | budget | what runs | time |
    |---|---|---|
    | `ci` | CIFAR-10 subset at 16x16, `tiny_teacher` -> `tiny_student`, 2 MLKD runs (strong view on 16 images per batch) | about a minute on 2 CPU cores |
    | `quick` | 10k CIFAR-10 images at 32x32, same tiny pair | a few minutes on a laptop CPU |
    | `gpu` | all of CIFAR-100, `resnet32x4` -> `resnet8x4`, 60 epochs, 3 seeds | several minutes on one GPU (two views per step) |
    | `paper` | the benchmark recipe (240 epochs, CIFAR-100) | hours on a GPU |

    Choose the budget with the environment variable `KDTEACH_BUDGET` before starting the kernel.
""", r"""
    # 多层次 logit 蒸馏

    **论文。** Ying Jin、Jiaqi Wang、Dahua Lin，*Multi-level Logit Distillation*，CVPR 2023，
    第 24276-24285 页。
    <https://openaccess.thecvf.com/content/CVPR2023/html/Jin_Multi-Level_Logit_Distillation_CVPR_2023_paper.html>。
    作者的代码（基于 mdistiller）：<https://github.com/Jin-Ying/Multi-Level-Logit-Distillation>。

    **一句话概括。** 除了逐张图像匹配软化预测（KD），还要让学生一个批次的预测重现教师的图像间相似度
    （一个 $B \times B$ 矩阵）和类别间共现关系（一个 $K \times K$ 矩阵），并且在多个温度下、在每个批次的
    弱增强视图和强增强视图上同时进行。

    **运行时间**（整本笔记；教师和单独训练的学生基线已用 `kdteach zoo warm` 缓存）：

    | 计算预算 | 运行内容 | 时间 |
    |---|---|---|
    | `ci` | CIFAR-10 子集，16x16，`tiny_teacher` -> `tiny_student`，2 次 MLKD 训练（每批 16 张图像用强增强视图） | 2 核 CPU 上约一分钟 |
    | `quick` | 1 万张 32x32 的 CIFAR-10 图像，同一对小网络 | 笔记本电脑 CPU 上几分钟 |
    | `gpu` | 完整 CIFAR-100，`resnet32x4` -> `resnet8x4`，60 轮，3 个随机种子 | 单张 GPU 上数分钟（每步两个视图） |
    | `paper` | 基准训练方案（240 轮，CIFAR-100） | GPU 上数小时 |

    启动内核前用环境变量 `KDTEACH_BUDGET` 选择计算预算。
""")

nbt.add_code(nb, """
    %matplotlib inline
    # (kdteach.viz returns matplotlib Figure objects; the line above makes Jupyter draw them inline)
    import torch

    from kdteach import data, results, zoo
    from kdteach.analysis import similarity_distance, soft_target_kl
    from kdteach.losses import kd_loss, mlkd_batch_loss, mlkd_class_loss, softened_probs
    from kdteach.methods import get_method
    from kdteach.methods.mlkd import confidence_masks, temperatures
    from kdteach.train import Mechanism, budget_splits, distill, get_budget, run_experiment
    from kdteach.viz import plot_curves, plot_image_grid, plot_similarity_pairs
    from kdteach.widgets import MLKDExplorer, results_dashboard

    budget = get_budget()                              # from KDTEACH_BUDGET: ci, quick, gpu or paper
    seeds = budget.seeds
    paper_hparams = dict(get_method("mlkd").hparams)   # the authors' defaults (KD_ours.py, mdistiller cfg.py)
    mlkd_hparams = dict(paper_hparams)
    if budget.name == "ci":
        # ci only (section 5 says why): the strong view on 16 of the 128 images of each batch (CPU cost),
        # and the batch and class terms scaled back to the share of the gradient they have at the
        # authors' scale (section 4)
        mlkd_hparams.update(strong_batch=16, batch_weight=0.1, class_weight=0.01)
    T_BASE = mlkd_hparams["temperature"]
    print(f"budget {budget.name}: {budget.dataset} at {budget.resolution}x{budget.resolution}, "
          f"{budget.teacher} -> {budget.student}, {budget.epochs} epochs, batch {budget.batch_size}, seeds {seeds}")
    print("the authors' hyper-parameters:", paper_hparams)
    print("this run's:                  ", mlkd_hparams)
""")

# ---------------------------------------------------------------------------------------------- 1
nbt.add_prose(nb, r"""
    ## 1. The question

    KD compares teacher and student one image at a time. Two networks can agree image by image, on
    average, and still arrange a batch differently: which images they find alike, which classes they
    predict together. The paper asks whether aligning these relations, with nothing but the logits,
    makes a *logit* method as strong as feature distillation, which needs the networks' inner layers.

    MLKD aligns three levels of the same prediction matrix $P$ (one row of softened probabilities per
    image): the **instance** level (each row: KD), the **batch** level ($P P^\top$: how similar the
    predictions of two images are) and the **class** level ($P^\top P$: how much probability two classes
    receive together over the batch). It adds what the paper calls *prediction augmentation*, the same
    terms at five temperatures, and its code trains on a weak and a strongly augmented view of each batch.

    **In the taxonomy.** Response-based knowledge in offline distillation, with relation-based terms
    (similarity matrices, as in SP or RKD) built from the outputs instead of from features.
""", r"""
    ## 1. 问题

    KD 逐张图像比较教师和学生。两个网络可以在平均意义上逐张一致，却仍然以不同方式组织一个批次：它们认为哪些图像
    相像、把哪些类别一起预测。论文要问的是：只用 logits 来对齐这些关系，能否让一个 *logit* 方法强到与特征蒸馏相当？
    特征蒸馏需要网络的内部层。

    MLKD 对齐同一个预测矩阵 $P$（每张图像一行软化概率）的三个层次：**实例级**（每一行：KD）、**批次级**
    （$P P^\top$：两张图像的预测有多相似）和**类别级**（$P^\top P$：两个类别在整个批次上一起得到多少概率）。
    它还加入了论文所说的*预测增强*，即在五个温度下计算同样的项；它的代码在每个批次的弱增强视图和强增强视图上训练。

    **在分类体系中的位置。** 离线蒸馏中基于响应的知识，并带有基于关系的项（相似度矩阵，如 SP 或 RKD），
    只不过这些矩阵由输出而不是特征构成。
""")

# ---------------------------------------------------------------------------------------------- 2
nbt.add_prose(nb, r"""
    ## 2. The knowledge and the loss

    For a batch of $B$ images and $K$ classes, let $P^{\tau} = \mathrm{softmax}(Z / \tau) \in \mathbb{R}^{B \times K}$
    be the softened predictions at temperature $\tau$, row $b$ being image $b$'s distribution $p_b$.
    The three levels, each for one $\tau$:

    $$\mathcal{L}_{\mathrm{ins}}(\tau) = \tau^2\, \frac{1}{B} \sum_{b=1}^{B} \mathrm{KL}\big(p^{\tau}_{t,b} \,\big\|\, p^{\tau}_{s,b}\big),
    \qquad
    \mathcal{L}_{\mathrm{bat}}(\tau) = \frac{1}{B} \big\lVert G^{\tau}_t - G^{\tau}_s \big\rVert_F^2,\ \ G = P P^\top \in \mathbb{R}^{B \times B},$$

    $$\mathcal{L}_{\mathrm{cls}}(\tau) = \frac{1}{K} \big\lVert M^{\tau}_t - M^{\tau}_s \big\rVert_F^2,\ \ M = P^\top P \in \mathbb{R}^{K \times K}.$$

    $G_{ij} = p_i \cdot p_j$ is large when images $i$ and $j$ get similar predictions; $M_{ac} = \sum_b p_{b,a} p_{b,c}$
    is large when classes $a$ and $c$ receive probability together. The instance level is KD's loss
    (with its $\tau^2$); the batch and class levels have no $\tau^2$, as in the authors' `bc_loss` and `cc_loss`.

    **What the authors' code trains.** With a weak view $w$ (crop and flip) and a strong view $s$ of each
    batch, $\tau \in \{T, 3, 5, 2, 6\}$ and $T = 4$:

    $$\mathcal{L} = \alpha_{\mathrm{CE}} \big[\mathrm{CE}(z^w_s, y) + \mathrm{CE}(z^s_s, y)\big]
    + \alpha \Big[ m_b \sum_\tau \mathcal{L}^w_{\mathrm{ins}}(\tau) + \mathcal{L}^{s}_{\mathrm{strong}}
    + \beta_b\, m_b \sum_\tau \mathcal{L}^w_{\mathrm{bat}}(\tau) + \beta_c\, m_c \sum_\tau \mathcal{L}^w_{\mathrm{cls}}(\tau) \Big]$$

    where $\mathcal{L}^{s}_{\mathrm{strong}}$ is the instance term of the strong view at $T, 3, 5$ plus that of the
    weak view at 2 and 6 (sic, see the Deeper note), and $m_b$, $m_c$ are the fractions kept by two
    confidence masks (each $\tfrac12$ here). The authors use $\alpha_{\mathrm{CE}} = 0.1$, $\alpha = 0.9$ and
    $\beta_b = \beta_c = 1$.

    | symbol | meaning | code |
    |---|---|---|
    | $Z$, $P^{\tau}$ | logits $(B, K)$; softened predictions | `z_s`, `z_t`; `softened_probs(z, tau)` |
    | $G = P P^\top$, $M = P^\top P$ | batch $(B, B)$ and class $(K, K)$ matrices | `P @ P.T`, `P.T @ P` |
    | $\mathcal{L}_{\mathrm{ins}}$, $\mathcal{L}_{\mathrm{bat}}$, $\mathcal{L}_{\mathrm{cls}}$ | the three levels at one $\tau$ | `kd_loss`, `mlkd_batch_loss`, `mlkd_class_loss` |
    | $\tau$; $T$ | the five temperatures; the base one | `temperatures(T)`; `temperature` |
    | $m_b$, $m_c$ | confidence-mask fractions | `confidence_masks(z_t)` |
    | $\alpha_{\mathrm{CE}}$, $\alpha$, $\beta_b$, $\beta_c$ | weights | `ce_weight`, `kd_weight`, `batch_weight`, `class_weight` |
    | terms | what the trainer logs | `ce`, `instance_weak`, `instance_strong`, `batch`, `class` |
""", r"""
    ## 2. 知识与损失

    对一个含 $B$ 张图像、$K$ 个类别的批次，令 $P^{\tau} = \mathrm{softmax}(Z / \tau) \in \mathbb{R}^{B \times K}$
    为温度 $\tau$ 下的软化预测，第 $b$ 行是图像 $b$ 的分布 $p_b$。三个层次（各对应一个 $\tau$）：

    $$\mathcal{L}_{\mathrm{ins}}(\tau) = \tau^2\, \frac{1}{B} \sum_{b=1}^{B} \mathrm{KL}\big(p^{\tau}_{t,b} \,\big\|\, p^{\tau}_{s,b}\big),
    \qquad
    \mathcal{L}_{\mathrm{bat}}(\tau) = \frac{1}{B} \big\lVert G^{\tau}_t - G^{\tau}_s \big\rVert_F^2,\ \ G = P P^\top \in \mathbb{R}^{B \times B},$$

    $$\mathcal{L}_{\mathrm{cls}}(\tau) = \frac{1}{K} \big\lVert M^{\tau}_t - M^{\tau}_s \big\rVert_F^2,\ \ M = P^\top P \in \mathbb{R}^{K \times K}.$$

    当图像 $i$ 与 $j$ 的预测相似时 $G_{ij} = p_i \cdot p_j$ 较大；当类别 $a$ 与 $c$ 一起得到概率时
    $M_{ac} = \sum_b p_{b,a} p_{b,c}$ 较大。实例级就是 KD 的损失（带 $\tau^2$）；批次级和类别级没有 $\tau^2$，
    与作者的 `bc_loss` 和 `cc_loss` 一致。

    **作者的代码实际训练的目标。** 每个批次有弱增强视图 $w$（裁剪和翻转）与强增强视图 $s$，
    $\tau \in \{T, 3, 5, 2, 6\}$，$T = 4$：

    $$\mathcal{L} = \alpha_{\mathrm{CE}} \big[\mathrm{CE}(z^w_s, y) + \mathrm{CE}(z^s_s, y)\big]
    + \alpha \Big[ m_b \sum_\tau \mathcal{L}^w_{\mathrm{ins}}(\tau) + \mathcal{L}^{s}_{\mathrm{strong}}
    + \beta_b\, m_b \sum_\tau \mathcal{L}^w_{\mathrm{bat}}(\tau) + \beta_c\, m_c \sum_\tau \mathcal{L}^w_{\mathrm{cls}}(\tau) \Big]$$

    其中 $\mathcal{L}^{s}_{\mathrm{strong}}$ 是强增强视图在 $T, 3, 5$ 下的实例项，加上弱增强视图在 2 和 6 下的实例项
    （原文如此，见“深入”一节），$m_b$、$m_c$ 是两个置信度掩码保留的比例（这里都是 $\tfrac12$）。作者使用
    $\alpha_{\mathrm{CE}} = 0.1$、$\alpha = 0.9$ 和 $\beta_b = \beta_c = 1$。

    | 符号 | 含义 | 代码 |
    |---|---|---|
    | $Z$, $P^{\tau}$ | logits $(B, K)$；软化预测 | `z_s`, `z_t`；`softened_probs(z, tau)` |
    | $G = P P^\top$, $M = P^\top P$ | 批次矩阵 $(B, B)$ 与类别矩阵 $(K, K)$ | `P @ P.T`, `P.T @ P` |
    | $\mathcal{L}_{\mathrm{ins}}$, $\mathcal{L}_{\mathrm{bat}}$, $\mathcal{L}_{\mathrm{cls}}$ | 某个 $\tau$ 下的三个层次 | `kd_loss`, `mlkd_batch_loss`, `mlkd_class_loss` |
    | $\tau$；$T$ | 五个温度；基准温度 | `temperatures(T)`；`temperature` |
    | $m_b$, $m_c$ | 置信度掩码的保留比例 | `confidence_masks(z_t)` |
    | $\alpha_{\mathrm{CE}}$, $\alpha$, $\beta_b$, $\beta_c$ | 权重 | `ce_weight`, `kd_weight`, `batch_weight`, `class_weight` |
    | 各项 | 训练器记录的项 | `ce`, `instance_weak`, `instance_strong`, `batch`, `class` |
""")

nbt.add_prose(nb, r"""
    ### Deeper: what the authors' code does, line by line

    Read from `mdistiller/distillers/KD_ours.py` and `mdistiller/engine/cfg.py` of the authors'
    repository; `kdteach.methods.mlkd` reproduces each point.

    - **Weights.** `KD_ours` reads mdistiller's KD defaults, `CE_WEIGHT` 0.1 and `KD_WEIGHT` 0.9, and `KD.TEMPERATURE` 4;
      the CIFAR-100 configs do not override them. Every level gets the same `KD_WEIGHT`.
    - **Temperatures.** Each level is added at `self.temperature` and at 3, 5, 2 and 6.
    - **Masks.** `mask` keeps the images whose teacher confidence (top softmax probability of the weak
      view at $T = 1$) is at or below the batch median (`np.percentile(., 50)`); `class_conf_mask`
      keeps the classes whose summed probability is at or below the median over classes. The losses
      are computed already reduced (`reduce=False` is commented out), so `(loss * mask).mean()` is the
      loss times the fraction of `True` entries: $\tfrac12$ for an even number of distinct values. The
      masks scale terms; they select nothing.
    - **The strong sum.** `loss_kd_strong` takes the strong view at $T$, 3 and 5 but the *weak* view at 2
      and 6, so the weak view's terms at 2 and 6 enter `loss_kd` twice (once with the mask factor).
    - **Unused terms.** `loss_cc_strong` and `loss_bc_strong` are computed but not returned: the batch
      and class levels act on the weak view only.
    - **Strong view.** The data code (seen in a public fork of the repository,
      `mdistiller/dataset/cifar100.py`) draws a second, independent crop and flip of each image and
      applies a FixMatch-style RandAugment (two of 14 operations, random magnitudes) and Cutout of up to
      half the side. Both views pass through the student and the teacher.
""", r"""
    ### 深入：作者的代码逐行做了什么

    读自作者仓库的 `mdistiller/distillers/KD_ours.py` 与 `mdistiller/engine/cfg.py`；`kdteach.methods.mlkd`
    复现了其中每一点。

    - **权重。** `KD_ours` 读取 mdistiller 的 KD 默认值：`CE_WEIGHT` 0.1、`KD_WEIGHT` 0.9，以及 `KD.TEMPERATURE` 4；
      CIFAR-100 的配置文件没有覆盖它们。每个层次都使用同一个 `KD_WEIGHT`。
    - **温度。** 每个层次都在 `self.temperature` 以及 3、5、2、6 下各加一次。
    - **掩码。** `mask` 保留教师置信度（弱增强视图在 $T = 1$ 下的最大 softmax 概率）不超过批次中位数
      （`np.percentile(., 50)`）的图像；`class_conf_mask` 保留概率总和不超过各类中位数的类别。由于损失在计算时已经
      归约（`reduce=False` 被注释掉了），`(loss * mask).mean()` 等于损失乘以 `True` 所占的比例：当取值两两不同且个数
      为偶数时为 $\tfrac12$。这两个掩码只是缩放各项，并不挑选任何样本。
    - **强增强视图之和。** `loss_kd_strong` 在 $T$、3、5 下使用强增强视图，在 2 和 6 下却使用*弱*增强视图，因此这两个
      弱增强项在 `loss_kd` 中出现了两次（其中一次带掩码系数）。
    - **未使用的项。** `loss_cc_strong` 与 `loss_bc_strong` 被计算却没有返回：批次级和类别级只作用在弱增强视图上。
    - **强增强视图。** 数据代码（见该仓库的一个公开分叉中的 `mdistiller/dataset/cifar100.py`）对每张图像另取一次独立的
      裁剪和翻转，再做 FixMatch 风格的 RandAugment（从 14 种操作中取 2 种，幅度随机）以及边长最多为一半的 Cutout。
      两个视图都要经过学生和教师。
""")

# ---------------------------------------------------------------------------------------------- 3
nbt.add_prose(nb, r"""
    ## 3. From scratch

    A fixed tiny example: $B = 4$ images, $K = 5$ classes, seeded random logits for the teacher and
    the student, $T = 4$. Nothing depends on the budget or on training (nbval checks the numbers).
""", r"""
    ## 3. 从零实现

    一个固定的小例子：$B = 4$ 张图像、$K = 5$ 个类别，教师和学生的 logits 由固定种子随机生成，$T = 4$。
    这里的一切都不依赖计算预算或训练（nbval 会检查这些数字）。
""")

nbt.add_code(nb, """
    # NBVAL_CHECK_OUTPUT
    g = torch.Generator().manual_seed(0)
    B, K, T = 4, 5, 4.0
    z_t = 3.0 * torch.randn(B, K, generator=g)   # teacher logits (B, K)
    z_s = 2.0 * torch.randn(B, K, generator=g)   # student logits (B, K)

    def softmax_t(z, t):
        e = torch.exp((z - z.max(dim=1, keepdim=True).values) / t)
        return e / e.sum(dim=1, keepdim=True)

    P_t, P_s = softmax_t(z_t, T), softmax_t(z_s, T)
    assert torch.allclose(P_t, softened_probs(z_t, T)) and torch.allclose(P_s, softened_probs(z_s, T))
    for b in range(B):
        print(f"teacher image {b}:", " ".join(f"{v:.3f}" for v in P_t[b].tolist()))
""", check_output=True)

nbt.add_prose(nb, r"""
    **Step 1: the batch matrix.** $G_{ij} = \sum_k P_{ik} P_{jk}$, written as a loop over the entries, then
    the squared Frobenius distance divided by $B$.
""", r"""
    **第 1 步：批次矩阵。** $G_{ij} = \sum_k P_{ik} P_{jk}$，逐个元素用循环写出，再求 Frobenius 距离的平方并除以 $B$。
""")

nbt.add_code(nb, """
    # NBVAL_CHECK_OUTPUT
    def gram_rows(P):                       # (B, B): inner products of the rows, image against image
        n = P.shape[0]
        return torch.tensor([[float((P[i] * P[j]).sum()) for j in range(n)] for i in range(n)])

    G_t, G_s = gram_rows(P_t), gram_rows(P_s)
    assert torch.allclose(G_t, P_t @ P_t.T, atol=1e-6)
    mine_batch = ((G_t - G_s) ** 2).sum() / B
    lib_batch = mlkd_batch_loss(z_s, z_t, temperature=T)
    assert torch.allclose(mine_batch, lib_batch, atol=1e-7)
    print("teacher G:")
    for row in G_t.tolist():
        print("  " + " ".join(f"{v:.3f}" for v in row))
    print(f"batch level: mine = {mine_batch.item():.6f}, mlkd_batch_loss = {lib_batch.item():.6f}")
""", check_output=True)

nbt.add_prose(nb, r"""
    **Step 2: the class matrix.** $M_{ac} = \sum_b P_{ba} P_{bc}$, the same loop over columns instead of
    rows; the distance is divided by $K$. Its entries are sums over the batch, so it grows with $B$.
""", r"""
    **第 2 步：类别矩阵。** $M_{ac} = \sum_b P_{ba} P_{bc}$，同样的循环，只是作用于列而不是行；距离除以 $K$。
    它的元素是对整个批次求和，所以会随 $B$ 增大。
""")

nbt.add_code(nb, """
    # NBVAL_CHECK_OUTPUT
    M_t, M_s = gram_rows(P_t.T), gram_rows(P_s.T)     # (K, K): the same products, class against class
    assert torch.allclose(M_t, P_t.T @ P_t, atol=1e-6)
    mine_class = ((M_t - M_s) ** 2).sum() / K
    lib_class = mlkd_class_loss(z_s, z_t, temperature=T)
    assert torch.allclose(mine_class, lib_class, atol=1e-7)
    print(f"class level: mine = {mine_class.item():.6f}, mlkd_class_loss = {lib_class.item():.6f}")
""", check_output=True)

nbt.add_prose(nb, r"""
    **Step 3: five temperatures, three levels.** The instance level is `kd_loss` (the kd notebook
    derives it). Summing each level over $\tau \in \{4, 3, 5, 2, 6\}$ gives the method's weak-view
    terms before their weights. Note the scales: the instance level is in the units of KD, the other
    two are sums of squared differences of probabilities, far smaller here.
""", r"""
    **第 3 步：五个温度、三个层次。** 实例级就是 `kd_loss`（kd 笔记推导过它）。把每个层次在
    $\tau \in \{4, 3, 5, 2, 6\}$ 上求和，就得到方法中弱增强视图的各项（尚未加权）。注意量级：实例级与 KD 的量纲
    相同，另外两项是概率之差的平方和，在这里要小得多。
""")

nbt.add_code(nb, """
    # NBVAL_CHECK_OUTPUT
    taus = temperatures(T)
    print("temperatures:", taus)
    print(f"{'tau':>5} {'instance':>10} {'batch':>10} {'class':>10}")
    sums = {"instance": 0.0, "batch": 0.0, "class": 0.0}
    for tau in taus:
        row = {"instance": kd_loss(z_s, z_t, tau).item(), "batch": mlkd_batch_loss(z_s, z_t, tau).item(),
               "class": mlkd_class_loss(z_s, z_t, tau).item()}
        sums = {k: sums[k] + row[k] for k in sums}
        print(f"{tau:5g} {row['instance']:10.5f} {row['batch']:10.5f} {row['class']:10.5f}")
    print(f"{'sum':>5} {sums['instance']:10.5f} {sums['batch']:10.5f} {sums['class']:10.5f}")
""", check_output=True)

nbt.add_prose(nb, r"""
    **Step 4: the masks.** The teacher's confidence per image (top probability at $T = 1$) and each
    class's summed probability; each mask keeps the values at or below the median, and the method uses
    the fraction kept. With 4 images and 5 classes: $2/4$ and $3/5$.
""", r"""
    **第 4 步：掩码。** 教师对每张图像的置信度（$T = 1$ 下的最大概率）以及每个类别的概率总和；每个掩码保留
    不超过中位数的值，方法使用的是被保留的比例。这里有 4 张图像、5 个类别：分别是 $2/4$ 和 $3/5$。
""")

nbt.add_code(nb, """
    # NBVAL_CHECK_OUTPUT
    p1 = softmax_t(z_t, 1.0)
    confidence, class_mass = p1.max(dim=1).values, p1.sum(dim=0)

    def median(v):                          # np.percentile(v, 50): the middle value, or the mean of the two
        s = v.sort().values
        n = len(s)
        return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2

    m_b = (confidence <= median(confidence)).float().mean()
    m_c = (class_mass <= median(class_mass)).float().mean()
    lib_b, lib_c = confidence_masks(z_t)
    assert torch.allclose(m_b, lib_b) and torch.allclose(m_c, lib_c)
    print("confidence per image:", " ".join(f"{v:.3f}" for v in confidence.tolist()), f"-> m_b = {m_b.item():.2f}")
    print("mass per class:      ", " ".join(f"{v:.3f}" for v in class_mass.tolist()), f"-> m_c = {m_c.item():.2f}")
""", check_output=True)

nbt.add_prose(nb, r"""
    Bad input fails early with a message that names the argument and the expected shape:
""", r"""
    错误的输入会尽早失败，错误信息会指出参数名和期望的形状：
""")

nbt.add_code(nb, """
    try:
        mlkd_class_loss(z_s, z_t[:, :3], temperature=T)
    except ValueError as e:
        print(e)
""")

# ---------------------------------------------------------------------------------------------- 4
nbt.add_prose(nb, r"""
    ## 4. Seeing the knowledge

    **The two views.** Top: the first test image of each class as the trainer gives it (weak view:
    crop and flip). Bottom: the strong view made from it by `kdteach.data.strong_augment`, two random
    RandAugment operations and a grey Cutout square.
""", r"""
    ## 4. 看见知识

    **两个视图。** 上排：每个类别的第一张测试图像，即训练器提供的样子（弱增强视图：裁剪和翻转）。下排：由
    `kdteach.data.strong_augment` 从它生成的强增强视图，包含两个随机的 RandAugment 操作和一个灰色 Cutout 方块。
""")

nbt.add_code(nb, """
    teacher = zoo.teacher(budget=budget, progress=False, verbose=False)   # accuracy: on the card
    device = next(teacher.parameters()).device
    test_split = budget_splits(budget)[1]
    class_names = list(test_split.class_names)
    n_ex = min(10, len(class_names))
    x_ex, y_ex = data.example_batch(n=n_ex, dataset=budget.dataset, resolution=budget.resolution, device=device)

    weak = data.denormalize(x_ex, budget.dataset).cpu()                   # images in [0, 1]
    strong = data.strong_augment(weak, torch.Generator().manual_seed(0))  # what MLKD.strong_view does, then normalises
    fig = plot_image_grid(torch.cat([weak, strong]), titles=[c[:6] for c in class_names[:n_ex]] * 2, ncols=n_ex,
                          title="weak view (top) and strong view (bottom)", cell=0.8)
    fig
""")

nbt.add_prose(nb, r"""
    **The matrices.** The teacher and the student trained alone (first seed), at $T = 4$. Top: the batch
    matrix $P P^\top$ of the ten images above (row $i$ is the image of class $i$). Bottom: the class
    matrix $P^\top P$ of one batch of 128 test images, the batch size the loss sees at `ci`. Each row of
    the figure shares one colour scale between teacher and student; the difference has its own scale.
""", r"""
    **矩阵。** 教师与单独训练的学生（第一个随机种子），$T = 4$。上：上面十张图像的批次矩阵 $P P^\top$（第 $i$ 行是
    类别 $i$ 的图像）。下：一个含 128 张测试图像的批次的类别矩阵 $P^\top P$，这正是 `ci` 下损失看到的批大小。
    图中每一行里教师和学生共用一个颜色刻度；差值图有自己的刻度。
""")

nbt.add_code(nb, """
    alone_first = zoo.student_baseline(budget=budget, seed=seeds[0], progress=False, verbose=False)[0]
    x_batch = data.normalize(test_split.images[:budget.batch_size], budget.dataset).to(device)
    with torch.inference_mode():
        zt_ex, zs_ex = teacher(x_ex).float().cpu(), alone_first(x_ex).float().cpu()
        zt_b, zs_b = teacher(x_batch).float().cpu(), alone_first(x_batch).float().cpu()
    pt_ex, ps_ex = softened_probs(zt_ex, T_BASE), softened_probs(zs_ex, T_BASE)
    pt_b, ps_b = softened_probs(zt_b, T_BASE), softened_probs(zs_b, T_BASE)
    rows = {"batch: P P^T of the images above": (pt_ex @ pt_ex.T, ps_ex @ ps_ex.T),
            f"class: P^T P over {len(x_batch)} test images": (pt_b.T @ pt_b, ps_b.T @ ps_b)}
    fig = plot_similarity_pairs(rows, labels={k: class_names[:n_ex] if k.startswith("batch") else class_names
                                              for k in rows},
                                names=("teacher", "student alone"), annotate=False,
                                title=f"MLKD's matrices at T = {T_BASE:g}")
    fig.set_dpi(80)
    fig
""")

nbt.add_prose(nb, r"""
    **Reading the matrices.** In the teacher's batch matrix bright off-diagonal cells pair vehicles
    (airplane and ship, automobile and truck) and the animals form one block; the class matrix shows
    the same grouping. The student alone has the blocks with weaker contrasts; the difference panels
    show where the batch and class terms pull it.
""", r"""
    **解读矩阵。** 在教师的批次矩阵中，明亮的非对角元把交通工具两两配对（飞机与船、汽车与卡车），动物形成一块；类别矩阵
    显示同样的分组。单独训练的学生也有这些分块，但对比更弱；差值图显示了批次项和类别项会把它往哪里拉。
""")

nbt.add_prose(nb, r"""
    ### Deeper: how much each level pushes, and why `ci` rescales two of them

    The gradient of each level (summed over the five temperatures) with respect to the student's
    logits, relative to the instance level's: on one `ci` batch (10 classes, 128 images) with the teacher and the student alone,
    and on random logits shaped like a CIFAR-100 batch of the authors (100 classes, 64 images). The
    batch and class terms are sums over $B^2$ and $K^2$ probability products, so their weight relative to
    KD changes by orders of magnitude with $B$ and $K$.
""", r"""
    ### 深入：每个层次的推动力有多大，以及 `ci` 为何要重新缩放其中两个

    各层次（在五个温度上求和）对学生 logits 的梯度，
    相对于实例级梯度的比例：一次在 `ci` 的一个批次上（10 个类别、128 张图像，教师与单独训练的学生），一次在形如作者
    CIFAR-100 批次的随机 logits 上（100 个类别、64 张图像）。批次项和类别项是 $B^2$ 与 $K^2$ 个概率乘积之和，所以它们
    相对 KD 的权重会随 $B$ 和 $K$ 变化好几个数量级。
""")

nbt.add_code(nb, """
    def gradient_shares(zs, zt, t=T_BASE):
        \"\"\"|d level / d z_s| / |d instance / d z_s|, each level summed over the five temperatures.\"\"\"
        norms = {}
        for name, loss in (("instance", kd_loss), ("batch", mlkd_batch_loss), ("class", mlkd_class_loss)):
            z = zs.clone().requires_grad_(True)
            sum(loss(z, zt, tau) for tau in temperatures(t)).backward()
            norms[name] = z.grad.norm().item()
        return {k: norms[k] / norms["instance"] for k in ("batch", "class")}

    g = torch.Generator().manual_seed(1)
    labels_100 = torch.randint(0, 100, (64,), generator=g)
    zt_100 = 2.0 * torch.randn(64, 100, generator=g) + 6.0 * torch.nn.functional.one_hot(labels_100, 100)
    zs_100 = 0.6 * zt_100 + 1.5 * torch.randn(64, 100, generator=g)      # a student that roughly follows
    share = {"ci batch (K = 10, B = 128)": gradient_shares(zs_b, zt_b),
             "CIFAR-100-like (K = 100, B = 64)": gradient_shares(zs_100, zt_100)}
    print(f"{'':36} {'batch / instance':>17} {'class / instance':>17}")
    for name, s in share.items():
        print(f"{name:36} {s['batch']:17.4f} {s['class']:17.4f}")
    ci_share = share["ci batch (K = 10, B = 128)"]
    print(f"with this run's batch_weight = {mlkd_hparams['batch_weight']:g} and class_weight = "
          f"{mlkd_hparams['class_weight']:g}: {mlkd_hparams['batch_weight'] * ci_share['batch']:.4f} and "
          f"{mlkd_hparams['class_weight'] * ci_share['class']:.4f}")
    assert ci_share["class"] > 0.5 and share["CIFAR-100-like (K = 100, B = 64)"]["class"] < 0.1
""")

nbt.add_prose(nb, r"""
    At the authors' scale the batch and class levels carry a few percent of the instance level's
    gradient; at `ci` the class level would carry more than the instance level itself. With the
    authors' weights unchanged, a `ci` student is dominated by matching $10 \times 10$ co-occurrence
    matrices of a 57%-accurate teacher and trains badly (exercise 1 runs it). As the at notebook does
    for its scale-dependent weight, the `ci` run therefore multiplies the batch and class terms by
    `batch_weight = 0.1` and `class_weight = 0.01`, which puts both back at a few percent of the
    instance level, the authors' balance. The random CIFAR-100-like logits are a model, not the authors'
    networks: read the second row as an order of magnitude.
""", r"""
    在作者的尺度下，批次级和类别级只承担实例级梯度的百分之几；而在 `ci` 下，类别级的梯度甚至会超过实例级本身。
    如果不改作者的权重，`ci` 的学生会被“匹配一个准确率 57% 的教师的 $10 \times 10$ 共现矩阵”所主导，训练效果很差
    （练习 1 会运行它）。正如 at 笔记处理其依赖尺度的权重那样，`ci` 的训练因此把批次项和类别项分别乘以
    `batch_weight = 0.1` 和 `class_weight = 0.01`，使两者回到实例级的百分之几，也就是作者的平衡。形如 CIFAR-100
    的随机 logits 只是一个模型，不是作者的网络：第二行只应当作数量级来看。
""")

# ---------------------------------------------------------------------------------------------- 5
nbt.add_prose(nb, r"""
    ## 5. Experiment

    Same budget, same seeds: the cached teacher, the student trained alone (the cached baseline) and
    the same student trained with MLKD. Two `ci`-only settings, both recorded in the run's
    hyper-parameters so the dashboard keeps these runs apart. `batch_weight = 0.1`, `class_weight = 0.01`:
    at the authors' scale (100 classes, batch 64) the batch and class terms carry a few percent of the
    instance term's gradient, at `ci` (10 classes, batch 128) the class term would carry more than
    it, and the student trains badly (exercise 1 runs that contrast, left out here for time); the
    factors restore the authors' balance (the Deeper note of section 4 measures it).
    `strong_batch = 16`: the strong view for 16 of the 128 images of each batch (on the whole batch
    an MLKD step costs about 2.3 KD steps on a CPU, on 16 images about 1.4).

    **The headline is the mechanism.** MLKD pulls the student's class and batch matrices towards the
    teacher's, so the check is that on *test* images the MLKD student's class-similarity distance to
    the teacher, $\frac{1}{K} \lVert M_t - M_s \rVert_F^2$ at $T = 4$ averaged over batches of 128
    (`kdteach.analysis.similarity_distance`, lower is closer), is below the student alone's. The card
    asserts it for every seed; accuracy comes second, last epoch only.
""", r"""
    ## 5. 实验

    相同的计算预算、相同的随机种子：缓存的教师、单独训练的学生（缓存的基线），以及用 MLKD 训练的同一个学生。有两项只在
    `ci` 下使用的设置，都记录在训练的超参数中，因此仪表板会把这些训练与其他设置分开。`batch_weight = 0.1`、
    `class_weight = 0.01`：在作者的尺度下（100 个类别、批大小 64），批次项和类别项只承担实例项梯度的百分之几；在 `ci` 下
    （10 个类别、批大小 128），类别项的梯度会超过实例项，学生训练得很差（练习 1 运行这个对照，为节省时间这里不运行）；这两个系数恢复了作者的平衡（第 4 节的
    “深入”部分给出了测量）。`strong_batch = 16`：每个批次 128 张图像中只有 16 张使用强增强视图（对整个批次使用时，
    一步 MLKD 在 CPU 上约等于 2.3 步 KD，只用 16 张图像时约为 1.4 步）。

    **首要结论是机制。** MLKD 把学生的类别矩阵和批次矩阵拉向教师的，所以检验的是：在*测试*图像上，MLKD 学生到教师的
    类别相似度距离 $\frac{1}{K} \lVert M_t - M_s \rVert_F^2$（$T = 4$，在每批 128 张图像上取平均，
    `kdteach.analysis.similarity_distance`，越小越接近）低于单独训练的学生。结果卡片对每个随机种子都断言这一点；
    准确率居其次，只看最后一轮。
""")

nbt.add_code(nb, """
    # kdteach.train.run_experiment: the cached teacher, the cached students alone and a student trained
    # with MLKD, for every seed of the budget (each run recorded for the dashboard and sanity-checked)
    exp = run_experiment("mlkd", budget=budget, teacher=teacher, hparams=mlkd_hparams)
    baseline_models = {s: exp.baselines[s][0] for s in seeds}
    assert all(exp.runs[s].record["hparams"] == mlkd_hparams for s in seeds)

    x_test = data.normalize(test_split.images, budget.dataset)
    dist = {s: {"alone": similarity_distance(baseline_models[s], teacher, x_test, T_BASE, budget.batch_size),
                "mlkd": similarity_distance(exp.runs[s].student, teacher, x_test, T_BASE, budget.batch_size)}
            for s in seeds}
    mech = Mechanism(f"class-similarity distance to the teacher, T = {T_BASE:g} "
                     f"(similarity_distance, test split, batches of {budget.batch_size})",
                     alone={s: dist[s]["alone"]["class"] for s in seeds},
                     method={s: dist[s]["mlkd"]["class"] for s in seeds})
    card = exp.card(mech).check()   # asserts: the MLKD student is closer to the teacher, for every seed
    card
""")

nbt.add_prose(nb, r"""
    The other two measurements, per seed: the batch-level distance (same function) and the KD notebook's
    KL to the teacher's softened outputs at $T = 4$ (`soft_target_kl`), all lower-is-closer.
""", r"""
    另外两项测量（按随机种子）：批次级距离（同一个函数）以及 KD 笔记中的、到教师 $T = 4$ 软化输出的 KL
    （`soft_target_kl`），都是越小越接近。
""")

nbt.add_code(nb, """
    kl = {s: {"alone": soft_target_kl(baseline_models[s], teacher, x_test, T_BASE),
              "mlkd": soft_target_kl(exp.runs[s].student, teacher, x_test, T_BASE)} for s in seeds}
    table = [{"seed": s, "student": who, "batch distance": f"{dist[s][key]['batch']:.4f}",
              "class distance": f"{dist[s][key]['class']:.4f}", "KL (T = 4)": f"{kl[s][key]:.4f}"}
             for s in seeds for who, key in (("alone", "alone"), ("MLKD", "mlkd"))]
    print(results.format_table(table))
    last = exp.runs[seeds[0]].record["history"][-1]["loss"]
    print("last-epoch loss terms, seed", seeds[0], {k: round(v, 4) for k, v in last.items()})
""")

nbt.add_code(nb, """
    histories = {"teacher": teacher.kd_record["history"]}
    for s in seeds:
        histories[f"student alone, seed {s}"] = exp.baselines[s][1]["history"]
        histories[f"MLKD, seed {s}"] = exp.runs[s].record["history"]
    fig = plot_curves(histories, metric=("train_acc", "test_acc"), title=f"Budget {budget.name}")
    fig.set_dpi(80)
    fig
""")

nbt.add_prose(nb, r"""
    **Reading the card.** For both seeds the MLKD student's class matrices are closer to the teacher's
    than the student alone's, and so are its batch matrices and its softened outputs (the table).
    Its last-epoch accuracy is not higher than the student alone's here: the tiny student underfits
    (training accuracy near test accuracy, see the curves), and a strong view is a regulariser that
    helps the paper's large students over 240 to 480 epochs but costs a 13k-parameter one in 20. Much
    of the closeness may be plain KD, which also aligns the matrices; exercise 2 measures that.
""", r"""
    **解读结果卡片。** 对两个随机种子，MLKD 学生的类别矩阵都比单独训练的学生更接近教师，批次矩阵和软化输出也是如此
    （见上表）。它最后一轮的准确率在这里并不比单独训练的学生高：这个很小的学生欠拟合（训练准确率接近测试准确率，见曲线），
    而强增强视图是一种正则化，它能帮助论文中的大学生网络在 240 到 480 轮中受益，却会让一个只有 1.3 万参数、只训练 20 轮的
    网络付出代价。这种“接近”可能有很大一部分来自普通 KD，它同样会对齐这些矩阵；练习 2 测量了这一点。
""")

# ---------------------------------------------------------------------------------------------- 6
nbt.add_prose(nb, r"""
    ## 6. The paper's numbers and ours

    The MLKD numbers below are CIFAR-100 top-1 accuracies from a secondary source, the results table
    in the README of the Logit Standardization authors' code (Sun et al., CVPR 2024),
    which lists MLKD's CIFAR-100 accuracy for these pairs next to KD's; the teacher, student-alone and
    KD columns are the CRD benchmark's (Tian et al., ICLR 2020, Table 1, also a secondary source here),
    as in the kd notebook.
""", r"""
    ## 6. 论文结果与我们的结果

    下面 MLKD 的数字是 CIFAR-100 上的 top-1 准确率，来自二手来源：Logit Standardization 作者代码（Sun 等，
    CVPR 2024）README 中的结果表，它把这些师生组合上 MLKD 的 CIFAR-100 准确率与 KD 的并列；教师、单独训练的学生和 KD
    三列取自 CRD 基准（Tian 等，ICLR 2020，表 1，这里同样是二手来源），与 kd 笔记一致。
""")

nbt.add_code(nb, """
    PAPER = {
        # secondary source: README of github.com/sunshangquan/logit-standardization-KD (Sun et al., CVPR 2024),
        # table "Teacher and student have identical structures", row MLKD, CIFAR-100 top-1 %
        "mlkd": {"resnet32x4 -> resnet8x4": 77.08, "wrn-40-2 -> wrn-16-2": 76.63,
                 "resnet56 -> resnet20": 72.19, "vgg13 -> vgg8": 75.18},
        # secondary source: the CRD benchmark (Tian et al., ICLR 2020), Table 1: (teacher, student alone, KD)
        "crd_table1": {"resnet32x4 -> resnet8x4": (79.42, 72.50, 73.33), "wrn-40-2 -> wrn-16-2": (75.61, 73.26, 74.92),
                       "resnet56 -> resnet20": (72.34, 69.06, 70.66), "vgg13 -> vgg8": (74.64, 70.36, 72.98)},
    }


    def mean_last(recs):
        return sum(r["last_acc"] for r in recs) / len(recs)


    rows = [{"setting": f"paper: {pair}", "teacher": t, "alone": a, "KD": k, "MLKD": PAPER["mlkd"][pair],
             "MLKD - KD": PAPER["mlkd"][pair] - k, "MLKD - teacher": PAPER["mlkd"][pair] - t}
            for pair, (t, a, k) in PAPER["crd_table1"].items()]
    ours_t = teacher.kd_record["last_acc"]
    ours_m = mean_last([exp.runs[s].record for s in seeds])
    rows.append({"setting": f"ours: {budget.teacher} -> {budget.student}, {budget.name}, seeds {list(seeds)}",
                 "teacher": ours_t, "alone": mean_last([exp.baselines[s][1] for s in seeds]), "KD": "(kd notebook)",
                 "MLKD": ours_m, "MLKD - KD": "", "MLKD - teacher": ours_m - ours_t})
    print(results.format_table(rows))
""")

nbt.add_prose(nb, r"""
    **An honest reading.** In these rows MLKD gains 1.5 to 3.8 points over KD, and on two pairs the
    student ends *above* its teacher (wrn-16-2, vgg8): a hint that not all of the gain is knowledge
    transfer. The recipe differs from the benchmark's in more than the loss:

    - **Extra augmentation.** Every step also trains on a RandAugment + Cutout view of the batch, with
      cross-entropy and KD terms of its own; the baselines (student alone, KD) get crop and flip only.
    - **Longer and different schedules.** The authors' configs (`configs/cifar100/ours/`) train the
      same-architecture pairs for 240 epochs at learning rate 0.025 and the heterogeneous pairs (for
      instance resnet32x4 -> ShuffleNetV2, resnet50 -> MobileNetV2) for 480 epochs at 0.01 or 0.0025,
      batch 64, against the benchmark's 240 epochs at 0.05 (0.01 for MobileNetV2 and ShuffleNet
      students). Both choices were questioned publicly in the repository's issues (#2 on the
      augmentation and the 480 epochs, #10 on the 480 epochs).
    - **Where the gradient goes.** At the authors' scale the batch and class terms carry a few percent
      of the distillation gradient; the rest is KD at five temperatures on two views.

    None of this says the levels are useless, only that the table mixes them with a stronger recipe;
    an ablation with the same augmentation and schedule for every method would separate them.

    Our `ci` run is not a reproduction (5,590 CIFAR-10 images at 16x16, a 57%-accurate teacher, 20
    epochs, two `ci` settings, two seeds); what carries over is the mechanism the card checks. For
    comparable numbers, run with `KDTEACH_BUDGET=gpu` or `paper`, where neither `ci` setting applies.
""", r"""
    **如实解读。** 在这几行中，MLKD 比 KD 高出 1.5 到 3.8 个百分点，并且有两组的学生最终*超过*了它的教师（wrn-16-2、
    vgg8）：这提示并非所有增益都来自知识迁移。这个训练方案与基准的不同不只在损失上：

    - **额外的数据增强。** 每一步还要在批次的 RandAugment + Cutout 视图上训练，并带有它自己的交叉熵项和 KD 项；而基线
      （单独训练的学生、KD）只用裁剪和翻转。
    - **更长且不同的训练计划。** 作者的配置（`configs/cifar100/ours/`）让同结构的师生组合以学习率 0.025 训练 240 轮，
      让异构组合（例如 resnet32x4 -> ShuffleNetV2、resnet50 -> MobileNetV2）以 0.01 或 0.0025 训练 480 轮，批大小 64；
      而基准是以 0.05（MobileNetV2 和 ShuffleNet 学生为 0.01）训练 240 轮。这两点都在该仓库的 issue 中被公开质疑过（#2 询问数据增强和 480 轮，#10 询问 480 轮）。
    - **梯度流向何处。** 在作者的尺度下，批次项和类别项只占蒸馏梯度的百分之几；其余是五个温度、两个视图上的 KD。

    这些都不说明这些层次没有用，只说明表中的结果把它们与一个更强的训练方案混在了一起；让每种方法都使用同样的数据增强和
    训练计划的消融实验，才能把两者分开。

    我们的 `ci` 训练不是复现（5,590 张 16x16 的 CIFAR-10 图像、一个准确率 57% 的教师、20 轮、两项 `ci` 设置、两个随机
    种子）；能够迁移过来的是结果卡片所检验的机制。若要得到可比的数字，请用 `KDTEACH_BUDGET=gpu` 或 `paper` 运行，那时两项
    `ci` 设置都不适用。
""")

nbt.add_prose(nb, r"""
    ### Deeper: every deviation from the paper's setting

    - **Strong view.** `kdteach.data.strong_augment` re-implements the FixMatch-style RandAugment and
      Cutout as batched tensor operations on the device, applied to the weak view (the same crop and
      flip); the authors apply PIL operations per image to a second, independent crop and flip.
      Geometric operations sample bilinearly (PIL: nearest) and Equalize is the textbook CDF mapping;
      `tests/test_data_mlkd.py` checks the other operations against PIL.
    - **`strong_batch = 16` at `ci`**: the strong view of 16 images per batch (authors: all of them).
    - **`batch_weight = 0.1`, `class_weight = 0.01` at `ci`** (authors: 1), section 4.
    - **Schedule and data.** The budget's schedule for every method (at `ci`: 20 epochs, cosine,
      learning rate 0.1, batch 128); the authors: 240 or 480 epochs, step decay at 150, 180 and 210,
      learning rate 0.025 to 0.0025, batch 64, CIFAR-100 at 32x32.
    - **Kept as in the code**: the masks acting as factors, the weak-view terms at 2 and 6 in the strong
      sum, no batch or class terms on the strong view.
""", r"""
    ### 深入：与论文设置的每一处差异

    - **强增强视图。** `kdteach.data.strong_augment` 把 FixMatch 风格的 RandAugment 和 Cutout 重新实现为设备上的批量
      张量运算，作用于弱增强视图（同样的裁剪和翻转）；作者则对第二次独立的裁剪和翻转逐张图像施加 PIL 操作。几何操作采用
      双线性采样（PIL：最近邻），Equalize 采用教科书式的累积分布映射；`tests/test_data_mlkd.py` 用 PIL 检验了其余操作。
    - **`ci` 下的 `strong_batch = 16`**：每个批次只有 16 张图像使用强增强视图（作者：全部）。
    - **`ci` 下的 `batch_weight = 0.1`、`class_weight = 0.01`**（作者：1），见第 4 节。
    - **训练计划与数据。** 每种方法都用计算预算的训练计划（`ci` 下：20 轮、余弦、学习率 0.1、批大小 128）；作者：240 或
      480 轮，在 150、180、210 轮阶梯衰减，学习率 0.025 到 0.0025，批大小 64，32x32 的 CIFAR-100。
    - **与代码保持一致之处**：掩码只起缩放作用、强增强之和中包含 2 和 6 下的弱增强项、强增强视图上没有批次项和类别项。
""")

# ---------------------------------------------------------------------------------------------- 7
nbt.add_prose(nb, r"""
    ## 7. Interactive

    **MLKD explorer.** The teacher's and the student-alone's logits on the example images of section 4.
    Move the base temperature, switch between five temperatures and one, and select the levels in the
    total: bars of the weighted weak-view terms (log scale, the authors' weights), their table, and
    the matrices at $T$.
""", r"""
    ## 7. 交互

    **MLKD 探索器。** 教师与单独训练的学生在第 4 节示例图像上的 logits。调节基准温度，在五个温度与单个温度之间切换，并
    选择计入总和的层次：加权后弱增强各项的柱状图（对数刻度，作者的权重）、数值表，以及温度 $T$ 下的矩阵。
""")

nbt.add_code(nb, """
    explorer = MLKDExplorer(zs_ex, zt_ex, class_names, temperature=T_BASE)
    explorer
""")

nbt.add_prose(nb, r"""
    **All runs of this budget.** Every run recorded under this budget, other notebooks' included; the
    `ci` settings of this run form their own setting (`mlkd / batch_weight=0.1, ...`). Click "Compare".
""", r"""
    **本计算预算下的所有训练。** 本计算预算下记录的每一次训练，包括其他笔记中的；本次训练的 `ci` 设置自成一组
    （`mlkd / batch_weight=0.1, ...`）。点击 “Compare”。
""")

nbt.add_code(nb, """
    results_dashboard(exp.budget)     # every run recorded under this budget; one filter rule everywhere
""")

# ---------------------------------------------------------------------------------------------- 8
nbt.add_prose(nb, r"""
    ## 8. Summary, exercises, references

    **Summary.**
    - MLKD aligns one prediction matrix at three levels: rows (KD), $P P^\top$ (images against images)
      and $P^\top P$ (classes against classes), each at five temperatures, on a weak and a strong view.
    - The batch and class terms are sums over $B^2$ and $K^2$ entries without a $T^2$: their weight
      relative to KD depends on $B$ and $K$ by orders of magnitude (section 5).
    - On test images the MLKD student's class matrices are closer to the teacher's (the card, every
      seed); the paper's gains also contain a strong-augmentation view and longer schedules (section 6).

    **Exercises.**
    1. *The authors' weights at `ci`.* `run = distill("mlkd", budget=budget, teacher=teacher, seed=0,
       hparams={"strong_batch": 16}, progress=False)` keeps `batch_weight = class_weight = 1` (ci: about 25 s).
       Compare `run.record["last_acc"]` and `similarity_distance` with the card; explain with the
       gradient shares of section 4.
    2. *KD or the levels?* Run `run_experiment("kd", budget=budget, teacher=teacher)` (ci: about 35 s) and
       measure its students with `similarity_distance`. How much of MLKD's closeness does KD give?
    3. *Temperature and scale.* In the explorer, use one temperature and move $T$ from 1 to 10. By what
       factor do the batch and class terms fall, and why does the instance term not? (ci: no run)

    **References.**
    - Y. Jin, J. Wang, D. Lin. Multi-level Logit Distillation. CVPR 2023, pp. 24276-24285; code:
      <https://github.com/Jin-Ying/Multi-Level-Logit-Distillation>.
    - G. Hinton, O. Vinyals, J. Dean. Distilling the Knowledge in a Neural Network. arXiv:1503.02531, 2015.
    - B. Zhao, Q. Cui, R. Song, Y. Qiu, J. Liang. Decoupled Knowledge Distillation. CVPR 2022 (mdistiller).
    - F. Tung, G. Mori. Similarity-Preserving Knowledge Distillation. ICCV 2019.
    - K. Sohn et al. FixMatch: Simplifying Semi-Supervised Learning with Consistency and Confidence.
      NeurIPS 2020 (the RandAugment variant of the strong view).
    - S. Sun, W. Ren, J. Li, R. Wang, X. Cao. Logit Standardization in Knowledge Distillation. CVPR 2024;
      code and results table: <https://github.com/sunshangquan/logit-standardization-KD>.
    - Y. Tian, D. Krishnan, P. Isola. Contrastive Representation Distillation. ICLR 2020.
""", r"""
    ## 8. 小结、练习与参考文献

    **小结。**
    - MLKD 在三个层次上对齐同一个预测矩阵：行（KD）、$P P^\top$（图像对图像）和 $P^\top P$（类别对类别），每个层次都在
      五个温度下、在弱增强和强增强两个视图上计算。
    - 批次项和类别项是 $B^2$ 与 $K^2$ 个元素之和，没有 $T^2$：它们相对 KD 的权重随 $B$ 和 $K$ 变化好几个数量级（第 5 节）。
    - 在测试图像上，MLKD 学生的类别矩阵更接近教师的（结果卡片，每个随机种子）；论文的增益还包含一个强增强视图和更长的
      训练计划（第 6 节）。

    **练习。**
    1. *`ci` 下使用作者的权重。* `run = distill("mlkd", budget=budget, teacher=teacher, seed=0,
       hparams={"strong_batch": 16}, progress=False)` 保持 `batch_weight = class_weight = 1`（ci: about 25 s）。
       把 `run.record["last_acc"]` 和 `similarity_distance` 与结果卡片比较，并用第 4 节的梯度比例加以解释。
    2. *是 KD 还是这些层次？* 运行 `run_experiment("kd", budget=budget, teacher=teacher)`（ci: about 35 s），并用
       `similarity_distance` 测量它的学生。MLKD 的“接近”中，有多少是 KD 带来的？
    3. *温度与尺度。* 在探索器中使用单个温度，把 $T$ 从 1 调到 10。批次项和类别项下降了多少倍？为什么实例项没有？
       （ci: no run）

    **参考文献。**
    - Y. Jin, J. Wang, D. Lin. Multi-level Logit Distillation. CVPR 2023, pp. 24276-24285；代码：
      <https://github.com/Jin-Ying/Multi-Level-Logit-Distillation>。
    - G. Hinton, O. Vinyals, J. Dean. Distilling the Knowledge in a Neural Network. arXiv:1503.02531, 2015.
    - B. Zhao, Q. Cui, R. Song, Y. Qiu, J. Liang. Decoupled Knowledge Distillation. CVPR 2022（mdistiller）。
    - F. Tung, G. Mori. Similarity-Preserving Knowledge Distillation. ICCV 2019.
    - K. Sohn 等. FixMatch: Simplifying Semi-Supervised Learning with Consistency and Confidence.
      NeurIPS 2020（强增强视图所用的 RandAugment 变体）。
    - S. Sun, W. Ren, J. Li, R. Wang, X. Cao. Logit Standardization in Knowledge Distillation. CVPR 2024；
      代码与结果表：<https://github.com/sunshangquan/logit-standardization-KD>。
    - Y. Tian, D. Krishnan, P. Isola. Contrastive Representation Distillation. ICLR 2020.
""")

nbt.write_notebook(nb, OUT)
print(f"wrote {OUT}")
