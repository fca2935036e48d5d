"""Build notebooks/01_response/tfkd.ipynb (Revisiting KD via Label Smoothing Regularization) with kdteach.nbtools.

Run from the repository root: ``python notebooks/_build/build_tfkd.py``, then execute the notebook with
``kdteach notebooks run notebooks/01_response/tfkd.ipynb`` (KDTEACH_BUDGET=ci) before committing it.
"""

from __future__ import annotations

from pathlib import Path

from kdteach import nbtools as nbt

OUT = Path(__file__).resolve().parents[1] / "01_response" / "tfkd.ipynb"

nb = nbt.new_notebook({"id": "tfkd", "paper": "Revisiting Knowledge Distillation via Label Smoothing Regularization",
                       "venue": "CVPR 2020", "part": "01_response"})

# ---------------------------------------------------------------------------------------------- 0
nbt.add_prose(nb, r"""
    # Revisiting Knowledge Distillation via Label Smoothing Regularization

    **Paper.** Li Yuan, Francis E. H. Tay, Guilin Li, Tao Wang, Jiashi Feng. *Revisiting Knowledge
    Distillation via Label Smoothing Regularization.* CVPR 2020; arXiv:1909.11723 (first titled
    *Revisit Knowledge Distillation: a Teacher-free Framework*). <https://arxiv.org/abs/1909.11723>.
    The authors' code: <https://github.com/yuanli2333/Teacher-free-Knowledge-Distillation>.

    **The idea in one sentence.** KD is a learned label smoothing and label smoothing is KD from a
    virtual teacher, so a student can be distilled without a better teacher: from a pre-trained copy
    of itself (Tf-KD self) or a hand-made distribution (Tf-KD reg).

    **Run time** (whole notebook, after `kdteach zoo warm` has cached the teacher, students alone and KD
    students):

    | budget | what runs | time |
    |---|---|---|
    | `ci` | CIFAR-10 subset at 16x16, `tiny_student`; Tf-KD reg on 2 seeds, Tf-KD self on the first | under a minute on 2 CPU cores |
    | `quick` | 10k CIFAR-10 images at 32x32, same network | a few minutes on a laptop CPU |
    | `gpu` | all of CIFAR-100, `resnet8x4`, 60 epochs, 3 seeds | minutes on one GPU |
    | `paper` | the CRD benchmark recipe (240 epochs, CIFAR-100) | hours on a GPU |

    Choose the budget with `KDTEACH_BUDGET` before starting the kernel.
""", r"""
    # 通过标签平滑正则化重新审视知识蒸馏

    **论文。** Li Yuan、Francis E. H. Tay、Guilin Li、Tao Wang、Jiashi Feng，*Revisiting Knowledge
    Distillation via Label Smoothing Regularization*，CVPR 2020；arXiv:1909.11723（最初题为
    *Revisit Knowledge Distillation: a Teacher-free Framework*）。<https://arxiv.org/abs/1909.11723>。
    作者的代码：<https://github.com/yuanli2333/Teacher-free-Knowledge-Distillation>。

    **一句话概括。** KD 是一种学习得到的标签平滑（label smoothing），而标签平滑是来自虚拟教师的 KD；
    因此学生不需要更好的教师也能被蒸馏：可以向预先训练好的自己学习（Tf-KD self），也可以向人工设计的
    分布学习（Tf-KD reg）。

    **运行时间**（整本笔记；`kdteach zoo warm` 已缓存教师、单独训练的学生和 KD 学生）：

    | 计算预算 | 运行内容 | 时间 |
    |---|---|---|
    | `ci` | CIFAR-10 子集，16x16，`tiny_student`；Tf-KD reg 用 2 个随机种子，Tf-KD self 只用第一个 | 2 核 CPU 上不到一分钟 |
    | `quick` | 1 万张 32x32 的 CIFAR-10 图像，同一网络 | 笔记本电脑 CPU 上几分钟 |
    | `gpu` | 完整 CIFAR-100，`resnet8x4`，60 轮，3 个随机种子 | 单张 GPU 上几分钟 |
    | `paper` | CRD 基准训练方案（240 轮，CIFAR-100） | GPU 上数小时 |

    启动内核前用 `KDTEACH_BUDGET` 选择计算预算。
""")

nbt.add_code(nb, """
    %matplotlib inline
    # (kdteach.viz returns matplotlib Figure objects; the line above makes Jupyter draw them inline)
    import math
    import warnings

    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from kdteach import data, results, zoo
    from kdteach.analysis import prediction_entropy, virtual_teacher_kl
    from kdteach.losses import (kd_loss, matched_epsilon, smoothed_targets, softened_probs, tfkd_reg_loss,
                                virtual_teacher_probs, virtual_teacher_target)
    from kdteach.methods import LossContext, get_method
    from kdteach.methods.tfkd import AUTHORS_CIFAR100, class_rescaled
    from kdteach.train import Mechanism, budget_splits, distill, get_budget, run_experiment, train_model
    from kdteach.viz import plot_target_distributions
    from kdteach.widgets import VirtualTeacherExplorer, results_dashboard

    budget = get_budget()                                # from KDTEACH_BUDGET: ci, quick, gpu or paper
    seeds = budget.seeds
    reg_defaults = dict(get_method("tfkd_reg").hparams)  # the authors' CIFAR-100 ResNet18 params.json files
    self_defaults = dict(get_method("tfkd_self").hparams)
    A_REG, T_REG = reg_defaults["correct_prob"], reg_defaults["temperature"]
    print(f"budget {budget.name}: {budget.dataset} at {budget.resolution}x{budget.resolution}, student "
          f"{budget.student}, {budget.epochs} epochs, seeds {seeds}")
    print("tfkd_reg defaults: ", reg_defaults)
    print("tfkd_self defaults:", self_defaults)
""")

# ---------------------------------------------------------------------------------------------- 1
nbt.add_prose(nb, r"""
    ## 1. The question

    Why does KD work? The usual answer is *dark knowledge*: the teacher's wrong-class probabilities say
    which classes look alike (see the [KD notebook](kd.ipynb)). Then only a teacher better than the
    student should help. Yuan et al. test two cases where it should not:

    - **Reversed KD (Re-KD):** the small student, trained alone, teaches the large teacher.
    - **Defective KD (De-KD):** a barely trained teacher, far *worse* than the student (a ResNet18 after
      one epoch, 15.48% on CIFAR-100), teaches it.

    Both still improve the student significantly in the paper's experiments, so soft targets do more
    than transfer class similarities. The paper's answer is **label smoothing** (LS): the KD loss is the
    LS loss with the teacher's distribution in place of the uniform one (section 2), so any teacher
    regularises the student as LS does.

    Hence **teacher-free KD**: *Tf-KD self* takes a pre-trained copy of the student as teacher, *Tf-KD
    reg* a hand-made "virtual teacher" that is right on every image.

    **In the taxonomy.** *Response-based* knowledge; Tf-KD self is *self-distillation* (close to
    born-again networks); Tf-KD reg needs no teacher network.
""", r"""
    ## 1. 问题

    KD 为什么有效？通常的回答是*暗知识*：教师给错误类别的概率说明了哪些类别彼此相像（见 [KD 笔记](kd.ipynb)）。
    那么只有比学生更好的教师才会有帮助。Yuan 等人检验了两种按此不该有帮助的情形：

    - **反向 KD（Re-KD）：** 单独训练的小学生去教大教师。
    - **缺陷 KD（De-KD）：** 几乎没训练的教师，远*不如*学生（训练一轮的 ResNet18，在 CIFAR-100 上
      15.48%），由它来教学生。

    在论文的实验中，两种情形都仍然显著提升了学生，所以软目标（soft targets）做的不只是传递类别相似性。论文的
    回答是**标签平滑**（LS）：KD 损失就是把 LS 损失中的均匀分布换成教师分布（第 2 节），所以任何教师都像 LS 一样
    对学生起正则化作用。

    由此得到**无教师 KD**（teacher-free KD）：*Tf-KD self* 用预先训练好的学生副本当教师；*Tf-KD reg* 用
    人工设计、在每张图片上都正确的“虚拟教师”。

    **在分类体系中的位置。** *基于响应的知识*；Tf-KD self 属于*自蒸馏*（与再生网络很接近）；Tf-KD reg
    不需要教师网络。
""")

# ---------------------------------------------------------------------------------------------- 2
nbt.add_prose(nb, r"""
    ## 2. The knowledge and the loss

    For one image with one-hot label $q$ over $K$ classes and student prediction $p$, write
    $H(a, b) = -\sum_k a_k \log b_k$ (cross-entropy), $H(a) = H(a, a)$ (entropy) and $u = 1/K$
    (uniform).

    **Label smoothing and KD side by side.** LS trains on $q' = (1 - \alpha)\,q + \alpha\,u$; KD on
    the label and the teacher's softened output $p^t_\tau = \mathrm{softmax}(z_t / \tau)$:

    $$H(q', p) = (1 - \alpha)\,H(q, p) + \alpha\,\big[\mathrm{KL}(u \,\|\, p) + H(u)\big],
    \qquad
    \mathcal{L}_{\mathrm{KD}} = (1 - \alpha)\,H(q, p) + \alpha\,\mathrm{KL}(p^t_\tau \,\|\, p_\tau).$$

    Dropping the constant $\alpha H(u) = \alpha \log K$ gives
    $\mathcal{L}_{\mathrm{LS}} = (1 - \alpha)\,H(q, p) + \alpha\,\mathrm{KL}(u \,\|\, p)$: **LS is KD
    with a uniform teacher at $\tau = 1$**, exactly, and $H(q', p) = \mathcal{L}_{\mathrm{LS}} +
    \alpha \log K$. Conversely, at $\tau = 1$, $\mathcal{L}_{\mathrm{KD}} + \alpha H(p^t) =
    H\big((1 - \alpha)\,q + \alpha\,p^t,\; p\big)$: **KD is LS with a learned smoothing distribution**
    $p^t$ in place of $u$. As $\tau$ grows, $p^t_\tau$ itself tends to $u$.

    **Tf-KD.** Both keep KD's form. Tf-KD self takes $p^t$ from a pre-trained copy of the student;
    Tf-KD reg uses the *virtual teacher*

    $$p^d(k) = \begin{cases} a & k = c \\ (1 - a)/(K - 1) & k \ne c \end{cases}
    \qquad
    \mathcal{L}_{\mathrm{reg}} = (1 - \alpha)\,H(q, p) + \alpha\,\mathrm{KL}(p^d_\tau \,\|\, p_\tau),$$

    with $c$ the label and $a = 0.99$: right on every image, with no opinion about the wrong classes.

    **What the authors' code computes.** Its target is $r = \mathrm{softmax}(p^d / \tau)$, a softmax of
    *probabilities* (not a softened teacher), against the unsoftened student, and its `nn.KLDivLoss()`
    also averages over the $K$ classes:

    $$\mathcal{L}^{\mathrm{code}}_{\mathrm{reg}} = (1 - \alpha)\,H(q, p)
      + \frac{\alpha\, m}{K}\,\mathrm{KL}\big(\mathrm{softmax}(p^d / \tau) \,\|\, p\big) .$$

    Since $p^d / \tau$ spans at most $1/\tau$, $r$ is nearly uniform (section 3). kdteach follows the
    code. Its Tf-KD self term is $\frac{\alpha m}{K}\,\tau^2\,\mathrm{KL}(p^t_\tau \,\|\, p_\tau)$,
    KD with the same $1/K$.

    | symbol | meaning | code |
    |---|---|---|
    | $q$, $c$ | one-hot label, its class | `y` (class indices) |
    | $p$, $p_\tau$ | student's $\mathrm{softmax}(z_s)$, $\mathrm{softmax}(z_s / \tau)$ | `softened_probs(z_s, T)` |
    | $u$, $q'$ | uniform distribution, LS target $(1-\alpha) q + \alpha u$ | `smoothed_targets(y, K, eps)` |
    | $p^t_\tau$ | teacher's softened output | `softened_probs(z_t, T)` |
    | $p^d$, $a$ | virtual teacher, its correct-class probability | `virtual_teacher_probs(y, K, a)`, `correct_prob` |
    | $r = \mathrm{softmax}(p^d/\tau)$ | the code's target | `virtual_teacher_target(y, K, a, T)` |
    | $\mathrm{KL}(r \,\|\, p)$ per image, batch mean | the code's regulariser, unweighted | `tfkd_reg_loss(z_s, y, a, T)` |
    | $\alpha$, $\tau$, $m$ | weight, temperature, the authors' multiplier | `alpha`, `temperature`, `multiplier` |
    | $K$ | number of classes | `K` |
""", r"""
    ## 2. 知识与损失

    对一张图片，设 $K$ 个类别上的 one-hot 标签为 $q$，学生预测为 $p$；记交叉熵为
    $H(a, b) = -\sum_k a_k \log b_k$，熵为 $H(a) = H(a, a)$，均匀分布为 $u = 1/K$。

    **标签平滑与 KD 并排对比。** LS 在 $q' = (1 - \alpha)\,q + \alpha\,u$ 上训练；KD 在标签和教师的软化输出
    $p^t_\tau = \mathrm{softmax}(z_t / \tau)$ 上训练：

    $$H(q', p) = (1 - \alpha)\,H(q, p) + \alpha\,\big[\mathrm{KL}(u \,\|\, p) + H(u)\big],
    \qquad
    \mathcal{L}_{\mathrm{KD}} = (1 - \alpha)\,H(q, p) + \alpha\,\mathrm{KL}(p^t_\tau \,\|\, p_\tau).$$

    去掉常数 $\alpha H(u) = \alpha \log K$ 得到
    $\mathcal{L}_{\mathrm{LS}} = (1 - \alpha)\,H(q, p) + \alpha\,\mathrm{KL}(u \,\|\, p)$：**LS 恰好就是
    $\tau = 1$ 时以均匀分布为教师的 KD**，并且 $H(q', p) = \mathcal{L}_{\mathrm{LS}} + \alpha \log K$。反过来，
    在 $\tau = 1$ 时 $\mathcal{L}_{\mathrm{KD}} + \alpha H(p^t) = H\big((1 - \alpha)\,q + \alpha\,p^t,\; p\big)$：
    **KD 是用学习得到的平滑分布** $p^t$ 代替 $u$ 的 LS。随着 $\tau$ 增大，$p^t_\tau$ 本身也趋于 $u$。

    **Tf-KD。** 两者都保留 KD 的形式。Tf-KD self 的 $p^t$ 来自预先训练好的学生副本；Tf-KD reg 使用*虚拟教师*：

    $$p^d(k) = \begin{cases} a & k = c \\ (1 - a)/(K - 1) & k \ne c \end{cases}
    \qquad
    \mathcal{L}_{\mathrm{reg}} = (1 - \alpha)\,H(q, p) + \alpha\,\mathrm{KL}(p^d_\tau \,\|\, p_\tau),$$

    其中 $c$ 是标签、$a = 0.99$：在每张图片上都正确，对错误类别没有任何偏好。

    **作者代码实际计算的内容。** 它的目标是 $r = \mathrm{softmax}(p^d / \tau)$，即对*概率*做 softmax（而不是
    软化后的教师），并与未软化的学生比较；它的 `nn.KLDivLoss()` 还对 $K$ 个类别取平均：

    $$\mathcal{L}^{\mathrm{code}}_{\mathrm{reg}} = (1 - \alpha)\,H(q, p)
      + \frac{\alpha\, m}{K}\,\mathrm{KL}\big(\mathrm{softmax}(p^d / \tau) \,\|\, p\big) .$$

    由于 $p^d / \tau$ 的取值范围至多为 $1/\tau$，$r$ 几乎是均匀分布（第 3 节）。kdteach 遵循代码。它的
    Tf-KD self 项是 $\frac{\alpha m}{K}\,\tau^2\,\mathrm{KL}(p^t_\tau \,\|\, p_\tau)$，即带同样 $1/K$ 的 KD。

    | 符号 | 含义 | 代码 |
    |---|---|---|
    | $q$, $c$ | one-hot 标签及其类别 | `y`（类别索引） |
    | $p$, $p_\tau$ | 学生的 $\mathrm{softmax}(z_s)$、$\mathrm{softmax}(z_s / \tau)$ | `softened_probs(z_s, T)` |
    | $u$, $q'$ | 均匀分布、LS 目标 $(1-\alpha) q + \alpha u$ | `smoothed_targets(y, K, eps)` |
    | $p^t_\tau$ | 教师的软化输出 | `softened_probs(z_t, T)` |
    | $p^d$, $a$ | 虚拟教师及其正确类概率 | `virtual_teacher_probs(y, K, a)`、`correct_prob` |
    | $r = \mathrm{softmax}(p^d/\tau)$ | 代码中的目标 | `virtual_teacher_target(y, K, a, T)` |
    | 每张图片的 $\mathrm{KL}(r \,\|\, p)$，批次平均 | 代码中的正则项（未加权） | `tfkd_reg_loss(z_s, y, a, T)` |
    | $\alpha$, $\tau$, $m$ | 权重、温度、作者的乘数 | `alpha`、`temperature`、`multiplier` |
    | $K$ | 类别数 | `K` |
""")

nbt.add_prose(nb, r"""
    ### Deeper: the paper and the authors' code, line by line

    kdteach's `tfkd_reg_loss` and the methods `tfkd_self`, `tfkd_reg` follow the authors'
    `my_loss_function.py` and `params.json` files; each difference from the paper's equations:

    1. **The virtual teacher's softening.** The paper writes $p^d_\tau$; `loss_kd_regularization`
       computes `F.softmax(teacher_soft / T)` where `teacher_soft` is $p^d$ itself. Reading $p^d$ as a
       teacher with logits $\log p^d$ would give $\mathrm{softmax}(\log p^d / \tau)$ instead, which is
       $p^d$ at $\tau = 1$; section 3 compares the two.
    2. **The student is not softened** in the code's Tf-KD reg term (`F.log_softmax(outputs)`), and
       there is no $\tau^2$.
    3. **The reduction.** `nn.KLDivLoss()` defaults to `reduction='mean'`: the element-wise KL summed
       over the $B \cdot K$ entries and divided by $B \cdot K$, i.e. the per-image KL divided by $K$. The
       code then multiplies by `params.multiplier` (ResNet18: 100 for Tf-KD reg, 50 for Tf-KD self;
       MobileNetV2: 1). The same holds for the authors' KD and Tf-KD self terms.
    4. **The weights** are per network (`kdteach.methods.tfkd.AUTHORS_CIFAR100`); kdteach's defaults are
       ResNet18's. The correct-class probability $a = 0.99$ is hard-coded.
    5. **Their LS baseline** (`loss_label_smoothing`) puts $\varepsilon/(K-1)$ on each wrong class and
       $1 - \varepsilon$ on the label, not the paper's $q' = (1-\varepsilon) q + \varepsilon u$; with
       $a = 1 - \varepsilon$ that is exactly $p^d$ (tested in `tests/test_losses_tfkd.py`).
    6. **The schedule**: 200 epochs, learning rate $\times 0.2$ at epochs 60, 120, 160, a warm-up over
       the first epoch, one fixed seed (230) for every run; kdteach uses its budgets' schedules.
""", r"""
    ### 深入：论文与作者代码的逐条对照

    kdteach 的 `tfkd_reg_loss` 以及方法 `tfkd_self`、`tfkd_reg` 遵循作者的 `my_loss_function.py` 和
    `params.json` 文件；与论文公式的每一处不同如下：

    1. **虚拟教师的软化。** 论文写作 $p^d_\tau$；`loss_kd_regularization` 计算的是 `F.softmax(teacher_soft / T)`，
       其中 `teacher_soft` 就是 $p^d$ 本身。若把 $p^d$ 看作 logits 为 $\log p^d$ 的教师，得到的将是
       $\mathrm{softmax}(\log p^d / \tau)$，它在 $\tau = 1$ 时就是 $p^d$；第 3 节比较了两者。
    2. 代码的 Tf-KD reg 项中**学生没有被软化**（`F.log_softmax(outputs)`），也没有 $\tau^2$。
    3. **归约方式。** `nn.KLDivLoss()` 默认 `reduction='mean'`：逐元素的 KL 在 $B \cdot K$ 个元素上求和再除以
       $B \cdot K$，也就是每张图片的 KL 再除以 $K$。代码随后乘以 `params.multiplier`（ResNet18：Tf-KD reg 为 100，
       Tf-KD self 为 50；MobileNetV2：1）。作者的 KD 项和 Tf-KD self 项也是如此。
    4. **权重**随网络而不同（`kdteach.methods.tfkd.AUTHORS_CIFAR100`）；kdteach 的默认值取 ResNet18 的。
       正确类概率 $a = 0.99$ 是写死在代码里的。
    5. **他们的 LS 基线**（`loss_label_smoothing`）在每个错误类上放 $\varepsilon/(K-1)$、在标签上放
       $1 - \varepsilon$，而不是论文的 $q' = (1-\varepsilon) q + \varepsilon u$；取 $a = 1 - \varepsilon$ 时它恰好就是
       $p^d$（在 `tests/test_losses_tfkd.py` 中有测试）。
    6. **训练日程**：200 轮，学习率在第 60、120、160 轮乘以 $0.2$，第一轮预热，所有运行都用同一个固定随机种子
       （230）；kdteach 使用自己计算预算的日程。
""")

# ---------------------------------------------------------------------------------------------- 3
nbt.add_prose(nb, r"""
    ## 3. From scratch

    A fixed tiny example: $B = 4$ images, $K = 10$ classes, seeded student and teacher logits and
    labels; the numbers are the same on every machine.

    **Step 1: LS by hand, and the identity with KD.** We build $q'$ and its cross-entropy, checked
    against PyTorch's `label_smoothing`, then KD from a *uniform* teacher (all-zero logits) at
    $\tau = 1$ with `kd_loss`. The two differ by exactly $\alpha \log K$.
""", r"""
    ## 3. 从零实现

    一个固定的小例子：$B = 4$ 张图片、$K = 10$ 个类别，随机种子固定的学生 logits、教师 logits 和标签。
    在任何机器上数字都相同。

    **第 1 步：手算 LS，以及它与 KD 的恒等式。** 我们构造 $q'$ 和它的交叉熵，并与 PyTorch 的 `label_smoothing`
    核对；然后用 `kd_loss` 计算 $\tau = 1$ 时以*均匀*教师（logits 全为零）的 KD。两者恰好相差 $\alpha \log K$。
""")

nbt.add_code(nb, """
    # NBVAL_CHECK_OUTPUT
    g = torch.Generator().manual_seed(0)
    B, K, alpha = 4, 10, 0.1
    z_s = 2.0 * torch.randn(B, K, generator=g)          # student logits (B, K)
    z_t = 3.0 * torch.randn(B, K, generator=g)          # a teacher's logits (B, K)
    y = torch.tensor([3, 0, 7, 3])                      # labels (B,)

    q = F.one_hot(y, K).float()                         # one-hot labels (B, K)
    u = torch.full((B, K), 1.0 / K)                     # uniform distribution
    log_p = torch.log_softmax(z_s, dim=1)
    ls = -(((1 - alpha) * q + alpha * u) * log_p).sum(1).mean()        # H(q', p), batch mean
    assert torch.allclose(ls, F.cross_entropy(z_s, y, label_smoothing=alpha))

    kd_uniform = (1 - alpha) * F.cross_entropy(z_s, y) + alpha * kd_loss(z_s, torch.zeros(B, K), temperature=1.0)
    print(f"LS, H(q', p)                      = {ls.item():.6f}")
    print(f"KD from a uniform teacher, T = 1  = {kd_uniform.item():.6f}")
    print(f"difference = {(ls - kd_uniform).item():.6f};  alpha log K = {alpha * math.log(K):.6f}")
    assert abs((ls - kd_uniform).item() - alpha * math.log(K)) < 1e-5
""", check_output=True)

nbt.add_prose(nb, r"""
    **Step 2: KD at $\tau = 1$ is LS with a learned target.** Adding the teacher's entropy
    $\alpha H(p^t)$ to the KD loss gives the cross-entropy with the smoothed label
    $(1 - \alpha)\,q + \alpha\,p^t$.
""", r"""
    **第 2 步：$\tau = 1$ 时的 KD 是目标经过学习的 LS。** 给 KD 损失加上教师的熵 $\alpha H(p^t)$，就得到与平滑
    标签 $(1 - \alpha)\,q + \alpha\,p^t$ 的交叉熵。
""")

nbt.add_code(nb, """
    # NBVAL_CHECK_OUTPUT
    p_t = softened_probs(z_t, 1.0)
    kd_t1 = (1 - alpha) * F.cross_entropy(z_s, y) + alpha * kd_loss(z_s, z_t, temperature=1.0)
    teacher_entropy = -(p_t * p_t.log()).sum(1).mean()
    learned_ls = -(((1 - alpha) * q + alpha * p_t) * log_p).sum(1).mean()
    print(f"KD at T = 1 + alpha H(p_t)            = {(kd_t1 + alpha * teacher_entropy).item():.6f}")
    print(f"H((1 - alpha) q + alpha p_t, p)       = {learned_ls.item():.6f}")
    assert torch.allclose(kd_t1 + alpha * teacher_entropy, learned_ls)
""", check_output=True)

nbt.add_prose(nb, r"""
    **Step 3: the virtual teacher, and what the code makes of it.** $p^d$ by hand, then the code's
    target $r = \mathrm{softmax}(p^d / \tau)$ at the authors' $a = 0.99$, $\tau = 20$, and the reading
    $\mathrm{softmax}(\log p^d / \tau)$. Since $p^d/\tau \in [0, 1/\tau]$, the label gets at most
    $e^{1/\tau} / (e^{1/\tau} + K - 1)$ under $r$, whatever $a$ is.
""", r"""
    **第 3 步：虚拟教师，以及代码把它变成了什么。** 先手算 $p^d$，再计算作者取 $a = 0.99$、$\tau = 20$ 时代码的
    目标 $r = \mathrm{softmax}(p^d / \tau)$，以及另一种读法 $\mathrm{softmax}(\log p^d / \tau)$。由于
    $p^d/\tau \in [0, 1/\tau]$，无论 $a$ 取多少，$r$ 给标签的概率至多为 $e^{1/\tau} / (e^{1/\tau} + K - 1)$。
""")

nbt.add_code(nb, """
    # NBVAL_CHECK_OUTPUT
    a, T = A_REG, T_REG                                  # 0.99 and 20: the authors' ResNet18 setting
    p_d = torch.full((B, K), (1 - a) / (K - 1)).scatter(1, y[:, None], a)         # virtual teacher (B, K)
    assert torch.allclose(p_d, virtual_teacher_probs(y, K, a))
    r = torch.exp(p_d / T) / torch.exp(p_d / T).sum(1, keepdim=True)            # the code's target
    assert torch.allclose(r, virtual_teacher_target(y, K, a, T))
    as_logits = softened_probs(p_d.log(), T)                                     # p^d read as a teacher's logits

    show = lambda name, row: print(f"{name:<22}", " ".join(f"{v:.4f}" for v in row.tolist()))
    show("p^d (label 3)", p_d[0])
    show("softmax(p^d / T)", r[0])
    show("softmax(log p^d / T)", as_logits[0])
    bound = math.exp(1 / T) / (math.exp(1 / T) + K - 1)
    print(f"most the code's target can give the label at T = {T:g}: {bound:.4f} (uniform: {1 / K:.4f})")
    assert r[0, 3] <= bound + 1e-7
""", check_output=True)

nbt.add_prose(nb, r"""
    ### Deeper: the code's reduction, and its Tf-KD reg as label smoothing

    **Step 4: the code's reduction.** `nn.KLDivLoss()` by default divides by $B \cdot K$ (PyTorch
    warns). `tfkd_reg_loss` returns the batch mean of the per-image KL, $K$ times larger; the method's
    weight $\alpha m / K$ restores the $1/K$.
""", r"""
    ### 深入：代码的归约方式，以及作为标签平滑的 Tf-KD reg

    **第 4 步：代码的归约方式。** `nn.KLDivLoss()` 默认除以 $B \cdot K$（PyTorch 会发出警告）。
    `tfkd_reg_loss` 返回每张图片的 KL 在批次上的平均，大 $K$ 倍；方法的权重 $\alpha m / K$ 把 $1/K$ 补回来。
""")

nbt.add_code(nb, """
    # NBVAL_CHECK_OUTPUT
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        theirs = nn.KLDivLoss()(F.log_softmax(z_s, dim=1), r)                  # the authors' line
    print("PyTorch:", str(caught[0].message).split(".")[0] + ".")
    kl_per_image = (r * (r.log() - log_p)).sum(1)                                # KL(r || p), (B,)
    mine = tfkd_reg_loss(z_s, y, a, T)
    assert torch.allclose(mine, kl_per_image.mean()) and torch.allclose(mine, K * theirs)
    print(f"nn.KLDivLoss() = {theirs.item():.6f};  tfkd_reg_loss = {mine.item():.6f} = K x {theirs.item():.6f}")
""", check_output=True)

nbt.add_prose(nb, r"""
    **Step 5: the code's Tf-KD reg is label smoothing, exactly.** Cross-entropy is linear in its
    target, so $(1 - \alpha) H(q, p) + w\,\mathrm{KL}(r \,\|\, p) = s\,H(q_{\mathrm{eff}}, p) - w H(r)$ with
    $w = \alpha m / K$, $s = 1 - \alpha + w$ and $q_{\mathrm{eff}} = ((1 - \alpha)\,q + w\,r)/s$. Both
    $q$ and $r$ are equal on all wrong classes, so $q_{\mathrm{eff}}$ is an LS target with some
    $\varepsilon$ (`matched_epsilon`). We check it on the method's own loss terms, in section 5's ci
    setting ($m$ rescaled to $K = 10$).
""", r"""
    **第 5 步：代码中的 Tf-KD reg 恰好就是标签平滑。** 交叉熵对其目标是线性的，所以
    $(1 - \alpha) H(q, p) + w\,\mathrm{KL}(r \,\|\, p) = s\,H(q_{\mathrm{eff}}, p) - w H(r)$，其中 $w = \alpha m / K$、
    $s = 1 - \alpha + w$、$q_{\mathrm{eff}} = ((1 - \alpha)\,q + w\,r)/s$。$q$ 和 $r$ 在所有错误类上都相等，所以
    $q_{\mathrm{eff}}$ 是某个 $\varepsilon$ 的 LS 目标（`matched_epsilon`）。我们用方法自己的损失项来检验，取第 5 节
    的 ci 设置（$m$ 按 $K = 10$ 重新缩放）。
""")

nbt.add_code(nb, """
    # NBVAL_CHECK_OUTPUT
    reg = get_method("tfkd_reg", multiplier=class_rescaled(reg_defaults["multiplier"], K))   # 100 -> 10 at K = 10
    ctx = LossContext(x=torch.zeros(B, 3, 16, 16), y=y, student_logits=z_s, teacher_logits=None,
                      student_features={}, teacher_features={}, extras=nn.ModuleDict(), hparams=reg.hparams)
    terms = reg.loss(ctx)                                                        # {"ce": ..., "reg": ...}
    h = reg.hparams
    w = h["alpha"] * h["multiplier"] / K
    s = 1 - h["alpha"] + w
    q_eff = ((1 - h["alpha"]) * q + w * r) / s
    eps = matched_epsilon(q_eff, y)
    assert torch.allclose(q_eff, smoothed_targets(y, K, eps), atol=1e-6)         # an LS target, exactly
    equivalent = s * F.cross_entropy(z_s, y, label_smoothing=eps) - w * (-(r * r.log()).sum(1).mean())
    print("terms:", {k: round(v.item(), 4) for k, v in terms.items()}, f"sum = {sum(terms.values()).item():.6f}")
    print(f"= {s:.3f} x LS(epsilon = {eps:.4f}) - {w:.3f} H(r) = {equivalent.item():.6f}")
    assert torch.allclose(sum(terms.values()), equivalent, atol=1e-6)
""", check_output=True)

nbt.add_prose(nb, r"""
    Bad input fails early with a message naming the argument:
""", r"""
    错误的输入会尽早失败，报错信息会指出是哪个参数：
""")

nbt.add_code(nb, """
    for bad in (lambda: tfkd_reg_loss(z_s, y + 7), lambda: virtual_teacher_probs(y, K, correct_prob=1.5)):
        try:
            bad()
        except ValueError as e:
            print(e)
""")

nbt.add_prose(nb, r"""
    ### Deeper: the authors' settings, read as label smoothing

    Step 5 holds for any $a$, $\tau$, $\alpha$ and $m$, so every `params.json` of the authors' Tf-KD
    reg is a label smoothing $\varepsilon$ times a loss scale $s$ (which, with SGD, acts like a
    learning-rate factor, weight decay aside). On CIFAR-100 ($K = 100$):
""", r"""
    ### 深入：把作者的设置读作标签平滑

    第 5 步对任意 $a$、$\tau$、$\alpha$ 和 $m$ 都成立，所以作者 Tf-KD reg 的每个 `params.json` 都是某个标签平滑
    $\varepsilon$ 乘以损失缩放 $s$（对 SGD 而言，除权重衰减外，相当于学习率的一个因子）。在 CIFAR-100（$K = 100$）上：
""")

nbt.add_code(nb, """
    def as_label_smoothing(alpha, multiplier, temperature, k, correct_prob=0.99):
        \"\"\"(epsilon, loss scale s) of the code's Tf-KD reg loss on a k-class problem (step 5).\"\"\"
        c = torch.tensor([0])
        w_ = alpha * multiplier / k
        s_ = 1 - alpha + w_
        q_ = ((1 - alpha) * F.one_hot(c, k) + w_ * virtual_teacher_target(c, k, correct_prob, temperature)) / s_
        return matched_epsilon(q_, c), s_


    rows = [{"setting": f"authors' {name}", **p["reg"], "K": 100,
             **dict(zip(("epsilon", "scale s"), as_label_smoothing(**p["reg"], k=100)))}
            for name, p in AUTHORS_CIFAR100.items() if "reg" in p]
    for label, mult in (("ResNet18's, rescaled to K = 10", class_rescaled(reg_defaults["multiplier"], K)),
                        ("ResNet18's, unscaled, K = 10", reg_defaults["multiplier"])):
        hp = {"alpha": reg_defaults["alpha"], "temperature": T_REG, "multiplier": mult}
        rows.append({"setting": label, **hp, "K": K, **dict(zip(("epsilon", "scale s"), as_label_smoothing(**hp, k=K)))})
    print(results.format_table(rows, digits=4))
""")

nbt.add_prose(nb, r"""
    ResNet18's setting is LS with $\varepsilon \approx 0.1$ at scale 1, the usual label smoothing. The
    MobileNetV2 and ShuffleNetV2 settings are LS with $\varepsilon \approx 0.16$ and the whole loss
    scaled by 0.06. The same numbers on a 10-class problem would weight the term ten times more
    ($\varepsilon \approx 0.5$), which is why the ci runs rescale $m$.
""", r"""
    ResNet18 的设置就是 $\varepsilon \approx 0.1$、缩放为 1 的 LS，即常用的标签平滑。MobileNetV2 和 ShuffleNetV2
    的设置是 $\varepsilon \approx 0.16$ 的 LS，且整个损失乘以 0.06。同样的数字用在 10 类问题上会让这一项的权重大十倍
    （$\varepsilon \approx 0.5$），这就是 ci 运行要重新缩放 $m$ 的原因。
""")

# ---------------------------------------------------------------------------------------------- 4
nbt.add_prose(nb, r"""
    ## 4. Seeing the knowledge

    **What each teacher asks the student to match.** Three real teachers: the cached teacher; the
    student alone (Re-KD's and Tf-KD self's teacher); De-KD's teacher, the teacher's architecture after
    one epoch (as the authors' ResNet18).
""", r"""
    ## 4. 看见知识

    **每位教师要求学生匹配什么。** 三位真实教师：缓存的教师；单独训练的学生（Re-KD 和 Tf-KD self 的教师）；De-KD 的
    教师，即只训练一轮的教师网络结构（对应作者只训练一轮的 ResNet18）。
""")

nbt.add_code(nb, """
    teacher = zoo.teacher(budget=budget, progress=False, verbose=False)
    device = next(teacher.parameters()).device
    test_split = budget_splits(budget)[1]
    class_names = list(test_split.class_names)
    num_classes = len(class_names)
    x_test, y_test = data.normalize(test_split.images, budget.dataset), test_split.labels
    alone = {s: zoo.student_baseline(budget=budget, seed=s, progress=False, verbose=False) for s in seeds}
    # De-KD's teacher: the budget's teacher architecture after one epoch (not cached: about 1 s at ci)
    defective = train_model(budget.teacher, budget=budget, role="teacher", epochs=1, seed=0, record=False,
                            progress=False)
    teachers = {"teacher": (teacher, teacher.kd_record["last_acc"]),
                "student alone": (alone[seeds[0]][0], alone[seeds[0]][1]["last_acc"]),
                "1-epoch teacher": (defective.student, defective.record["last_acc"])}
    for name, (model, acc) in teachers.items():
        print(f"{name:<16} {budget.teacher if name != 'student alone' else budget.student:<13} "
              f"last-epoch test accuracy {acc:.2f}%")
    assert teachers["1-epoch teacher"][1] < teachers["student alone"][1]     # De-KD: a worse teacher
""")

nbt.add_prose(nb, r"""
    One test image (a cat), each target at $\tau = 1$ and at the authors' $\tau = 20$: label smoothing
    with $\varepsilon = 0.1$ (no temperature), the code's virtual teacher $r$, $p^d$ read as logits,
    and the three teachers' $\mathrm{softmax}(z / \tau)$. All bars share one probability scale; the
    label is in bold.
""", r"""
    取一张测试图片（猫），在 $\tau = 1$ 和作者的 $\tau = 20$ 下比较各个目标：$\varepsilon = 0.1$ 的标签平滑（没有温度）、代码中的
    虚拟教师 $r$、把 $p^d$ 当作 logits 的读法，以及三位教师的 $\mathrm{softmax}(z / \tau)$。所有柱子共用同一个概率
    刻度；标签用粗体标出。
""")

nbt.add_code(nb, """
    x_ex, y_ex = data.example_batch(n=num_classes, dataset=budget.dataset, resolution=budget.resolution,
                                    device=device)             # one test image per class, in class order
    y_ex = y_ex.cpu()
    with torch.no_grad():
        z_ex = {name: model.eval()(x_ex).float().cpu() for name, (model, _) in teachers.items()}
    i, temps = 3, (1.0, T_REG)                                 # image 3: a cat on CIFAR-10
    yi = y_ex[i:i + 1]
    p_d_i = virtual_teacher_probs(yi, num_classes, A_REG)
    targets = {"label smoothing, eps = 0.1": smoothed_targets(yi, num_classes, 0.1).expand(len(temps), -1),
               "code: softmax(p^d / T)": torch.cat([virtual_teacher_target(yi, num_classes, A_REG, t) for t in temps]),
               "softmax(log p^d / T)": torch.cat([softened_probs(p_d_i.log(), t) for t in temps]),
               **{name: torch.cat([softened_probs(z[i:i + 1], t) for t in temps]) for name, z in z_ex.items()}}
    fig = plot_target_distributions(targets, class_names, labels=[int(yi)] * len(temps),
                                    row_titles=[f"T = {t:g}" for t in temps],
                                    title=f"Targets for one test image (label: {class_names[int(yi)]})")
    legend = fig.axes[0].get_legend()                          # one legend under the panels, off the bars
    fig.legend(legend.legend_handles, [t.get_text() for t in legend.get_texts()], loc="outside lower center",
               ncol=3, fontsize=8)
    legend.remove()
    fig.set_size_inches(9, 5.4)
    fig.set_dpi(80)
    fig
""")

nbt.add_prose(nb, r"""
    **Reading it.** At $\tau = 1$ the three teachers differ; at $\tau = 20$ they all look alike and
    close to uniform. That is the paper's explanation of Re-KD and De-KD: at KD's temperatures, much of
    what any teacher gives is a smoothing of the label. The code's virtual teacher puts
    about $1/K$ on the label at either temperature: a near-uniform smoothing, not a confident teacher.
""", r"""
    **解读。** 在 $\tau = 1$ 时三位教师各不相同；在 $\tau = 20$ 时它们彼此相像、都接近均匀分布。这就是论文对
    Re-KD 和 De-KD 的解释：在 KD 所用的温度下，任何教师给出的东西有很大一部分都是对标签的平滑。代码中的虚拟教师在
    两个温度下给标签的概率都约为 $1/K$：是近乎均匀的平滑，而不是一位自信的教师。
""")

nbt.add_prose(nb, r"""
    ### Deeper: entropy over the whole test split

    The mean entropy of each target in nats, at three temperatures; the uniform distribution has
    $\log K$. Every teacher's softened output climbs towards $\log K$ as $\tau$ grows, the weaker the
    closer, while the code's virtual teacher is close to uniform already at $\tau = 1$.
""", r"""
    ### 深入：整个测试集上的熵

    各个目标在三个温度下的平均熵（单位 nats）；均匀分布的熵是 $\log K$。随着 $\tau$ 增大，每位
    教师的软化输出都向 $\log K$ 攀升，教师越弱越接近；而代码中的虚拟教师在 $\tau = 1$ 时就已接近均匀分布。
""")

nbt.add_code(nb, """
    entropy = lambda p: float(-(p * p.clamp_min(1e-30).log()).sum(1).mean())
    table_temps = (1.0, 4.0, T_REG)
    rows = [{"target": name, "test acc (%)": acc, **{f"H at T={t:g}": prediction_entropy(model, x_test, t)
                                                      for t in table_temps}}
            for name, (model, acc) in teachers.items()]
    rows.append({"target": "code: softmax(p^d / T)", "test acc (%)": 100.0,
                 **{f"H at T={t:g}": entropy(virtual_teacher_target(y_test, num_classes, A_REG, t)) for t in table_temps}})
    rows.append({"target": "label smoothing, eps = 0.1", "test acc (%)": 100.0,
                 **{f"H at T={t:g}": entropy(smoothed_targets(y_test, num_classes, 0.1)) for t in table_temps}})
    print(results.format_table(rows, digits=3))
    print(f"log K = {math.log(num_classes):.3f} (uniform); the two hand-made targets are right on every image")
    for row in rows[:3]:
        assert row["H at T=1"] < row["H at T=4"] < row[f"H at T={T_REG:g}"] <= math.log(num_classes) + 1e-4
""")

# ---------------------------------------------------------------------------------------------- 5
nbt.add_prose(nb, r"""
    ## 5. Experiment

    Same budget, same seeds: the students alone (cached), Tf-KD reg and Tf-KD self. The authors'
    multipliers assume $K = 100$ (their KL is divided by $K$; on 10 classes they would weight it ten
    times more), so `class_rescaled` multiplies $m$ by $K / 100$, keeping their CIFAR-100 weight
    $\alpha m / 100$ (Tf-KD reg: 100 becomes 10; Tf-KD self: 50 becomes 5); exercise 3 runs the
    unscaled value.

    **Tf-KD reg: the mechanism.** The regulariser pulls predictions towards the code's near-uniform
    target $r$, so on *test* images a Tf-KD reg student should be closer to $r$ than the student alone:
    mean $\mathrm{KL}(r \,\|\, p)$ (`kdteach.analysis.virtual_teacher_kl`, lower is closer), asserted
    for every seed. Tf-KD reg uses no teacher; the card's teacher line is for
    reference. Accuracy comes second, last epoch only.
""", r"""
    ## 5. 实验

    同样的计算预算、同样的随机种子：单独训练的学生（已缓存）、Tf-KD reg 和 Tf-KD self。作者的乘数假定 $K = 100$
    （他们的 KL 要除以 $K$；在 10 个类别上，同样的数字会让 KL 的权重大十倍），所以 `class_rescaled`
    把 $m$ 乘以 $K / 100$，保持他们在 CIFAR-100 上的权重 $\alpha m / 100$（Tf-KD reg：100 变为 10；Tf-KD self：50 变为
    5）；练习 3 运行未缩放的值。

    **Tf-KD reg：机制。** 正则项把学生的预测拉向代码中近乎均匀的目标 $r$，所以在*测试*图片上，Tf-KD reg 学生应当比
    单独训练的学生更接近 $r$：即平均 $\mathrm{KL}(r \,\|\, p)$（`kdteach.analysis.virtual_teacher_kl`，越低越接近），
    对每个随机种子都做断言。Tf-KD reg 不用教师；卡片中的教师一行仅作参照。准确率排在其次，只看最后一轮。
""")

nbt.add_code(nb, """
    # kdteach.train.run_experiment: the cached students alone and, per seed, a student trained with
    # Tf-KD reg (cached by recipe, recorded for the dashboard, sanity-checked)
    reg_hp = {"multiplier": class_rescaled(reg_defaults["multiplier"], num_classes)}
    exp = run_experiment("tfkd_reg", budget=budget, teacher=teacher, hparams=reg_hp)
    mech = Mechanism(f"KL from the code's virtual-teacher target softmax(p^d / T), a = {A_REG:g}, T = {T_REG:g}, "
                     "to the student's predictions (virtual_teacher_kl, test split)",
                     alone={s: virtual_teacher_kl(exp.baselines[s][0], x_test, y_test, A_REG, T_REG) for s in seeds},
                     method={s: virtual_teacher_kl(exp.runs[s].student, x_test, y_test, A_REG, T_REG) for s in seeds},
                     target="the virtual teacher")
    card = exp.card(mech).check()   # asserts: the Tf-KD reg student is closer to the virtual teacher, every seed
    card
""")

nbt.add_prose(nb, r"""
    **Tf-KD self, and KD for comparison.** Per seed $s$, the student alone teaches a new student of seed
    $s$: same random initialisation as its teacher's (not its trained weights), same batches in the same
    order, as with the authors' fixed seed; only the soft-target term differs from the student alone.
    The KD students (`kd` defaults) come from `kdteach zoo warm`'s cache. At `ci` Tf-KD self runs on the
    first seed only (each run costs as much as a KD run). The table: last-epoch accuracy, mean prediction
    entropy (`prediction_entropy`, higher is less confident) and KL to $r$.
""", r"""
    **Tf-KD self，以及用于对比的 KD。** 对每个随机种子 $s$，随机种子 $s$ 的单独训练的学生去教一个随机种子同为 $s$
    的新学生：新学生从它的教师当初的同一个随机初始化出发（不是教师训练好的权重），以同样的顺序看同样的批次，与作者
    固定随机种子的做法一致。它与单独训练的学生的唯一区别就是软目标项。KD 学生（`kd` 默认值）已由 `kdteach zoo warm`
    缓存。在 `ci` 下 Tf-KD self 只用第一个随机种子（一次运行与一次 KD 运行一样耗时）。表中给出最后一轮准确率、预测的
    平均熵（`prediction_entropy`，越高表示越不自信）以及到 $r$ 的 KL。
""")

nbt.add_code(nb, """
    self_hp = {"multiplier": class_rescaled(self_defaults["multiplier"], num_classes)}
    SELF_SEEDS = seeds[:1] if budget.name == "ci" else seeds     # at ci the first seed only (time)
    # Tf-KD self: a chain of two cached runs (kdteach.train.run_chain); link 0 is the student alone of seed s
    self_runs = {s: distill("tfkd_self", budget=budget, teacher=alone[s][0], seed=s, hparams=self_hp,
                            progress=False, verbose=False) for s in SELF_SEEDS}
    kd = run_experiment("kd", budget=budget, teacher=teacher)        # cached by kdteach zoo warm
    students = {"student alone": {s: alone[s] for s in seeds},
                "KD (teacher)": {s: (kd.runs[s].student, kd.runs[s].record) for s in seeds},
                "Tf-KD self": {s: (self_runs[s].student, self_runs[s].record) for s in SELF_SEEDS},
                "Tf-KD reg": {s: (exp.runs[s].student, exp.runs[s].record) for s in seeds}}
    rows = [{"student": name, "seed": s, "test acc (%)": rec["last_acc"],
             "entropy (nats)": prediction_entropy(model, x_test),
             "KL to r": virtual_teacher_kl(model, x_test, y_test, A_REG, T_REG)}
            for name, by_seed in students.items() for s, (model, rec) in by_seed.items()]
    print(results.format_table(rows, digits=3))
    assert all(r["teacher"] == budget.student for r in (self_runs[s].record for s in SELF_SEEDS))   # its own arch
    ent = {(r["student"], r["seed"]): r["entropy (nats)"] for r in rows}
    assert all(ent["Tf-KD reg", s] > ent["student alone", s] for s in seeds)   # label smoothing: less confident
""")

nbt.add_prose(nb, r"""
    **Reading it.** The card checks the loss's direct effect: Tf-KD reg students are less confident on
    test images (higher entropy), as label smoothing makes them. On 1,017 test images one accuracy's
    binomial standard error is about 1.6 points (on the card): a point or two between the four students
    is noise. The Tf-KD self teacher *is* the student alone: no better
    knowledge to gain, only regularisation, here with 95% of the weight ($\alpha = 0.95$)
    on imitating a teacher no better than the student.
""", r"""
    **解读。** 结果卡片检验的是损失的直接效果：Tf-KD reg 学生在测试图片上更不自信（熵更高），正如标签平滑所致。在
    1,017 张测试图片上，一个准确率的二项标准误约为 1.6 个百分点（见卡片），所以四个学生之间一两个百分点的差别都是
    噪声。Tf-KD self 的教师*就是*单独训练的学生，所以没有更好的知识可学：只有正则化，而且这里 95% 的权重
    （$\alpha = 0.95$）放在模仿一位并不比学生更好的教师上。
""")

# ---------------------------------------------------------------------------------------------- 6
nbt.add_prose(nb, r"""
    ## 6. The paper's numbers and ours

    The authors' headline numbers (their repository's README and the abstract), each with its source,
    next to our per-seed gains.
""", r"""
    ## 6. 论文结果与我们的结果

    作者的主要数字（代码仓库的 README 和论文摘要）及各自出处，旁边是我们每个随机种子的提升。
""")

nbt.add_code(nb, """
    PAPER = {
        # the authors' README (github.com/yuanli2333/Teacher-free-Knowledge-Distillation), section 2:
        # baseline test accuracy on CIFAR-100 (%), each network trained alone
        "baselines_cifar100": {"MobileNetV2": 68.38, "ShuffleNetV2": 70.34, "ResNet18": 75.87, "ResNet50": 78.16,
                               "GoogLeNet": 78.72, "DenseNet121": 79.04, "ResNeXt29": 81.03},
        # the authors' README, introduction: ResNeXt29-8x64d on CIFAR-100, alone -> Tf-KD self (%)
        "resnext29_tfkd_self": (81.03, 82.08),
        # the authors' README, section 3.2: De-KD's poorly trained teachers, CIFAR-100 accuracy (%)
        "defective_teachers": {"ResNet18, 1 epoch": 15.48, "ResNet50, 50 epochs": 45.82, "ResNeXt29, 50 epochs": 51.94},
        # the abstract: the largest improvement of Tf-KD over a baseline on ImageNet (points)
        "imagenet_best_gain": 0.65,
    }
    alone_t, self_t = PAPER["resnext29_tfkd_self"]
    print(f"paper (README): ResNeXt29 Tf-KD self {self_t - alone_t:+.2f} points on CIFAR-100; "
          f"Tf-KD on ImageNet: up to +{PAPER['imagenet_best_gain']:.2f} (abstract)")
    print(f"paper (README): De-KD teacher ResNet18 after 1 epoch {PAPER['defective_teachers']['ResNet18, 1 epoch']:.2f}% "
          f"vs its MobileNetV2 student alone {PAPER['baselines_cifar100']['MobileNetV2']:.2f}%")
    acc = {(r["student"], r["seed"]): r["test acc (%)"] for r in rows}
    for name, by_seed in list(students.items())[1:]:
        gains = [acc[name, s] - acc["student alone", s] for s in by_seed]
        print(f"ours ({budget.name}, {budget.student}): {name:<13} " + ", ".join(f"{g:+.2f}" for g in gains)
              + f" points for seeds {list(by_seed)}")
    print(f"ours: De-KD's 1-epoch teacher {teachers['1-epoch teacher'][1]:.2f}% vs the student alone "
          f"{teachers['student alone'][1]:.2f}%; binomial standard error of one accuracy {card.se:.2f} points")
""")

nbt.add_prose(nb, r"""
    **An honest reading.** The authors' gains are about a point on CIFAR-100 and under one on
    ImageNet, measured on 10,000 or 50,000 test images. Ours (1,017 test images, a tiny network, a
    short schedule: Deeper note below) say little about theirs: a point or two is within our noise.
    What carries over is the mechanism, which the card checks, and section 3's algebra (step 5): the
    authors' Tf-KD reg *is* label smoothing ($\varepsilon \approx 0.1$ for their ResNet18 setting), and
    at their temperatures every teacher's soft targets are close to it. For comparable numbers, run with `KDTEACH_BUDGET=gpu` or `paper` (CIFAR-100, where
    `class_rescaled` changes nothing).
""", r"""
    **客观解读。** 作者的提升在 CIFAR-100 上约一个百分点，在 ImageNet 上不到一个百分点，是在 10,000 或 50,000 张
    测试图片上测得的。我们的结果（1,017 张测试图片、很小的网络、很短的训练：见下面的"深入"部分）对他们的结果说明不了
    多少：一两个百分点在我们的噪声之内。能够迁移过来的是机制（结果卡片检验了它）
    以及第 3 节的代数（第 5 步）：作者的 Tf-KD reg *就是*标签平滑（对他们的 ResNet18 设置，$\varepsilon \approx 0.1$），而在他们
    所用的温度下，每位教师的软目标都与它很接近。若要得到可比的数字，请用 `KDTEACH_BUDGET=gpu` 或 `paper`
    运行（CIFAR-100，此时 `class_rescaled` 不改变任何东西）。
""")

nbt.add_prose(nb, r"""
    ### Deeper: every deviation from the paper

    All deliberate:

    - data and models: 5,590 CIFAR-10 training images at 16x16 (1,017 test images) and the
      13.6k-parameter `tiny_student` (the paper: CIFAR-100 / Tiny-ImageNet / ImageNet and networks of
      millions of parameters); hyper-parameters from the authors' ResNet18 files (tuned for CIFAR-100)
      for every student;
    - the authors' multipliers rescaled by $K/100$ (`class_rescaled`), section 5;
    - the code's Tf-KD reg (target $\mathrm{softmax}(p^d/\tau)$, unsoftened student, $1/K$), not the
      paper's formula; the Deeper list in section 2 gives each difference;
    - Tf-KD self's teacher is the cached student alone of the same seed (20 epochs), and the student
      restarts from the same initialisation; the authors' teacher is their 200-epoch baseline;
    - schedule: 20 epochs, cosine learning rate, no warm-up epoch (the authors: 200 epochs, steps at 60,
      120 and 160, one warm-up epoch), two seeds instead of one fixed seed; at `ci` Tf-KD self runs on
      the first seed only;
    - the KD reference uses the course's KD (the CRD benchmark's weights, $\tau = 4$), not the authors'
      KD settings;
    - De-KD's teacher is the 50k-parameter teacher after one epoch; Re-KD and De-KD are exercises, to
      stay within a minute.
""", r"""
    ### 深入：与论文的每一处差异

    均为有意为之：

    - 数据与模型：5,590 张 16x16 的 CIFAR-10 训练图片（1,017 张测试图片）和 13.6k 参数的 `tiny_student`（论文：
      CIFAR-100 / Tiny-ImageNet / ImageNet 和数百万参数的网络）；所有学生都用作者 ResNet18 文件中（针对 CIFAR-100 调好）
      的超参数；
    - 作者的乘数按 $K/100$ 重新缩放（`class_rescaled`），见第 5 节；
    - 使用代码中的 Tf-KD reg（目标 $\mathrm{softmax}(p^d/\tau)$、未软化的学生、$1/K$），而不是论文的公式；第 2 节的深入
      小节逐条列出了差异；
    - Tf-KD self 的教师是同一随机种子下缓存的单独训练的学生（20 轮），学生从相同的初始化重新开始；作者的教师是他们训练
      200 轮的基线；
    - 训练日程：20 轮、余弦学习率、没有预热轮（作者：200 轮、在第 60、120、160 轮降低学习率、一轮预热），用两个随机种子
      而不是一个固定随机种子；在 `ci` 下 Tf-KD self 只用第一个随机种子；
    - KD 参照使用本课程的 KD（CRD 基准的权重，$\tau = 4$），而不是作者的 KD 设置；
    - De-KD 的教师是只训练一轮的 50k 参数教师；为了控制在一分钟之内，Re-KD 和 De-KD 作为练习。

""")

# ---------------------------------------------------------------------------------------------- 7
nbt.add_prose(nb, r"""
    ## 7. Interactive

    **Virtual-teacher explorer.** The example images of section 4. Move $a$ and $\tau$ to see the
    code's target $\mathrm{softmax}(p^d / \tau)$, $p^d$ read as logits, label smoothing with
    $\varepsilon$ and the three teachers at the same $\tau$, each with its label probability and
    entropy. Try $a = 1$, $\tau = 1$: the code's target still gives the label under a quarter.
""", r"""
    ## 7. 交互

    **虚拟教师探索器。** 使用第 4 节的示例图片。移动 $a$ 和 $\tau$：代码中的目标 $\mathrm{softmax}(p^d / \tau)$、
    把 $p^d$ 当作 logits 的读法、参数为 $\varepsilon$ 的标签平滑以及同一 $\tau$ 下的三位教师，并给出每个目标的标签概率
    和熵。试试 $a = 1$、$\tau = 1$：代码中的目标给标签的概率仍不到四分之一。
""")

nbt.add_code(nb, """
    explorer = VirtualTeacherExplorer(z_ex, y_ex, class_names, correct_prob=A_REG, temperature=T_REG)
    explorer
""")

nbt.add_prose(nb, r"""
    **All runs of this budget.** Every run recorded under this budget, other notebooks' included; other
    hyper-parameters form their own setting (`tfkd_reg / multiplier=10`). Click "Compare".
""", r"""
    **本计算预算下的所有运行。** 本计算预算下记录的每次运行（包括其他笔记的）；超参数不同的运行构成各自的设置
    （`tfkd_reg / multiplier=10`）。点击“Compare”。
""")

nbt.add_code(nb, """
    results_dashboard(exp.budget)     # every run recorded under this budget; one filter rule everywhere
""")

# ---------------------------------------------------------------------------------------------- 8
nbt.add_prose(nb, r"""
    ## 8. Summary, exercises, references

    **Summary.**
    - LS is KD with a uniform teacher at $\tau = 1$ (up to the constant $\alpha \log K$); KD at
      $\tau = 1$ is LS smoothing towards the teacher's distribution (up to $\alpha H(p^t)$); section 3
      checks both.
    - At KD's temperatures, a good, a smaller and a barely trained teacher all give nearly uniform
      soft targets (section 4): the paper's explanation of why Re-KD and De-KD still help.
    - The authors' Tf-KD reg trains towards a near-uniform $\mathrm{softmax}(p^d/\tau)$; the whole
      loss is exactly label smoothing, and its students are less confident on test images (the card); at
      `ci` accuracy differences are noise.

    **Exercises.**
    1. *Reversed KD.* Let the student alone teach the teacher's architecture:
       `rekd = run_chain([budget.student, budget.teacher], "kd", budget=budget, seed=0, teacher_model=alone[0][0])`
       (`from kdteach.train import run_chain`; ci: about 25 s). Compare `rekd.links[1].record["last_acc"]`
       with the same architecture trained alone for 20 epochs,
       `train_model(budget.teacher, budget=budget, record=False)` (ci: about 20 s). Why is the cached
       teacher (30 epochs) the wrong baseline?
    2. *Defective KD.* Distil seed 0 from the 1-epoch teacher:
       `dekd = distill("kd", budget=budget, teacher=defective.student, seed=0, record=False, progress=False)`
       (ci: about 16 s). Compare its accuracy and `prediction_entropy(dekd.student, x_test)` with the
       student alone of seed 0.
    3. *The unscaled multiplier.* Compute the $\varepsilon$ of `tfkd_reg` at its defaults on this
       budget with `as_label_smoothing` (section 3, Deeper; ci: no run), then train it:
       `run_experiment("tfkd_reg", budget=budget, teacher=teacher)` (ci: about 20 s). Compare entropy
       and accuracy with the card.

    **References.**
    - L. Yuan, F. E. H. Tay, G. Li, T. Wang, J. Feng. Revisiting Knowledge Distillation via Label
      Smoothing Regularization. CVPR 2020; arXiv:1909.11723. Code:
      <https://github.com/yuanli2333/Teacher-free-Knowledge-Distillation>.
    - C. Szegedy, V. Vanhoucke, S. Ioffe, J. Shlens, Z. Wojna. Rethinking the Inception Architecture
      for Computer Vision. CVPR 2016 (label smoothing).
    - G. Hinton, O. Vinyals, J. Dean. Distilling the Knowledge in a Neural Network. arXiv:1503.02531, 2015.
    - T. Furlanello, Z. Lipton, M. Tschannen, L. Itti, A. Anandkumar. Born-Again Neural Networks.
      ICML 2018.
    - R. Müller, S. Kornblith, G. Hinton. When Does Label Smoothing Help? NeurIPS 2019.
""", r"""
    ## 8. 小结、练习与参考文献

    **小结。**
    - LS 就是 $\tau = 1$ 时以均匀分布为教师的 KD（相差常数 $\alpha \log K$），而 $\tau = 1$ 时的 KD 就是以教师分布作为
      平滑分布的 LS（相差 $\alpha H(p^t)$）；第 3 节检验了这两点。
    - 在 KD 的温度下，好教师、小教师和几乎没训练的教师给出的软目标都近乎均匀（第 4 节）：这是论文对 Re-KD 和 De-KD
      仍然有效的解释。
    - 作者的 Tf-KD reg 以近乎均匀的 $\mathrm{softmax}(p^d/\tau)$ 为目标；整个损失恰好就是标签平滑，它的学生在测试图片上
      更不自信（结果卡片）；`ci` 下的准确率差别只是噪声。

    **练习。**
    1. *反向 KD。* 让单独训练的学生去教教师的网络结构：
       `rekd = run_chain([budget.student, budget.teacher], "kd", budget=budget, seed=0, teacher_model=alone[0][0])`
       （`from kdteach.train import run_chain`；ci: about 25 s）。把 `rekd.links[1].record["last_acc"]` 与同一网络结构
       单独训练 20 轮的结果 `train_model(budget.teacher, budget=budget, record=False)`（ci: about 20 s）比较。为什么缓存的
       教师（30 轮）是错误的基线？
    2. *缺陷 KD。* 用只训练一轮的教师蒸馏随机种子 0：
       `dekd = distill("kd", budget=budget, teacher=defective.student, seed=0, record=False, progress=False)`
       （ci: about 16 s）。把它的准确率和 `prediction_entropy(dekd.student, x_test)` 与随机种子 0 的单独训练的学生比较。
    3. *未缩放的乘数。* 用 `as_label_smoothing`（第 3 节深入小节；ci: no run）算出 `tfkd_reg` 在本计算预算上取默认值时的
       $\varepsilon$，再训练它：`run_experiment("tfkd_reg", budget=budget, teacher=teacher)`（ci: about 20 s）。把熵和准确率
       与结果卡片比较。

    **参考文献。**
    - L. Yuan, F. E. H. Tay, G. Li, T. Wang, J. Feng. Revisiting Knowledge Distillation via Label
      Smoothing Regularization. CVPR 2020; arXiv:1909.11723. 代码：
      <https://github.com/yuanli2333/Teacher-free-Knowledge-Distillation>。
    - C. Szegedy, V. Vanhoucke, S. Ioffe, J. Shlens, Z. Wojna. Rethinking the Inception Architecture
      for Computer Vision. CVPR 2016（标签平滑）。
    - G. Hinton, O. Vinyals, J. Dean. Distilling the Knowledge in a Neural Network. arXiv:1503.02531, 2015.
    - T. Furlanello, Z. Lipton, M. Tschannen, L. Itti, A. Anandkumar. Born-Again Neural Networks.
      ICML 2018.
    - R. Müller, S. Kornblith, G. Hinton. When Does Label Smoothing Help? NeurIPS 2019.
""")

nbt.write_notebook(nb, OUT)
print(f"wrote {OUT}")
