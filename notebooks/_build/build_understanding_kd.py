"""Build notebooks/01_response/understanding_kd.ipynb (run from the repository root, then execute it
with `kdteach notebooks run notebooks/01_response/understanding_kd.ipynb`)."""

from __future__ import annotations

from kdteach import nbtools as nbt

nb = nbt.new_notebook({"id": "understanding_kd", "paper": "Understanding and Improving Knowledge Distillation",
                       "venue": "arXiv 2020", "part": "01_response"})

# ------------------------------------------------------------------------------------------- 0. title
nbt.add_prose(nb, r"""
# Understanding and Improving Knowledge Distillation

**Paper.** Jiaxi Tang, Rakesh Shivanna, Zhe Zhao, Dong Lin, Anima Singh, Ed H. Chi, Sagar Jain.
*Understanding and Improving Knowledge Distillation.* arXiv:2002.03532, 2020.
<https://arxiv.org/abs/2002.03532>

**The idea in one sentence.** A teacher's soft targets smooth the label, say which classes are
alike, and weight each image's gradient by how sure the teacher is; targets that keep fewer of the
three show what each one does.

**Run time** (whole notebook, with the teacher, the students alone and the kd notebook's KD runs cached):

| budget | what runs | time |
|---|---|---|
| `ci` | CIFAR-10 subset at 16x16, `tiny_teacher` -> `tiny_student`; 3 runs (see section 5) | under a minute on 2 CPU cores |
| `quick` | 10k CIFAR-10 images at 32x32, same tiny pair | a few minutes on a laptop CPU |
| `gpu` | all of CIFAR-100, `resnet32x4` -> `resnet8x4`, 60 epochs | minutes on one GPU |
| `paper` | the CRD benchmark recipe (240 epochs, CIFAR-100) | hours on a GPU |

Read the kd notebook ([kd](kd.ipynb)) first: its KD runs are the reference here.
""", r"""
# 理解并改进知识蒸馏

**论文。** Jiaxi Tang、Rakesh Shivanna、Zhe Zhao、Dong Lin、Anima Singh、Ed H. Chi、Sagar Jain，
*Understanding and Improving Knowledge Distillation*，arXiv:2002.03532，2020。
<https://arxiv.org/abs/2002.03532>

**一句话概括。** 教师的软目标（soft targets）平滑了标签、说明了哪些类别相似，并按教师的把握程度给每张图片的梯度加权；
只保留其中一部分的目标能让我们看清每一件各起什么作用。

**运行时间**（整本笔记；教师、单独训练的学生以及 kd 笔记中的 KD 运行均已缓存）：

| 计算预算 | 运行内容 | 时间 |
|---|---|---|
| `ci` | CIFAR-10 子集，16x16，`tiny_teacher` -> `tiny_student`；3 次训练（见第 5 节） | 2 核 CPU 上不到一分钟 |
| `quick` | 1 万张 32x32 的 CIFAR-10 图像，同一对小网络 | 笔记本电脑 CPU 上几分钟 |
| `gpu` | 完整 CIFAR-100，`resnet32x4` -> `resnet8x4`，60 轮 | 单张 GPU 上几分钟 |
| `paper` | CRD 基准的训练方案（240 轮，CIFAR-100） | GPU 上数小时 |

请先阅读 kd 笔记（[kd](kd.ipynb)）：那里的 KD 运行就是这里的参照。
""")

nbt.add_code(nb, r"""
%matplotlib inline
# (kdteach.viz returns matplotlib Figure objects; the line above makes Jupyter draw them inline)
import torch

from kdteach import data, results, zoo
from kdteach.analysis import class_probability_matrix, class_relation_distance, class_relations, kd_gradient_norms
from kdteach.losses import (kd_loss, matched_epsilon, permute_nontarget, smoothed_targets, soft_target_loss,
                            softened_probs)
from kdteach.methods import get_method
from kdteach.train import Mechanism, budget_splits, build_model, get_budget, run_experiment
from kdteach.viz import plot_gradient_scale, plot_similarity_pairs, plot_target_distributions
from kdteach.widgets import KDEffectsExplorer, results_dashboard

budget = get_budget()                          # from KDTEACH_BUDGET: ci, quick, gpu or paper
seeds = budget.seeds
kd_hparams = dict(get_method("kd").hparams)    # the kd method's T = 4 and weights 0.1 / 0.9
T = kd_hparams["temperature"]
print(f"budget {budget.name}: {budget.dataset} at {budget.resolution}x{budget.resolution}, "
      f"{budget.teacher} -> {budget.student}, {budget.epochs} epochs, seeds {seeds}")
print("kd_permuted:", dict(get_method("kd_permuted").hparams))
print("kd_ls:      ", dict(get_method("kd_ls").hparams))
""", check_output=True)

# ------------------------------------------------------------------------------------------- 1. question
nbt.add_prose(nb, r"""
## 1. The question

KD works, but *why*? Tang et al. read three kinds of knowledge into a soft target, from the most
general to the most specific:

1. **Knowledge of the universe.** Probability is taken off the true class and spread over the
   others, as label smoothing does with a uniform spread: a regulariser.
2. **Domain knowledge.** *Which* wrong classes get it: a car image puts it on truck, not on frog.
3. **Instance-specific knowledge.** *How much* the true class keeps differs per image: the teacher
   is sure about easy images and unsure about hard ones, which reweights the images' gradients.

We separate them with two controls, the kd notebook's KD student as the reference: a
**uniform-smoothing target** (level 1 only) and a **permuted teacher** (levels 1 and 3: the
teacher's non-target probabilities shuffled per image, so the class relationships are gone).

**In the taxonomy.** *Response-based* knowledge in *offline* distillation. The paper defines no new
loss; `kd_ls` and `kd_permuted` are kdteach's controls, trained exactly like `kd`.
""", r"""
## 1. 问题

KD 有效，但*为什么*有效？Tang 等人从一个软目标中读出三类知识，从最一般到最具体：

1. **关于全体的知识（knowledge of the universe）。** 从真实类别上拿走一部分概率分给其他类别，就像标签平滑（label
   smoothing）用均匀分配所做的那样：一种正则化。
2. **领域知识（domain knowledge）。** 这些概率落在*哪些*错误类别上：一张汽车图片把它分给卡车，而不是青蛙。
3. **样本特定的知识（instance-specific knowledge）。** 真实类别保留*多少*概率因图片而异：教师对简单的图片有把握，
   对难的图片没把握，这会给各张图片的梯度重新加权。

我们以 kd 笔记中的 KD 学生为参照，用两个对照把它们分开：**均匀平滑目标**（只有第 1 层）和**置换教师**（permuted
teacher，第 1 和第 3 层：把教师的非目标类概率逐张图片打乱，类别关系（class relationships）随之消失）。

**在分类体系中的位置。** *离线蒸馏*中的*基于响应的知识*。论文没有定义新的损失；`kd_ls` 和 `kd_permuted` 是 kdteach
的对照，训练方式与 `kd` 完全相同。
""")

# ------------------------------------------------------------------------------------------- 2. loss
nbt.add_prose(nb, r"""
## 2. The knowledge and the loss

**One loss, three targets.** All students train on

$$\mathcal{L} = \alpha_{\mathrm{CE}}\,\mathrm{CE}\big(\mathrm{softmax}(z_s),\, y\big)
 + \alpha_{\mathrm{KD}}\; T^2\,\frac{1}{B}\sum_{b=1}^{B}\mathrm{KL}\big(q^{(b)} \,\big\|\, p_s^{(b)}\big),
 \qquad p_s = \mathrm{softmax}(z_s / T),$$

with the kd method's $T = 4$, $\alpha_{\mathrm{CE}} = 0.1$, $\alpha_{\mathrm{KD}} = 0.9$. Only the
target $q$ changes:

| target $q$ | formula | smoothing (1) | relations (2) | per-image confidence (3) |
|---|---|---|---|---|
| teacher (`kd`) | $p_t = \mathrm{softmax}(z_t / T)$ | yes | yes | yes |
| permuted teacher (`kd_permuted`) | $q_y = p_{t,y}$, $q_j = p_{t,\pi(j)}$ for $j \ne y$ | yes | no | yes |
| uniform smoothing (`kd_ls`) | $(1-\varepsilon)\,\mathbf{1}_y + \varepsilon / K$ | yes | no | no |

Here $\pi$ is a random permutation of the $K - 1$ non-target classes, drawn anew for every image and
step: the target keeps $p_{t,y}$ and the set of values (so the teacher's entropy), and loses
*which* classes are alike. For uniform smoothing we match $\varepsilon$ to the teacher's *mean*
softened true-class probability on the training images, $1 - \varepsilon + \varepsilon/K =
\overline{p_{t,y}}$: the same amount of smoothing, identical for every image (a kdteach control).

**The gradient.** Per image, $\partial\, T^2\,\mathrm{KL}(q \,\|\, p_s) / \partial z_s = T\,(p_s - q)$
(the kd notebook's derivation, for any $q$) and $\partial\,\mathrm{CE} / \partial z_s =
\mathrm{softmax}(z_s) - \mathbf{1}_y$. On the true class's logit: $T\,(p_{s,y} - q_y)$ against
$\mathrm{softmax}(z_s)_y - 1$. The CE pushes every image by its own error; KD only up to $q_y$, so a
hard image (small $p_{t,y}$) gets a small push: the rescaling by instance difficulty. The permuted
teacher has the same $q_y$ and rescales the same way; uniform smoothing's $q_y$ is the same for
every image.

| symbol | meaning | code |
|---|---|---|
| $z_s$, $z_t$ | student and teacher logits $(B, K)$ | `z_s`, `z_t` |
| $y$ | labels $(B,)$ | `y` |
| $T$ | temperature | `T` (`temperature`) |
| $p_s$, $p_t$ | softened probabilities | `softened_probs(z, T)` |
| $q$ | the target | `p_t`, `permute_nontarget(p_t, y, generator)`, `smoothed_targets(y, K, eps)` |
| $\varepsilon$ | smoothing of the uniform target | `epsilon`; matched: `matched_epsilon(p_t, y)` |
| $T^2\frac{1}{B}\sum_b \mathrm{KL}(q \,\|\, p_s)$ | the KD term against $q$, unweighted | `soft_target_loss(z_s, q, T)` |
| $\alpha_{\mathrm{CE}}$, $\alpha_{\mathrm{KD}}$ | weights | `ce_weight`, `kd_weight` |
| $p_{t,y}$ | teacher's confidence | `kd_gradient_norms(...)["teacher_confidence"]` (at $T = 1$) |
""", r"""
## 2. 知识与损失

**一个损失，三种目标。** 所有学生都用下式训练：

$$\mathcal{L} = \alpha_{\mathrm{CE}}\,\mathrm{CE}\big(\mathrm{softmax}(z_s),\, y\big)
 + \alpha_{\mathrm{KD}}\; T^2\,\frac{1}{B}\sum_{b=1}^{B}\mathrm{KL}\big(q^{(b)} \,\big\|\, p_s^{(b)}\big),
 \qquad p_s = \mathrm{softmax}(z_s / T),$$

其中 $T = 4$、$\alpha_{\mathrm{CE}} = 0.1$、$\alpha_{\mathrm{KD}} = 0.9$ 与 kd 方法相同。只有目标 $q$ 不同：

| 目标 $q$ | 公式 | 平滑（1） | 类别关系（2） | 逐图片的置信度（3） |
|---|---|---|---|---|
| 教师（`kd`） | $p_t = \mathrm{softmax}(z_t / T)$ | 有 | 有 | 有 |
| 置换教师（`kd_permuted`） | $q_y = p_{t,y}$，$j \ne y$ 时 $q_j = p_{t,\pi(j)}$ | 有 | 无 | 有 |
| 均匀平滑（`kd_ls`） | $(1-\varepsilon)\,\mathbf{1}_y + \varepsilon / K$ | 有 | 无 | 无 |

这里 $\pi$ 是 $K - 1$ 个非目标类的一个随机置换，每张图片、每一步都重新抽取：目标保留 $p_{t,y}$ 和概率值的集合
（因而保留教师的熵），失去的是*哪些*类别相似。对于均匀平滑，我们让 $\varepsilon$ 与教师在训练图片上真实类别的*平均*
软化概率相匹配，即 $1 - \varepsilon + \varepsilon/K = \overline{p_{t,y}}$：平滑的总量相同，且每张图片都一样
（这是 kdteach 的对照设计）。

**梯度。** 对单张图片，$\partial\, T^2\,\mathrm{KL}(q \,\|\, p_s) / \partial z_s = T\,(p_s - q)$（kd 笔记的推导，
对任何 $q$ 都成立），而 $\partial\,\mathrm{CE} / \partial z_s = \mathrm{softmax}(z_s) - \mathbf{1}_y$。在真实类别的
logit 上：$T\,(p_{s,y} - q_y)$ 对比 $\mathrm{softmax}(z_s)_y - 1$。交叉熵按每张图片自身的误差去推；KD 只推到 $q_y$ 为止，
所以难的图片（$p_{t,y}$ 小）只被轻轻推一下：这就是按样本难度的梯度重缩放（gradient rescaling）。置换教师的 $q_y$ 相同，
重缩放的方式也相同；均匀平滑的 $q_y$ 对每张图片都一样。

| 符号 | 含义 | 代码 |
|---|---|---|
| $z_s$、$z_t$ | 学生和教师的 logits，形状 $(B, K)$ | `z_s`、`z_t` |
| $y$ | 标签，形状 $(B,)$ | `y` |
| $T$ | 温度 | `T`（`temperature`） |
| $p_s$、$p_t$ | 软化概率 | `softened_probs(z, T)` |
| $q$ | 目标 | `p_t`、`permute_nontarget(p_t, y, generator)`、`smoothed_targets(y, K, eps)` |
| $\varepsilon$ | 均匀目标的平滑程度 | `epsilon`；匹配值：`matched_epsilon(p_t, y)` |
| $T^2\frac{1}{B}\sum_b \mathrm{KL}(q \,\|\, p_s)$ | 针对 $q$ 的 KD 项，不带权重 | `soft_target_loss(z_s, q, T)` |
| $\alpha_{\mathrm{CE}}$、$\alpha_{\mathrm{KD}}$ | 权重 | `ce_weight`、`kd_weight` |
| $p_{t,y}$ | 教师的置信度 | `kd_gradient_norms(...)["teacher_confidence"]`（取 $T = 1$） |
""")

nbt.add_prose(nb, r"""
### Deeper: KD as a confidence-weighted cross-entropy

Take $T = 1$ and a student at initialisation, whose outputs are close to uniform,
$p_s \approx 1/K$. On the true class's logit the CE gradient is $1/K - 1$ for *every* image, and the
KD gradient is $1/K - p_{t,y}$. Their ratio,

$$w = \frac{p_{t,y} - 1/K}{1 - 1/K},$$

is 1 when the teacher is certain, 0 when it is at chance, and negative when the teacher prefers
another class: on the true class KD acts like a cross-entropy whose images are weighted by the
teacher's confidence, and a hard image gets little weight. During training $p_s$ moves and the
ratio becomes $(p_{t,y} - p_{s,y}) / (1 - p_{s,y})$, which also shrinks as the student catches up
with the teacher. At $T > 1$ the same holds for the softened probabilities, times $T$. Section 4
draws the norm of the whole gradient vector, not only this component; the ordering by confidence
is the same. This reading of the third level is our derivation, not a transcription of the paper.
""", r"""
### 深入：把 KD 看成按置信度加权的交叉熵

取 $T = 1$，并考虑一个刚初始化的学生，它的输出接近均匀分布，$p_s \approx 1/K$。在真实类别的 logit 上，交叉熵的梯度
对*每一张*图片都是 $1/K - 1$，而 KD 的梯度是 $1/K - p_{t,y}$。两者之比

$$w = \frac{p_{t,y} - 1/K}{1 - 1/K}$$

在教师完全确定时为 1，在教师与随机猜测无异时为 0，在教师偏向另一个类别时为负：在真实类别上，KD 就像一个按教师置信度
给图片加权的交叉熵，难的图片得到的权重很小。训练过程中 $p_s$ 会变化，比值变为 $(p_{t,y} - p_{s,y}) / (1 - p_{s,y})$，
当学生追上教师时它也会变小。$T > 1$ 时，对软化概率同样成立，再乘以 $T$。第 4 节画的是整个梯度向量的范数，而不只是这个
分量；按置信度的排序是一样的。对第三层的这一解读是我们自己的推导，并非照录论文。
""")

# ------------------------------------------------------------------------------------------- 3. scratch
nbt.add_prose(nb, r"""
## 3. From scratch

A fixed tiny example: $B = 4$ images, $K = 10$ classes, seeded random logits, fixed labels (the
teacher is wrong on image 3). Nothing depends on the budget or on training, so nbval checks the
printed numbers.
""", r"""
## 3. 从零实现

一个固定的小例子：$B = 4$ 张图片、$K = 10$ 个类别、固定随机种子生成的 logits、固定的标签（教师在第 3 张图片上判错）。
这里的一切都不依赖计算预算或训练，所以 nbval 会检查打印出的数字。
""")

nbt.add_code(nb, r"""
g = torch.Generator().manual_seed(0)
B, K = 4, 10
z_t = 3.0 * torch.randn(B, K, generator=g)      # teacher logits (B, K)
z_s = 2.0 * torch.randn(B, K, generator=g)      # student logits (B, K)
y = z_t.argmax(dim=1)
y[3] = (y[3] + 1) % K                           # labels (B,): the teacher is wrong on image 3
p_t = softened_probs(z_t, T)                    # the teacher's target at T = 4
rows = torch.arange(B)


def show(v):
    return " ".join(f"{x:.3f}" for x in v.tolist())


print("labels", y.tolist(), "| teacher's p_t,y at T = 4:", show(p_t[rows, y]))
""", check_output=True)

nbt.add_prose(nb, r"""
**Step 1: uniform smoothing.** The $\varepsilon$ that matches the teacher's mean true-class
probability on this batch, then $(1-\varepsilon)\,\mathbf{1}_y + \varepsilon/K$.
""", r"""
**第 1 步：均匀平滑。** 先求出在这个批次上与教师真实类别平均概率相匹配的 $\varepsilon$，再构造
$(1-\varepsilon)\,\mathbf{1}_y + \varepsilon/K$。
""")

nbt.add_code(nb, r"""
eps = ((1 - p_t[rows, y].mean()) * K / (K - 1)).item()      # 1 - eps + eps / K = mean p_t,y
assert abs(eps - matched_epsilon(p_t, y)) < 1e-6
onehot = torch.zeros(B, K).scatter_(1, y[:, None], 1.0)
q_ls = (1 - eps) * onehot + eps / K
assert torch.allclose(q_ls, smoothed_targets(y, K, eps))
print(f"matched epsilon on this batch: {eps:.4f}")
print("teacher at T = 4, image 0:  ", show(p_t[0]))
print("uniform smoothing, image 0: ", show(q_ls[0]))
""", check_output=True)

nbt.add_prose(nb, r"""
**Step 2: the permuted teacher.** One random key per entry; the non-target classes of each row,
sorted by their keys, say where each non-target value goes. The target entry stays put.
`permute_nontarget` draws its keys from the generator it is given, so the same seed gives the same
permutation.
""", r"""
**第 2 步：置换教师。** 每个元素一个随机键；每一行的非目标类按各自的键排序，决定每个非目标类的概率值搬到哪里。
目标类的元素原地不动。`permute_nontarget` 从传入的随机数生成器中抽取键，所以相同的种子给出相同的置换。
""")

nbt.add_code(nb, r"""
keys = torch.rand(B, K, generator=torch.Generator().manual_seed(1))
q_perm = p_t.clone()
for i in range(B):
    others = [j for j in range(K) if j != int(y[i])]                 # non-target classes, ascending
    shuffled = sorted(others, key=lambda j: keys[i, j].item())       # the same classes, in key order
    q_perm[i, shuffled] = p_t[i, others]                             # value of others[n] moves to shuffled[n]
assert torch.equal(q_perm, permute_nontarget(p_t, y, torch.Generator().manual_seed(1)))

assert torch.equal(q_perm[rows, y], p_t[rows, y])                    # the target probability is kept
assert torch.equal(q_perm.sort(dim=1).values, p_t.sort(dim=1).values)  # and the set of values, per image
print("teacher, image 0:         ", show(p_t[0]))
print("permuted teacher, image 0:", show(q_perm[0]))
""", check_output=True)

nbt.add_prose(nb, r"""
**Step 3: KD against a target.** $T^2$ times the batch mean of $\sum_j q_j (\log q_j - \log p_{s,j})$.
With the teacher's target it is exactly `kd_loss`.
""", r"""
**第 3 步：针对某个目标的 KD。** $T^2$ 乘以 $\sum_j q_j (\log q_j - \log p_{s,j})$ 的批次均值。用教师的目标时，
它正好就是 `kd_loss`。
""")

nbt.add_code(nb, r"""
targets = {"teacher": p_t, "permuted teacher": q_perm, "uniform smoothing": q_ls}
for name, q in targets.items():
    log_p_s = torch.log_softmax(z_s / T, dim=1)
    mine = T**2 * (q * (q.log() - log_p_s)).sum(dim=1).mean()        # every q > 0 here
    assert torch.allclose(mine, soft_target_loss(z_s, q, T))
    print(f"{name:<18} KD term = {mine.item():.5f}")
assert torch.allclose(soft_target_loss(z_s, p_t, T), kd_loss(z_s, z_t, T))
print("soft_target_loss(z_s, p_t, T) equals kd_loss(z_s, z_t, T)")
""", check_output=True)

nbt.add_prose(nb, r"""
**Step 4: the per-image gradients.** Autograd through $B \cdot$ `soft_target_loss` (the batch mean
times $B$ is the sum of the per-image terms) must give $T\,(p_s - q)$ row by row, and
`kdteach.analysis.kd_gradient_norms` its norms. On the true class, the permuted teacher's component
is the teacher's; uniform smoothing's follows the student only.
""", r"""
**第 4 步：逐图片的梯度。** 对 $B \cdot$ `soft_target_loss` 自动求导（批次均值乘以 $B$ 就是各张图片的项之和），
每一行应为 $T\,(p_s - q)$，而 `kdteach.analysis.kd_gradient_norms` 给出它们的范数。在真实类别上，置换教师的分量
与教师的相同；均匀平滑的分量只取决于学生。
""")

nbt.add_code(nb, r"""
print(f"{'target':<18} {'gradient norm per image':<28} true-class component T (p_s,y - q_y)")
for name, q in targets.items():
    zs = z_s.clone().requires_grad_(True)
    (B * soft_target_loss(zs, q, T)).backward()
    closed = T * (softened_probs(z_s, T) - q)                         # T (p_s - q), image by image
    assert torch.allclose(zs.grad, closed, atol=1e-6)
    g_q = kd_gradient_norms(z_s, z_t, y, T, target_probs=q)
    assert torch.allclose(g_q["kd"], closed.norm(dim=1), atol=1e-6)
    print(f"{name:<18} {show(g_q['kd']):<28} {show(g_q['kd_target'])}")
g_ce = kd_gradient_norms(z_s, z_t, y, T)
print(f"{'CE':<18} {show(g_ce['ce']):<28} {show(g_ce['ce_target'])}")
print(f"{'teacher confidence':<18} {show(g_ce['teacher_confidence'])}  (p_t,y at T = 1)")
""", check_output=True)

nbt.add_prose(nb, r"""
Bad input fails early, with a message naming the argument: logits are not a target distribution.
""", r"""
错误的输入会尽早报错，错误信息会指出参数名：logits 不是目标分布。
""")

nbt.add_code(nb, r"""
try:
    soft_target_loss(z_s, z_t, T)
except ValueError as e:
    print(e)
""")

# ------------------------------------------------------------------------------------------- 4. seeing
nbt.add_prose(nb, r"""
## 4. Seeing the knowledge

**The three targets** on the first test image of four classes: the cached teacher at $T = 4$, the
permuted teacher and the uniform target with $\varepsilon$ matched on the training images. One y
scale for all bars; the true class in bold.
""", r"""
## 4. 看见知识

**三种目标**，取四个类别各自的第一张测试图片：缓存的教师在 $T = 4$ 时的目标、置换教师，以及 $\varepsilon$ 在训练图片上匹配的
均匀目标。所有柱子共用一个纵轴刻度；真实类别用粗体标出。
""")

nbt.add_code(nb, r"""
teacher = zoo.teacher(budget=budget, progress=False, verbose=False)   # accuracy: on the card
device = next(teacher.parameters()).device
train_split, test_split = budget_splits(budget)
class_names = list(test_split.class_names)
num_classes = len(class_names)


def logits_of(model, images):
    # (N, K) logits of a model on uint8 images, eval mode, batch by batch, on the CPU
    x = data.normalize(images, budget.dataset)
    model.eval()
    with torch.inference_mode():
        return torch.cat([model(x[i:i + budget.test_batch_size].to(device)).float().cpu()
                          for i in range(0, len(x), budget.test_batch_size)])


# the epsilon whose uniform target gives the true class the teacher's mean probability at T (training images)
epsilon = round(matched_epsilon(softened_probs(logits_of(teacher, train_split.images), T), train_split.labels), 2)
z_test, y_test = logits_of(teacher, test_split.images), test_split.labels
p_test = softened_probs(z_test, T)                                                 # (N, K)
q_perm_test = permute_nontarget(p_test, y_test, torch.Generator().manual_seed(0))  # one fixed permutation
q_ls_test = smoothed_targets(y_test, num_classes, epsilon)
print(f"matched epsilon = {epsilon:.2f}: the uniform target gives the true class "
      f"{1 - epsilon + epsilon / num_classes:.3f} and every other class {epsilon / num_classes:.3f}")

picks = [int((y_test == c).nonzero()[0]) for c in (1, 3, 5, 9)]   # on CIFAR-10: automobile, cat, dog, truck
fig = plot_target_distributions(
    {"teacher, T = 4": p_test[picks], "permuted teacher": q_perm_test[picks], "uniform smoothing": q_ls_test[picks]},
    class_names, labels=y_test[picks].tolist(),
    row_titles=[f"test image {i}: {class_names[int(y_test[i])]}" for i in picks])
fig.set_dpi(80)
fig
""")

nbt.add_prose(nb, r"""
The permuted target has the teacher's true-class bar and the teacher's bars in another order: a
car's second choice may now be a frog. The uniform target is the same for every image of a class.
""", r"""
置换后的目标保留了教师的真实类别柱，其余是教师的那组柱子换了顺序：汽车图片的第二选择现在可能是青蛙。
均匀目标对同一类别的每张图片都一样。
""")

nbt.add_prose(nb, r"""
**Class relationships before and after the permutation.** For each true class $i$, average the
target over the test images of class $i$ (`class_probability_matrix`), drop the diagonal and
renormalise the row (`class_relations`): row $i$ says where the wrong-class probability of class-$i$
images goes. Both panels share one colour scale; uniform relations would be $1/(K-1)$ everywhere.
""", r"""
**置换前后的类别关系。** 对每个真实类别 $i$，在第 $i$ 类的测试图片上对目标取平均（`class_probability_matrix`），
去掉对角元素后把该行重新归一化（`class_relations`）：第 $i$ 行说明第 $i$ 类图片的错误类别概率流向哪里。两幅图共用
一个颜色刻度；均匀的类别关系处处都是 $1/(K-1)$。
""")

nbt.add_code(nb, r"""
M_teacher = class_probability_matrix(p_test, y_test)             # (K, K), row i: mean target of class-i images
M_perm = class_probability_matrix(q_perm_test, y_test)
M_uniform = torch.ones(num_classes, num_classes)                  # uniform relations
R_teacher, R_perm = class_relations(M_teacher), class_relations(M_perm)
d_teacher, d_perm = class_relation_distance(M_teacher, M_uniform), class_relation_distance(M_perm, M_uniform)
print(f"distance of the relations from uniform (class_relation_distance): teacher {d_teacher:.3f}, "
      f"permuted teacher {d_perm:.3f}")
assert torch.allclose(M_perm.diagonal(), M_teacher.diagonal())    # the true-class mass is untouched
assert d_perm < d_teacher / 2                                     # the structure is gone, up to sampling noise

sym = (R_teacher + R_teacher.T) / 2
values, flat = sym.triu(1).flatten().topk(4)
for v, f in zip(values.tolist(), flat.tolist()):
    i, j = f // num_classes, f % num_classes
    print(f"  {class_names[i]:>10} / {class_names[j]:<10} teacher {v:.3f}   permuted {(R_perm[i, j] + R_perm[j, i]).item() / 2:.3f}")

row = "wrong-class relations at T = 4 (test split)"
fig = plot_similarity_pairs({row: (R_teacher, R_perm)}, labels={row: class_names},
                            names=("teacher", "permuted teacher"), difference=False, annotate=False)
fig.set_dpi(80)
fig
""")

nbt.add_prose(nb, r"""
**Reading it.** The teacher's relations have blocks (vehicles, animals) and the pairs printed above
stand out; after the permutation every row is nearly flat, up to the sampling noise of about a
hundred images per class, while the true-class mass is exactly the teacher's.
""", r"""
**解读。** 教师的类别关系呈块状（交通工具、动物），上面打印的类别对格外突出；置换之后每一行都几乎平坦，只剩每类约一百张
图片带来的抽样噪声，而真实类别保留的概率与教师的完全相同。
""")

nbt.add_prose(nb, r"""
**Gradient rescaling by instance difficulty.** A student at initialisation on the test images:
the per-image gradient of each KD term (unweighted, $T = 4$) and of the CE, against the teacher's
confidence $p_{t,y}$ at $T = 1$; left the norm of the whole gradient, right the push a descent step
gives the true class's logit (minus the gradient's component there: $T\,(q_y - p_{s,y})$ for KD,
$1 - \mathrm{softmax}(z_s)_y$ for CE). Points are images, lines the means over confidence bins;
each panel has its own y scale.
""", r"""
**按样本难度的梯度重缩放。** 在测试图片上取一个刚初始化的学生：每个 KD 项（不带权重，$T = 4$）和交叉熵的逐图片梯度，
对照教师在 $T = 1$ 时的置信度 $p_{t,y}$；左图是整个梯度的范数，右图是一步梯度下降给真实类别 logit 的推力（梯度在该处分量的
相反数：KD 为 $T\,(q_y - p_{s,y})$，交叉熵为 $1 - \mathrm{softmax}(z_s)_y$）。点是图片，线是按置信度分箱后的均值；
两幅图各有自己的纵轴刻度。
""")

nbt.add_code(nb, r"""
fresh = build_model(budget.student, num_classes, seeds[0]).to(device)     # a student at initialisation
z_fresh = logits_of(fresh, test_split.images)
grads = {name: kd_gradient_norms(z_fresh, z_test, y_test, T, target_probs=q)
         for name, q in (("KD to the teacher", p_test), ("KD to the permuted teacher", q_perm_test),
                         ("KD to uniform smoothing", q_ls_test))}
confidence = grads["KD to the teacher"]["teacher_confidence"]
norms = {name: g["kd"] for name, g in grads.items()} | {"CE": grads["KD to the teacher"]["ce"]}
components = {name: g["kd_target"] for name, g in grads.items()} | {"CE": grads["KD to the teacher"]["ce_target"]}


def corr(a, b):
    return torch.corrcoef(torch.stack([a, b]))[0, 1].item()


print(f"{'':<28} {'mean norm':>9}  correlation with the teacher's confidence: norm | true-class push")
for name in norms:
    print(f"{name:<28} {norms[name].mean():9.3f}  {corr(norms[name], confidence):+.2f} | "
          f"{corr(-components[name], confidence):+.2f}")
push = -components["KD to the teacher"]
assert corr(push, confidence) > 0.8                                              # sure images pushed harder
assert torch.allclose(components["KD to the permuted teacher"], components["KD to the teacher"])  # same push
assert components["KD to uniform smoothing"].std() < 0.1 * push.std()           # the same push for every image
fig = plot_gradient_scale(confidence, norms, components, title="A student at initialisation, test split")
fig.set_dpi(80)
fig
""")

nbt.add_prose(nb, r"""
At the start of training the CE pushes every image about equally hard. KD pushes an image's true
class harder the surer the teacher is: hard images count less, and below chance the push turns
negative. The whole gradient's norm follows more loosely: an image the teacher gets confidently
*wrong* is pushed hard too, towards the wrong class. The permuted teacher's push is exactly the
teacher's (the curves coincide); uniform smoothing pushes every image the same.
""", r"""
训练刚开始时，交叉熵对每张图片用的力气大致相同。教师越有把握，KD 对图片真实类别推得越用力：难的图片分量更轻，低于随机
猜测时推力变为负的。整个梯度的范数也有这一趋势，但更松散：教师*自信地判错*的图片同样被用力推，只是推向错误的类别。置换教师
的推力与教师完全相同（曲线重合）；均匀平滑对每张图片推得一样。
""")

# ------------------------------------------------------------------------------------------- 5. experiment
nbt.add_prose(nb, r"""
## 5. Experiment

The cached teacher and students alone, the kd notebook's KD students (cached runs) and students
trained on the permuted teacher, same seeds. To stay within a minute on two CPU cores the
uniform-smoothing student trains on the first seed only: a contrast, not the card.

**The headline is the mechanism.** A student takes on the class relationships of its target. On
the test images we measure how far each student's wrong-class relations (softened outputs at
$T = 4$, averaged per class) are from the permuted teacher's (`class_relation_distance`, lower is
closer). The card asserts, for every seed, that the permuted-teacher student is closer to them than
the KD student, trained on the intact teacher. Accuracy comes second, last epoch only.
""", r"""
## 5. 实验

缓存的教师和单独训练的学生、kd 笔记的 KD 学生（缓存的运行），以及用置换教师训练的学生，随机种子相同。为了在 2 核 CPU
上控制在一分钟以内，均匀平滑的学生只用第一个随机种子训练：它是对照，不上结果卡片。

**首要结论是机制。** 学生会接受其目标中的类别关系。在测试图片上，我们度量每个学生的错误类别关系（$T = 4$ 时的软化输出
按类别取平均）与置换教师的类别关系相距多远（`class_relation_distance`，越低越接近）。结果卡片对每个随机种子断言：置换教师
的学生比 KD 学生（用完整教师训练）更接近它们。准确率排在其次，且只用最后一轮的结果。
""")

nbt.add_code(nb, r"""
# the kd notebook's runs (cached by recipe), the permuted teacher (the card), uniform smoothing (first seed)
exp_kd = run_experiment("kd", budget=budget, teacher=teacher, hparams=kd_hparams)
exp = run_experiment("kd_permuted", budget=budget, teacher=teacher)
exp_ls = run_experiment("kd_ls", budget=budget, teacher=teacher, seeds=seeds[:1], hparams={"epsilon": epsilon})


def matrix_of(model):
    return class_probability_matrix(softened_probs(logits_of(model, test_split.images), T), y_test)


mech = Mechanism("wrong-class relations: distance to the permuted teacher's (class_relation_distance, T = 4, "
                 "test split)",
                 alone={s: class_relation_distance(matrix_of(exp_kd.runs[s].student), M_perm) for s in seeds},
                 method={s: class_relation_distance(matrix_of(exp.runs[s].student), M_perm) for s in seeds},
                 target="its permuted teacher", reference="KD student")
card = exp.card(mech).check()   # asserts: closer to the permuted teacher's relations than KD, every seed
card
""")

nbt.add_prose(nb, r"""
**All students side by side.** Per student: its relations' distance to the *real* teacher's, the
correlation of its true-class probability with the teacher's over the test images (the instance
level), and its accuracy. The cell asserts only the permutation's direct effect: for every seed the
KD student's relations are closer to the teacher's than the permuted-teacher student's.
""", r"""
**所有学生并排比较。** 对每个学生：它的类别关系到*真实*教师的类别关系的距离、在测试图片上它的真实类别概率与教师的相关系数
（样本层面），以及准确率。该单元格只断言置换的直接效果：对每个随机种子，KD 学生的类别关系都比置换教师的学生更接近教师。
""")

nbt.add_code(nb, r"""
teacher_conf = softened_probs(z_test, 1.0)[torch.arange(len(y_test)), y_test]
students = [("student alone", s, *exp.baselines[s]) for s in seeds]
students += [("KD", s, exp_kd.runs[s].student, exp_kd.runs[s].record) for s in seeds]
students += [("permuted teacher", s, exp.runs[s].student, exp.runs[s].record) for s in seeds]
students += [(f"uniform smoothing (eps = {epsilon:.2f})", s, exp_ls.runs[s].student, exp_ls.runs[s].record)
             for s in exp_ls.seeds]
table, relations = [], {}
for name, s, model, record in students:
    z = logits_of(model, test_split.images)
    M = class_probability_matrix(softened_probs(z, T), y_test)
    relations[name, s] = M
    conf = softened_probs(z, 1.0)[torch.arange(len(y_test)), y_test]
    table.append({"student": name, "seed": s,
                  "relations: distance to the teacher": f"{class_relation_distance(M, M_teacher):.3f}",
                  "confidence correlation": f"{corr(conf, teacher_conf):.3f}", "last_acc": record["last_acc"]})
print(results.format_table(table))
for s in seeds:
    assert class_relation_distance(relations["KD", s], M_teacher) < \
        class_relation_distance(relations["permuted teacher", s], M_teacher)
""")

nbt.add_code(nb, r"""
s0 = seeds[0]
pairs = {f"{name}, seed {s0}": (R_teacher, class_relations(relations[name, s0]))
         for name in ("student alone", "KD", "permuted teacher")}
fig = plot_similarity_pairs(pairs, labels={k: class_names for k in pairs}, names=("teacher", "student"),
                            difference=False, annotate=False)
fig.set_dpi(70)
fig
""")

nbt.add_prose(nb, r"""
**Reading the results.** In each row the teacher and the student share one colour scale. The
student alone, trained on labels only, already has most of the teacher's relations: the images
teach them. KD moves it closer still. The permuted teacher flattens them, further from the teacher
than the student alone, and so does uniform smoothing. In our runs the permuted-teacher students
also lost three to four points of accuracy on both seeds (one accuracy's standard error is 1.6),
while uniform smoothing stayed near the student alone: random wrong-class targets are not neutral,
they mislead. The confidence correlation hardly separates the students at this budget: the instance
level shows in the gradients of section 4, not clearly in a trained student's confidence.
""", r"""
**解读结果。** 每一行中教师和学生共用一个颜色刻度。只用标签训练的单独学生已经具备教师的大部分类别关系：这些关系是图片本身
教会的。KD 让它更接近教师。置换教师把类别关系抹平了，比单独训练的学生离教师更远，均匀平滑也是如此。在我们的运行中，置换教师的
学生在两个随机种子上都损失了三到四个百分点的准确率（单次准确率的标准误为 1.6），而均匀平滑的学生与单独训练的学生相差不大：随机的
错误类别目标并不中性，它会误导学生。在这个计算预算下，置信度相关系数几乎区分不开各个学生：样本层面的知识体现在第 4 节的梯度中，
而在训练好的学生的置信度上并不明显。
""")

# ------------------------------------------------------------------------------------------- 6. paper
nbt.add_prose(nb, r"""
## 6. The paper's numbers and ours

We could read the paper's abstract but not its tables in the sources available to us, so this
section quotes no numbers from the paper. Its three claims, and what our `ci` runs show:

| the paper's claim (abstract) | what we measured at `ci` | where |
|---|---|---|
| knowledge of the "universe": KD regularises as label smoothing does | uniform smoothing with the teacher's amount: compare it with KD and the student alone (one seed) | section 5 table |
| domain knowledge: the teacher gives the student its class relationships | removing them from the teacher removes them from the student | the card |
| instance-specific knowledge: the teacher rescales per-image gradients by difficulty | KD's true-class push grows with the teacher's confidence; the permuted teacher keeps this, uniform smoothing does not | section 4 figure |

**An honest reading.** The mechanisms carry over; the accuracy ranking at `ci` means little (data,
models, schedule and statistics all differ from the paper's, see below). For comparable numbers use
`KDTEACH_BUDGET=gpu` or `paper`.
""", r"""
## 6. 论文结果与我们的结果

在我们能获得的资料中只能读到论文的摘要，读不到它的表格，所以本节不引用论文的任何数字。它的三条论断，以及我们在 `ci`
下的运行说明了什么：

| 论文的论断（摘要） | 我们在 `ci` 下测得的 | 位置 |
|---|---|---|
| 关于全体的知识：KD 像标签平滑一样起到正则化作用 | 平滑总量与教师相同的均匀平滑：与 KD 和单独训练的学生比较（一个随机种子） | 第 5 节表格 |
| 领域知识：教师把类别关系传给学生 | 从教师中去掉类别关系，学生身上也随之消失 | 结果卡片 |
| 样本特定的知识：教师按难度重缩放逐图片的梯度 | KD 对真实类别的推力随教师置信度增大；置换教师保留了这一点，均匀平滑没有 | 第 4 节的图 |

**如实解读。** 机制能够迁移过来；`ci` 下的准确率排序说明不了多少问题（数据、模型、训练轮数和统计都与论文不同，见下文）。
想得到可比较的数字，请用 `KDTEACH_BUDGET=gpu` 或 `paper` 运行。
""")

nbt.add_prose(nb, r"""
### Deeper: how our setting differs from the paper's

- Data and models: 5,590 CIFAR-10 images at 16x16 and a 50k-parameter teacher that is right on
  about 57% of the test images, so its relations are noisy and its confidence is often misplaced.
- Schedule and statistics: 20 epochs; two seeds for the card, one for uniform smoothing (scaled
  down to keep the notebook under a minute), 1,017 test images.
- The controls are kdteach's: the permutation is redrawn at every step from a generator seeded by
  the step, and $\varepsilon$ is matched to the teacher's mean true-class probability; the paper
  describes its controls in words; we found no code of theirs. With the usual $\varepsilon = 0.1$ the
  uniform target at $T = 4$ would be far *sharper* than the teacher (exercise 1).
- The gradient figure uses a student at initialisation; the Deeper subsection of section 2 says how
  the picture changes during training.
- CIFAR-100 (the `gpu` and `paper` budgets) gives the relations far more room: a hundred classes.
""", r"""
### 深入：我们的设定与论文有何不同

- 数据与模型：5,590 张 16x16 的 CIFAR-10 图片，以及一个约 5 万参数、在约 57% 的测试图片上判对的教师，所以它的类别关系
  噪声大，它的置信度也常常放错地方。
- 训练轮数与统计：20 轮；结果卡片两个随机种子，均匀平滑一个（为让整本笔记控制在一分钟内而缩减），1,017 张测试图片。
- 对照是 kdteach 自己构造的：置换在每一步用按步数设定种子的随机数生成器重新抽取，$\varepsilon$ 与教师的真实类别平均概率
  相匹配；论文只用文字描述了它的对照，我们也没有找到作者的代码。若用常见的 $\varepsilon = 0.1$，$T = 4$ 下的均匀目标会比教师*尖锐*
  得多（练习 1）。
- 梯度图用的是刚初始化的学生；第 2 节的深入小节说明了训练过程中这幅图会如何变化。
- CIFAR-100（`gpu` 和 `paper` 计算预算）的一百个类别给类别关系留出了大得多的空间。
""")

# ------------------------------------------------------------------------------------------- 7. widget
nbt.add_prose(nb, r"""
## 7. Interactive

**Soft-target explorer.** The teacher and the student trained *alone* (first seed) on the first 200
test images. Move $T$ and $\varepsilon$, toggle "permute the teacher", pick an image: the upper
figure shows its targets, the lower one the gradients of the 200 images against the teacher's
confidence. The summary gives the $\varepsilon$ matching the teacher at the current $T$.
""", r"""
## 7. 交互

**软目标探索器。** 在前 200 张测试图片上比较教师与*单独训练*的学生（第一个随机种子）。拖动 $T$ 和 $\varepsilon$，
切换 "permute the teacher"（置换教师），并选一张图片：上图是它的各个目标，下图是这 200 张图片的梯度对照教师的
置信度。摘要一行给出在当前 $T$ 下与教师相匹配的 $\varepsilon$。
""")

nbt.add_code(nb, r"""
n_show = 200
z_alone = logits_of(exp.baselines[seeds[0]][0], test_split.images[:n_show])
explorer = KDEffectsExplorer(z_alone, z_test[:n_show], y_test[:n_show], class_names, temperature=T, epsilon=epsilon)
explorer
""")

nbt.add_prose(nb, r"""
**All runs of this budget**, other notebooks' included; `kd_ls` with the matched $\varepsilon$ is its
own setting (`kd_ls / epsilon=...`). Click "Compare".
""", r"""
**本计算预算下的全部运行**，包括其他笔记的运行；使用匹配 $\varepsilon$ 的 `kd_ls` 自成一组设置（`kd_ls / epsilon=...`）。
点击 "Compare"。
""")

nbt.add_code(nb, r"""
results_dashboard(exp.budget)     # every run recorded under this budget; one filter rule everywhere
""")

# ------------------------------------------------------------------------------------------- 8. summary
nbt.add_prose(nb, r"""
## 8. Summary, exercises, references

**Summary.**
- A soft target carries smoothing, class relationships and a per-image confidence that rescales
  the gradient (Tang et al.).
- Replacing the target isolates them: the permuted teacher drops the relationships, uniform
  smoothing keeps only the smoothing (`soft_target_loss`, `permute_nontarget`, `smoothed_targets`).
- The student's class relationships follow its target (the card); KD pushes an image harder the
  surer the teacher is (section 4).

**Exercises.**
1. *The usual label smoothing* (ci: about 12 s). Train seed 0 with $\varepsilon = 0.1$:
   `run_experiment("kd_ls", budget=budget, seeds=seeds[:1], hparams={"epsilon": 0.1})`. At
   $T = 4$, what does this target ask of $\mathrm{softmax}(z_s)$ at $T = 1$? Compare the student
   with the matched run.
2. *Difficulty during training* (ci: no run). Redraw the gradient figure of section 4 with
   `exp_kd.runs[seeds[0]].student` in place of the fresh student. Why do confident images now get
   small pushes? Use the ratio of the Deeper subsection of section 2.
3. *The other control* (ci: no run). Give every true class the teacher's mean $p_{t,y}$ and rescale
   the non-target entries to fill the rest: relations kept, confidence dropped. Check it with
   `class_relation_distance` and with `kd_gradient_norms` on `z_fresh`.

**References.**
- J. Tang, R. Shivanna, Z. Zhao, D. Lin, A. Singh, E. H. Chi, S. Jain. Understanding and Improving
  Knowledge Distillation. arXiv:2002.03532, 2020.
- G. Hinton, O. Vinyals, J. Dean. Distilling the Knowledge in a Neural Network. arXiv:1503.02531, 2015.
- C. Szegedy, V. Vanhoucke, S. Ioffe, J. Shlens, Z. Wojna. Rethinking the Inception Architecture for
  Computer Vision. CVPR 2016 (label smoothing).
- T. Furlanello, Z. Lipton, M. Tschannen, L. Itti, A. Anandkumar. Born-Again Neural Networks. ICML
  2018 (a permuted-predictions control of the same kind).
- Y. Tian, D. Krishnan, P. Isola. Contrastive Representation Distillation. ICLR 2020 (the KD
  weights and temperature used here).
""", r"""
## 8. 小结、练习与参考文献

**小结。**
- 一个软目标携带平滑、类别关系，以及对梯度做重缩放的逐图片置信度（Tang 等人）。
- 替换目标就能把它们分开：置换教师去掉类别关系，均匀平滑只保留平滑（`soft_target_loss`、`permute_nontarget`、
  `smoothed_targets`）。
- 学生的类别关系随其目标而定（结果卡片）；教师越有把握的图片，KD 推得越用力（第 4 节）。

**练习。**
1. *常用的标签平滑*（ci：约 12 秒）。用 $\varepsilon = 0.1$ 训练随机种子 0：
   `run_experiment("kd_ls", budget=budget, seeds=seeds[:1], hparams={"epsilon": 0.1})`。在 $T = 4$ 时，
   这个目标对 $T = 1$ 下的 $\mathrm{softmax}(z_s)$ 提出了什么要求？把这个学生与匹配 $\varepsilon$ 的运行比较。
2. *训练过程中的难度*（ci：无需训练）。用 `exp_kd.runs[seeds[0]].student` 代替刚初始化的学生，重画第 4 节的梯度图。
   为什么现在有把握的图片只得到很小的推力？用第 2 节深入小节中的比值来解释。
3. *另一个对照*（ci：无需训练）。让每个真实类别都得到教师的平均 $p_{t,y}$，非目标类元素按比例缩放以补足其余部分：
   保留类别关系，去掉置信度。用 `class_relation_distance` 以及在 `z_fresh` 上用 `kd_gradient_norms` 检查它。

**参考文献。**
- J. Tang, R. Shivanna, Z. Zhao, D. Lin, A. Singh, E. H. Chi, S. Jain. Understanding and Improving
  Knowledge Distillation. arXiv:2002.03532, 2020.
- G. Hinton, O. Vinyals, J. Dean. Distilling the Knowledge in a Neural Network. arXiv:1503.02531, 2015.
- C. Szegedy, V. Vanhoucke, S. Ioffe, J. Shlens, Z. Wojna. Rethinking the Inception Architecture for
  Computer Vision. CVPR 2016（标签平滑）。
- T. Furlanello, Z. Lipton, M. Tschannen, L. Itti, A. Anandkumar. Born-Again Neural Networks. ICML
  2018（同类的置换预测对照）。
- Y. Tian, D. Krishnan, P. Isola. Contrastive Representation Distillation. ICLR 2020（本笔记使用的 KD 权重和温度）。
""")

nbt.write_notebook(nb, "notebooks/01_response/understanding_kd.ipynb")
print("wrote notebooks/01_response/understanding_kd.ipynb")
