"""Build notebooks/02_feature/fitnet.ipynb (FitNets: Hints for Thin Deep Nets) with kdteach.nbtools.

Run from the repository root: ``python notebooks/_build/build_fitnet.py``, then execute the notebook with
``kdteach notebooks run notebooks/02_feature/fitnet.ipynb`` (KDTEACH_BUDGET=ci) before committing it.
"""

from __future__ import annotations

from pathlib import Path

from kdteach import nbtools as nbt

OUT = Path(__file__).resolve().parents[1] / "02_feature" / "fitnet.ipynb"

nb = nbt.new_notebook({"id": "fitnet", "paper": "FitNets: Hints for Thin Deep Nets", "venue": "ICLR 2015",
                       "part": "02_feature"})

# ---------------------------------------------------------------------------------------------- 0
nbt.add_prose(nb, r"""
    # FitNets: Hints for Thin Deep Nets

    **Paper.** Adriana Romero, Nicolas Ballas, Samira Ebrahimi Kahou, Antoine Chassang, Carlo Gatta,
    Yoshua Bengio. *FitNets: Hints for Thin Deep Nets.* ICLR 2015; arXiv:1412.6550.
    <https://arxiv.org/abs/1412.6550>. Benchmark code: RepDistiller (the CRD benchmark),
    <https://github.com/HobbitLong/RepDistiller>.

    **The idea in one sentence.** Besides the teacher's outputs, let one of its hidden layers (the
    *hint*) teach one hidden layer of the student (the *guided* layer), through a small trainable
    *regressor* that maps the student's features to the hint's shape, in a first training stage
    before ordinary KD.

    **Run time** (whole notebook, teacher and baselines cached by `kdteach zoo warm`):

    | budget | what runs | time |
    |---|---|---|
    | `ci` | CIFAR-10 subset at 16x16, `tiny_teacher` -> `tiny_student`, 3 + 20 epochs, 2 seeds | about a minute on 2 CPU cores |
    | `quick` | 10k CIFAR-10 images at 32x32, same tiny pair | minutes on a laptop CPU |
    | `gpu` | CIFAR-100, `resnet32x4` -> `resnet8x4`, 8 + 60 epochs, 3 seeds | tens of minutes on one GPU |
    | `paper` | the benchmark recipe: 30 + 240 epochs on CIFAR-100 | hours on a GPU |

    Choose the budget with the environment variable `KDTEACH_BUDGET` before starting the kernel.
""", r"""
    # FitNets：用于瘦深网络的提示

    **论文。** Adriana Romero、Nicolas Ballas、Samira Ebrahimi Kahou、Antoine Chassang、Carlo Gatta、
    Yoshua Bengio，*FitNets: Hints for Thin Deep Nets*，ICLR 2015；arXiv:1412.6550。
    <https://arxiv.org/abs/1412.6550>。基准代码：RepDistiller（CRD 基准），
    <https://github.com/HobbitLong/RepDistiller>。

    **一句话概括。** 除了教师的输出，再让教师的一个隐藏层（*提示层*，hint）去教学生的一个隐藏层（*被引导层*，
    guided），中间经过一个小的可训练*回归器*（regressor），把学生的特征映射成提示的形状；这是普通 KD 之前的
    第一个训练阶段。

    **运行时间**（整本笔记；教师和基线已由 `kdteach zoo warm` 缓存）：

    | 计算预算 | 运行内容 | 时间 |
    |---|---|---|
    | `ci` | CIFAR-10 子集，16x16，`tiny_teacher` -> `tiny_student`，3 + 20 轮，2 个随机种子 | 2 核 CPU 上约一分钟 |
    | `quick` | 1 万张 32x32 的 CIFAR-10 图像，同一对小网络 | 笔记本电脑 CPU 上几分钟 |
    | `gpu` | CIFAR-100，`resnet32x4` -> `resnet8x4`，8 + 60 轮，3 个随机种子 | 单张 GPU 上几十分钟 |
    | `paper` | 基准训练方案：CIFAR-100 上 30 + 240 轮 | GPU 上数小时 |

    启动内核前用环境变量 `KDTEACH_BUDGET` 选择计算预算。
""")

nbt.add_code(nb, """
    %matplotlib inline
    # (kdteach.viz returns matplotlib Figure objects; the line above makes Jupyter draw them inline)
    import torch
    import torch.nn.functional as F

    from kdteach import data, zoo
    from kdteach.analysis import hint_residual
    from kdteach.data import NUM_CLASSES
    from kdteach.features import extract
    from kdteach.losses import fitnet_loss
    from kdteach.methods import get_method
    from kdteach.methods.base import batch_losses
    from kdteach.methods.fitnet import hint_stages, regressor_spec
    from kdteach.train import Mechanism, Trainer, budget_splits, build_model, get_budget, run_experiment
    from kdteach.viz import plot_hint_channels

    budget = get_budget()                       # from KDTEACH_BUDGET: ci, quick, gpu or paper
    seeds = budget.seeds
    K = NUM_CLASSES[budget.dataset]
    for name in ("fitnet", "fitnet_1stage"):
        m = get_method(name)
        print(f"{name:<14} stages {[(s.name, s.epochs) for s in m.stages(budget)]}  {dict(m.hparams)}")
""")

# ---------------------------------------------------------------------------------------------- 1
nbt.add_prose(nb, r"""
    ## 1. The question

    In 2014 deep networks were hard to train (no batch normalisation or residual connections yet),
    and KD supervised a student only at its output. Romero et al. want students *thinner and deeper*
    than their teacher and ask: can the teacher also supervise the **middle** of the student?

    Their answer is the **hint**: the output of one hidden layer of the teacher becomes a regression
    target for one hidden layer of the student. Training has **two stages**: first the student up to
    the guided layer learns the hint; then the whole student is trained with KD from there.

    **In the taxonomy.** The first *feature-based* method of *offline* distillation (part 2).

    **Two registry names.** `fitnet` is the paper's two stages. The CRD benchmark, which most later
    papers quote, runs a single stage instead, cross-entropy plus the hint loss throughout; kdteach
    calls that variant `fitnet_1stage`.
""", r"""
    ## 1. 问题

    2014 年的深层网络很难训练（还没有批归一化或残差连接），而 KD 只在输出端监督学生。Romero 等人想要比教师
    *更瘦、更深*的学生，并提出问题：教师能否也监督学生的**中间**部分？

    他们的答案是**提示**（hint）：教师某个隐藏层的输出，成为学生某个隐藏层的回归目标。训练分**两个阶段**：
    先让学生从输入到被引导层的部分学习提示；再从这里出发，用 KD 训练整个学生。

    **在分类体系中的位置。** *离线蒸馏*中第一个*基于特征的*方法（第 2 部分）。

    **两个注册名。** `fitnet` 是论文的两阶段训练。大多数后续论文引用的 CRD 基准只跑一个阶段：全程交叉熵加
    提示损失；kdteach 把这个变体叫作 `fitnet_1stage`。
""")

# ---------------------------------------------------------------------------------------------- 2
nbt.add_prose(nb, r"""
    ## 2. The knowledge and the loss

    **The hint loss** (paper, Eq. 3). With $u_h$ the teacher up to its hint layer, $v_g$ the student
    up to its guided layer and $r$ the regressor on top of it:

    $$\mathcal{L}_{HT}(W_{Guided}, W_r) = \frac{1}{2}\,\big\lVert u_h(x; W_{Hint}) - r\big(v_g(x; W_{Guided}); W_r\big)\big\rVert^2 .$$

    $r$ must output the hint's shape and share its non-linearity (a ReLU here). The paper makes it
    **convolutional** to keep it small: a guided map of side $N_g$ and a hint of side $N_h$ need a
    kernel of side $k = N_g - N_h + 1$.

    **The two stages** (paper, Sec. 2.3). Stage 1 trains $W_{Guided}$ and $W_r$ on $\mathcal{L}_{HT}$
    alone. Stage 2 drops $r$ and trains all of the student's weights with KD.

    **The code's form.** The CRD benchmark (and `kdteach.losses.fitnet_loss`) averages over all
    $B \cdot C \cdot H \cdot W$ entries instead of the halved per-example sum:

    $$\mathcal{L}_{fitnet} = \frac{1}{B\,C\,H\,W} \sum_{b,c,i,j} \big(r(v_g)_{bcij} - u_{h,bcij}\big)^2 ,
    \qquad \text{paper} = \frac{C\,H\,W}{2}\,\mathcal{L}_{fitnet}.$$

    | symbol | meaning | code |
    |---|---|---|
    | $u_h(x)$ | teacher's hint layer output (B, C, H, W) | `teacher_hint`; stage `stages[hint_layer]` of the teacher |
    | $v_g(x)$ | student's guided layer output | stage `stages[hint_layer]` of the student |
    | $r$, $W_r$ | the regressor | `extras["regressor"]`, `regressor_spec`, `hint_regressor` |
    | $\mathcal{L}_{fitnet}$ | hint loss, mean over entries | `fitnet_loss(student_hint, teacher_hint)` |
    | stage 1, stage 2 | `init` (term `hint`), `main` (terms `ce`, `kd`) | `get_method("fitnet").stages(budget)` |

    **Weights.** `fitnet_1stage` is the benchmark's command: CE with weight 1, the hint with 100
    (`-b 100` on this mean), no KD (`-a 0`). Stage 1 of `fitnet` has no other term, so its weight
    only scales the learning rate; it is 1, as the benchmark's own first stages leave their losses
    unweighted (exercise 3 tries 100). Stage 2 is the `kd` method (0.1 CE + 0.9 KD at $T = 4$), so
    `fitnet` differs from `kd` only by stage 1. The `hint_layer` is stage 2 of each model (stem = 0),
    the benchmark's default.

    **Does the weight depend on the resolution?** No: a mean over entries does not grow when the maps
    shrink, unlike AT's normalised maps, so the `ci` run at 16x16 keeps the weight 100 (section 3
    checks this).
""", r"""
    ## 2. 知识与损失

    **提示损失**（论文式 3）。记 $u_h$ 为教师从输入到提示层的部分，$v_g$ 为学生从输入到被引导层的部分，
    $r$ 为接在其上的回归器：

    $$\mathcal{L}_{HT}(W_{Guided}, W_r) = \frac{1}{2}\,\big\lVert u_h(x; W_{Hint}) - r\big(v_g(x; W_{Guided}); W_r\big)\big\rVert^2 .$$

    $r$ 的输出必须与提示同形状，并且与提示使用相同的非线性（这里是 ReLU）。论文把它做成**卷积**的以减少参数：
    边长为 $N_g$ 的被引导特征图和边长为 $N_h$ 的提示需要边长 $k = N_g - N_h + 1$ 的卷积核。

    **两个阶段**（论文第 2.3 节）。阶段 1 只用 $\mathcal{L}_{HT}$ 训练 $W_{Guided}$ 和 $W_r$。阶段 2 丢掉 $r$，
    用 KD 训练学生的全部权重。

    **代码中的形式。** CRD 基准（以及 `kdteach.losses.fitnet_loss`）不用减半的逐样本求和，而是对全部
    $B \cdot C \cdot H \cdot W$ 个元素取平均：

    $$\mathcal{L}_{fitnet} = \frac{1}{B\,C\,H\,W} \sum_{b,c,i,j} \big(r(v_g)_{bcij} - u_{h,bcij}\big)^2 ,
    \qquad \text{论文} = \frac{C\,H\,W}{2}\,\mathcal{L}_{fitnet}.$$

    | 符号 | 含义 | 代码 |
    |---|---|---|
    | $u_h(x)$ | 教师提示层的输出 (B, C, H, W) | `teacher_hint`；教师的阶段 `stages[hint_layer]` |
    | $v_g(x)$ | 学生被引导层的输出 | 学生的阶段 `stages[hint_layer]` |
    | $r$，$W_r$ | 回归器 | `extras["regressor"]`、`regressor_spec`、`hint_regressor` |
    | $\mathcal{L}_{fitnet}$ | 提示损失，对元素取平均 | `fitnet_loss(student_hint, teacher_hint)` |
    | 阶段 1、阶段 2 | `init`（损失项 `hint`）、`main`（损失项 `ce`、`kd`） | `get_method("fitnet").stages(budget)` |

    **权重。** `fitnet_1stage` 就是基准的命令：交叉熵权重 1，提示损失权重 100（对这个平均值用 `-b 100`），
    不加 KD（`-a 0`）。`fitnet` 的阶段 1 没有其他损失项，所以权重只相当于缩放学习率；它取 1，因为基准自己的
    第一阶段都不给损失加权（练习 3 尝试 100）。阶段 2 就是 `kd` 方法（0.1 交叉熵 + 0.9 KD，$T = 4$），所以
    `fitnet` 与 `kd` 的区别只在阶段 1。`hint_layer` 取每个模型的第 2 个阶段（茎层为 0），这是基准的默认值。

    **权重是否依赖分辨率？** 不依赖：对元素取平均的损失不会因特征图变小而变大，这与 AT 的归一化注意力图不同，
    所以 16x16 的 `ci` 运行仍用权重 100（第 3 节验证这一点）。
""")

# ---------------------------------------------------------------------------------------------- 3
nbt.add_prose(nb, r"""
    ## 3. From scratch

    A fixed tiny example: a guided map of 3 channels at 6x6 and a hint of 4 channels at 4x4, both
    non-negative like features after a ReLU. The paper's rule gives the kernel side.
""", r"""
    ## 3. 从零实现

    一个固定的小例子：被引导特征图有 3 个通道、6x6，提示有 4 个通道、4x4，两者都非负，就像 ReLU 之后的
    特征。论文的规则给出卷积核的边长。
""")

nbt.add_code(nb, """
    # NBVAL_CHECK_OUTPUT
    torch.manual_seed(0)
    B, C_g, C_h, N_g, N_h = 2, 3, 4, 6, 4
    guided = torch.relu(torch.randn(B, C_g, N_g, N_g))    # v_g(x): the student's guided layer output
    hint = torch.relu(torch.randn(B, C_h, N_h, N_h))      # u_h(x): the teacher's hint
    k = N_g - N_h + 1                                     # the paper's kernel rule
    conv = torch.nn.Conv2d(C_g, C_h, kernel_size=k)       # the regressor r: conv, then the hint's ReLU
    with torch.no_grad():
        r = torch.relu(conv(guided))
    print(f"kernel {k}x{k}: r(v_g) {tuple(r.shape)}, hint {tuple(hint.shape)}, "
          f"{sum(p.numel() for p in conv.parameters())} parameters")
""", check_output=True)

nbt.add_prose(nb, r"""
    One output entry by hand: channel $c$ at position $(i, j)$ is the ReLU of the bias plus the
    weights times the $k \times k$ window of the guided map below it, summed over its channels.
""", r"""
    手算一个输出元素：位置 $(i, j)$ 上的通道 $c$，等于偏置加上权重与其下方 $k \times k$ 窗口（对所有输入通道
    求和）之积，再取 ReLU。
""")

nbt.add_code(nb, """
    # NBVAL_CHECK_OUTPUT
    n, c, i, j = 1, 2, 0, 3
    window = guided[n, :, i:i + k, j:j + k]                      # (C_g, k, k)
    pre = conv.bias[c] + (conv.weight[c] * window).sum()         # before the ReLU
    entry = torch.relu(pre)
    assert torch.allclose(entry, r[n, c, i, j])
    print(f"before the ReLU {pre.item():.6f}, r[{n}, {c}, {i}, {j}] = {entry.item():.6f}")
""", check_output=True)

nbt.add_prose(nb, r"""
    **The loss**, three ways: the paper's halved sum per example (averaged over the batch, as SGD
    does), the benchmark's mean over entries, and `fitnet_loss`. The first is the second times
    $C H W / 2$.
""", r"""
    **损失**的三种算法：论文的逐样本减半求和（再对批次取平均，如 SGD 所做），基准的对元素取平均，以及
    `fitnet_loss`。第一种等于第二种乘以 $C H W / 2$。
""")

nbt.add_code(nb, """
    # NBVAL_CHECK_OUTPUT
    paper = (0.5 * (hint - r).pow(2).sum(dim=(1, 2, 3))).mean()    # Eq. 3, mean over the examples
    mine = (hint - r).pow(2).mean()                                 # the benchmark's nn.MSELoss()
    assert torch.allclose(mine, fitnet_loss(r, hint))
    assert torch.allclose(paper, mine * C_h * N_h * N_h / 2)
    print(f"paper form {paper:.6f}, mean form {mine:.6f}, ratio {paper / mine:.1f} = C*H*W/2")
""", check_output=True)

nbt.add_prose(nb, r"""
    **Resolution.** Double both maps (each entry repeated 2x2): the mean is unchanged, the paper's
    sum grows four times. This is why `fitnet_loss`'s weight needs no `area_rescaled` factor at 16x16.
""", r"""
    **分辨率。** 把两张特征图都放大一倍（每个元素重复成 2x2）：平均值不变，论文的求和变为四倍。因此在 16x16
    下，`fitnet_loss` 的权重不需要 `area_rescaled` 系数。
""")

nbt.add_code(nb, """
    # NBVAL_CHECK_OUTPUT
    big_r, big_hint = (F.interpolate(t, scale_factor=2, mode="nearest") for t in (r, hint))
    big_paper = (0.5 * (big_hint - big_r).pow(2).sum(dim=(1, 2, 3))).mean()
    assert torch.allclose(fitnet_loss(big_r, big_hint), fitnet_loss(r, hint))
    print(f"mean form {fitnet_loss(big_r, big_hint):.6f} (unchanged), paper form x{big_paper / paper:.1f}")
""", check_output=True)

nbt.add_prose(nb, r"""
    **The regressor kdteach builds.** The models declare each stage's channels and stride (total
    down-sampling), so the method derives $r$ for any pair without running them: equal strides give
    the paper's $k = 1$ (a 1x1 conv, as for our tiny pair); a student map $s$ times larger gets a
    stride-$s$ conv, a map $s$ times smaller a stride-$s$ transposed conv (the benchmark's two cases
    at $s = 2$); each is followed by batch norm and a ReLU. Stages print as name channels/stride.
""", r"""
    **kdteach 构建的回归器。** 模型声明了每个阶段的通道数和步幅（总下采样倍数），所以方法无需运行模型就能为
    任意一对模型推出 $r$：步幅相同时就是论文的 $k = 1$（1x1 卷积，我们的小网络对就是这样）；学生特征图大 $s$
    倍时用步幅为 $s$ 的卷积，小 $s$ 倍时用步幅为 $s$ 的转置卷积（$s = 2$ 时即基准的两种情形）；之后都接批归一化
    和 ReLU。表中各阶段写作"名称 通道数/步幅"。
""")

nbt.add_code(nb, """
    # NBVAL_CHECK_OUTPUT
    from kdteach.models import create

    print(f"{'teacher -> student':<30}{'hint':<15}{'guided':<15}{'regressor':<26}{'params':>8}")
    for t_name, s_name in (("tiny_teacher", "tiny_student"), ("resnet32x4", "resnet8x4"),
                           ("resnet32x4", "shufflenetv2"), ("vgg13", "resnet8x4")):
        g, h = hint_stages(create(s_name), create(t_name), hint_layer=2)
        spec = regressor_spec(g, h)
        layer = f"{spec['kind']} k{spec['kernel']} s{spec['stride']} p{spec['padding']}"
        print(f"{t_name + ' -> ' + s_name:<30}{h.name + ' ' + str(h.channels) + '/' + str(h.stride):<15}"
              f"{g.name + ' ' + str(g.channels) + '/' + str(g.stride):<15}{layer:<26}{spec['parameters']:>8}")
""", check_output=True)

nbt.add_prose(nb, r"""
    **A bad input.** After the regressor the shapes must agree exactly; `fitnet_loss` says which
    argument is off.
""", r"""
    **错误输入。** 经过回归器后形状必须完全一致；`fitnet_loss` 会指出是哪个参数不对。
""")

nbt.add_code(nb, """
    try:
        fitnet_loss(r, hint[:, :2])
    except ValueError as e:
        print(e)
""")

nbt.add_prose(nb, r"""
    **The methods' terms on one real batch**, untrained tiny networks: stage 1 of `fitnet` has the
    hint term only; its stage 2 is KD; `fitnet_1stage` has cross-entropy and the hint throughout.
""", r"""
    **方法在一个真实批次上的损失项**（未训练的小网络）：`fitnet` 的阶段 1 只有提示项；阶段 2 就是 KD；
    `fitnet_1stage` 全程有交叉熵和提示项。
""")

nbt.add_code(nb, """
    teacher = zoo.teacher(budget=budget, progress=False, verbose=False)    # its accuracy: once, on the card
    device = next(teacher.parameters()).device
    x_b, y_b = data.example_batch(16, budget.dataset, resolution=budget.resolution, device=device)
    student0 = build_model(budget.student, K, seed=0).to(device)
    for name, stage in (("fitnet", "init"), ("fitnet", "main"), ("fitnet_1stage", "main")):
        terms = batch_losses(get_method(name), student0, teacher, x_b, y_b, stage=stage)
        print(f"{name:<14}{stage:<6}", {k: round(v.item(), 4) for k, v in terms.items()})
""")

# ---------------------------------------------------------------------------------------------- 4
nbt.add_prose(nb, r"""
    ## 4. Seeing the knowledge

    What does stage 1 do? We run it alone for the first seed (the library's `Trainer`, stopped after
    the `init` epochs), then compare, on a test image, the teacher's hint channels with the stage-1
    student's regressed guided features $r(v_g)$, and with the guided features of the student trained
    alone, which have no regressor.
""", r"""
    ## 4. 看见知识

    阶段 1 做了什么？我们对第一个随机种子单独运行它（库中的 `Trainer`，在 `init` 轮之后停下），然后在一张测试
    图片上，把教师的提示通道与阶段 1 学生经回归器后的被引导特征 $r(v_g)$ 比较，也与单独训练的学生的被引导特征
    比较（它没有回归器）。
""")

nbt.add_code(nb, """
    fitnet = get_method("fitnet")
    alone0, _ = zoo.student_baseline(budget=budget, seed=seeds[0], progress=False, verbose=False)
    (g_name,), (h_name,) = fitnet.student_features(alone0), fitnet.teacher_features(teacher)
    n_init = fitnet.stages(budget)[0].epochs
    stage1 = Trainer(fitnet, build_model(budget.student, K, seed=seeds[0]), teacher, budget, seed=seeds[0],
                     progress=False)
    stage1.fit(stop_after=n_init)                          # stage 1 ("init") only
    student1, regressor1 = stage1.student.eval(), stage1.extras["regressor"].eval()
    print("stage 1:", [(h["epoch"], h["stage"], round(h["loss"]["hint"], 4)) for h in stage1.history])

    test_split = budget_splits(budget)[1]
    x_test = data.normalize(test_split.images, budget.dataset).to(device)
    with torch.no_grad():
        u_h = extract(teacher, x_test, h_name)[1][h_name]
        v_g1 = extract(student1, x_test, g_name)[1][g_name]
        v_alone = extract(alone0.eval(), x_test, g_name)[1][g_name]
        r_g1 = regressor1(v_g1)
    print(f"hint {h_name} {tuple(u_h.shape[1:])}, guided {g_name} {tuple(v_g1.shape[1:])}; "
          f"stage-1 hint loss on the test split: {fitnet_loss(r_g1, u_h).item():.4f}")
""")

nbt.add_code(nb, """
    img = 3                                                # one test image
    fig = plot_hint_channels({"teacher hint u_h": u_h[img], "after stage 1: r(v_g)": r_g1[img],
                              "student alone: v_g": v_alone[img]}, channels=range(6),
                             title=f"Hint channels of test image {img} ({test_split.class_names[test_split.labels[img]]})")
    fig.set_dpi(80)
    fig
""")

nbt.add_prose(nb, r"""
    **Reading the figure.** Each column is one channel and **shares one colour scale** over its three
    rows; columns are scaled one by one. After stage 1 the regressed features take on the layout of
    the hint's channels. The student alone's channel $c$ has nothing to do with the teacher's channel $c$:
    nothing ties them, which is why a regressor sits in between even when the widths match.

    Is the knowledge in the student, or only in the regressor? `kdteach.analysis.hint_residual`
    asks the student alone: it fits the best affine 1x1 map from the guided features to the hint
    over all test positions and reports the hint variance it cannot explain, $1 - R^2$. The same
    measure applies to any student, so neither needs its own trained regressor.
""", r"""
    **读图。** 每一列是一个通道，三行**共用同一个颜色刻度**；各列分别缩放。阶段 1 之后，回归得到的特征再现了
    提示各通道的分布格局。单独训练的学生的第 $c$ 个通道与教师的第 $c$ 个通道毫无关系：没有任何东西把它们联系起来，
    所以即使宽度相同，中间也需要回归器。

    知识是在学生里，还是只在回归器里？`kdteach.analysis.hint_residual` 只问学生本身：它在所有测试位置上拟合
    从被引导特征到提示的最佳仿射 1x1 映射，报告它无法解释的提示方差 $1 - R^2$。同一个度量适用于任何学生，
    所以都不需要各自训练好的回归器。
""")

nbt.add_code(nb, """
    res_alone0 = hint_residual(alone0, teacher, x_test, g_name, h_name)
    res_stage1 = hint_residual(student1, teacher, x_test, g_name, h_name)
    print(f"unexplained hint variance (test split): student alone {res_alone0:.3f}, after stage 1 {res_stage1:.3f}")
    assert res_stage1 < res_alone0         # the direct effect of minimising the hint loss
""")

# ---------------------------------------------------------------------------------------------- 5
nbt.add_prose(nb, r"""
    ## 5. Experiment

    For every seed: the cached student trained alone and a `fitnet` student, both stages, from
    `run_experiment`. The headline is the mechanism: the hint variance the final student's guided
    layer leaves unexplained (`hint_residual`, test split, lower is closer to the teacher). The card
    asserts it for every seed, and nothing about accuracy.
""", r"""
    ## 5. 实验

    对每个随机种子：缓存的单独训练的学生，以及经过两个阶段的 `fitnet` 学生，均来自 `run_experiment`。标题
    结论是机制：最终学生的被引导层无法解释的提示方差（`hint_residual`，测试集，越低越接近教师）。结果卡片对每个
    随机种子断言这一点，对准确率不作任何断言。
""")

nbt.add_code(nb, """
    exp = run_experiment("fitnet", budget=budget, teacher=teacher)   # stage 1 + stage 2 per seed, recorded, checked
    alone = {s: exp.baselines[s][0] for s in exp.seeds}
    res = {(kind, s): hint_residual(model, teacher, x_test, g_name, h_name)
           for s in exp.seeds for kind, model in (("alone", alone[s]), ("fitnet", exp.runs[s].student))}
    mech = Mechanism(f"unexplained hint variance, 1 - R^2 of the best affine map {g_name} -> {h_name} "
                     "(hint_residual, test split)",
                     alone={s: res["alone", s] for s in exp.seeds}, method={s: res["fitnet", s] for s in exp.seeds},
                     lower_is_better=True, digits=3)
    card = exp.card(mech).check()   # asserts: the FitNet student's guided layer carries more of the hint, every seed
    card
""")

nbt.add_prose(nb, r"""
    **Stage 2 against stage 1, and FitNets against KD.** `fitnet`'s stage 2 *is* the `kd` method,
    so the cached KD student (from `kdteach zoo warm`) is its exact control: same teacher, schedule
    and weights, no stage 1. Per seed:
""", r"""
    **阶段 2 与阶段 1，FitNets 与 KD。** `fitnet` 的阶段 2 *就是* `kd` 方法，所以缓存的 KD 学生（来自
    `kdteach zoo warm`）是它的精确对照：相同的教师、训练计划和权重，只是没有阶段 1。逐个随机种子：
""")

nbt.add_code(nb, """
    exp_kd = run_experiment("kd", budget=budget, teacher=teacher)    # cached: no training here
    print(f"{'seed':<6}{'unexplained hint variance':>27}{'':>22}{'last-epoch test accuracy (%)':>32}")
    print(f"{'':<6}{'alone':>9}{'KD':>9}{'FitNet':>9}{'(stage 1)':>12}{'':>10}{'alone':>9}{'KD':>9}{'FitNet':>9}")
    for s in exp.seeds:
        r_kd = hint_residual(exp_kd.runs[s].student, teacher, x_test, g_name, h_name)
        s1 = f"{res_stage1:.3f}" if s == seeds[0] else "-"
        print(f"{s:<6}{res['alone', s]:>9.3f}{r_kd:>9.3f}{res['fitnet', s]:>9.3f}{s1:>12}{'':>10}"
              f"{exp.baselines[s][1]['last_acc']:>9.2f}{exp_kd.runs[s].last_acc:>9.2f}{exp.runs[s].last_acc:>9.2f}")
    hist = exp.runs[exp.seeds[0]].history
    assert [h["stage"] for h in hist] == ["init"] * n_init + ["main"] * budget.epochs
""")

nbt.add_prose(nb, r"""
    **Reading the table.** Stage 2 trains every layer with KD and nothing holds the guided layer to
    the hint: the stage-1 column against the final one shows how much of stage 1 survives, and the
    card measures what remains. The KD column is the same stage 2 without stage 1. Accuracy
    differences of a point or two at `ci` are within the standard error printed on the card.
""", r"""
    **读表。** 阶段 2 用 KD 训练所有层，没有任何东西把被引导层固定在提示附近：比较阶段 1 那一列和最终一列，
    可以看出阶段 1 的效果保留了多少，卡片度量的就是保留下来的部分。KD 那一列是没有阶段 1 的同一个阶段 2。
    `ci` 下一两个百分点的准确率差异在卡片打印的标准误之内。
""")

# ---------------------------------------------------------------------------------------------- 6
nbt.add_prose(nb, r"""
    ## 6. The paper's numbers and ours

    The paper's students are deeper and thinner than their maxout teachers; on CIFAR-10 a student
    with about 10.4 times fewer parameters than its teacher is more accurate than it (abstract). The CRD benchmark ran the single-stage variant on CIFAR-100 with residual networks,
    where the student is the *shallower* one, as in our tiny pair.
""", r"""
    ## 6. 论文结果与我们的结果

    论文中的学生比它们的 maxout 教师更深、更瘦；在 CIFAR-10 上，一个参数约为教师 1/10.4 的学生比教师更准确
    （摘要）。CRD 基准在 CIFAR-100 上用残差网络运行了单阶段变体，那里学生是*更浅*的一方，与我们的
    小网络对一样。
""")

nbt.add_code(nb, """
    # Romero et al., ICLR 2015, abstract: CIFAR-10, the FitNet student has about 10.4x fewer parameters than its teacher
    # and outperforms it
    paper = {"CIFAR-10 teacher/student parameter ratio": 10.4}
    # Secondary source: the CRD benchmark's README (RepDistiller), CIFAR-100, 240 epochs, single-stage FitNet
    # (-a 0 -b 100), test accuracy (%): (teacher, student alone, KD, FitNet)
    crd = {"wrn-40-2 -> wrn-16-2": (75.61, 73.26, 74.92, 73.58), "wrn-40-2 -> wrn-40-1": (75.61, 71.98, 73.54, 72.24),
           "resnet56 -> resnet20": (72.34, 69.06, 70.66, 69.21), "resnet110 -> resnet20": (74.31, 69.06, 70.67, 68.99),
           "resnet110 -> resnet32": (74.31, 71.14, 73.08, 71.06), "resnet32x4 -> resnet8x4": (79.42, 72.50, 73.33, 73.50),
           "vgg13 -> vgg8": (74.64, 70.36, 72.98, 71.02)}
    print(f"paper: {paper}")
    print(f"{'CRD benchmark, CIFAR-100':<26}{'teacher':>8}{'alone':>7}{'KD':>7}{'FitNet':>8}{'FitNet - alone':>16}")
    for pair_name, (t, a, kd, fn) in crd.items():
        print(f"{pair_name:<26}{t:>8.2f}{a:>7.2f}{kd:>7.2f}{fn:>8.2f}{fn - a:>+16.2f}")
    print(f"{'ours (' + budget.name + ', mean over seeds)':<26}{'(card)':>8}"
          f"{sum(exp.baselines[s][1]['last_acc'] for s in exp.seeds) / len(exp.seeds):>7.2f}"
          f"{sum(exp_kd.runs[s].last_acc for s in exp.seeds) / len(exp.seeds):>7.2f}"
          f"{sum(exp.runs[s].last_acc for s in exp.seeds) / len(exp.seeds):>8.2f}   (two-stage fitnet)")
""")

nbt.add_prose(nb, r"""
    **An honest reading.**

    - *The setting decides.* FitNets were designed for a thin, deep student that is hard to train
      from scratch; there a middle-layer target helps most. With residual students, batch norm and
      240 epochs (the benchmark), single-stage FitNet gains -0.1 to +1.0 points over the student
      alone and trails KD on six of the seven pairs.
    - *Our `fitnet` is not the benchmark's row*: it is the paper's two stages with KD in stage 2, so
      its control is the KD student of section 5, and the difference between them is stage 1 alone.
    - *Our setting is far smaller*: a CIFAR-10 subset at 16x16, tiny networks, 3 + 20 epochs and
      1,017 test images; one or two points of accuracy, of either sign, are noise.
""", r"""
    **如实解读。**

    - *设定决定结果。* FitNets 是为难以从头训练的瘦深学生设计的；在那里，中间层的目标帮助最大。对于带批归一化、
      训练 240 轮的残差学生（基准），单阶段 FitNet 比单独训练的学生提高 -0.1 到 +1.0 个百分点，并在七对中的
      六对上落后于 KD。
    - *我们的 `fitnet` 不是基准中的那一行*：它是论文的两阶段，阶段 2 用 KD，所以它的对照是第 5 节的 KD 学生，
      两者的差别只在阶段 1。
    - *我们的设定小得多*：16x16 的 CIFAR-10 子集、小网络、3 + 20 轮、1,017 张测试图片；一两个百分点的准确率
      差异，无论正负，都是噪声。
""")

nbt.add_prose(nb, r"""
    ### Deeper: deviations from the paper

    - *Networks and data*: residual tiny nets (students shallower than the teacher) instead of maxout
      networks with thin, deep students; a CIFAR-10 subset at 16x16.
    - *Stage 1* runs `init_epochs` epochs (the budget's, the length the CRD benchmark gives
      two-stage methods: 30 of 240, 3 at `ci`) at the budget's initial learning rate held constant;
      its optimiser holds the whole student but only the layers up to the guided one receive
      gradients (SGD skips parameters without one). Their batch-norm statistics update as usual.
    - *Stage 2* uses the `kd` method's weights; the paper's own KD weighting in stage 2 is not
      reproduced. The regressor is conv + batch norm + ReLU, the benchmark's `ConvReg`.
    - *The loss* is the mean over entries (benchmark), not the paper's halved sum; stage 1 weighs it
      by 1 (the benchmark's convention for first stages).
""", r"""
    ### 深入：与论文的差异

    - *网络与数据*：用残差小网络（学生比教师浅），而不是 maxout 网络和瘦深学生；用 16x16 的 CIFAR-10 子集。
    - *阶段 1* 运行 `init_epochs` 轮（取计算预算的值，即 CRD 基准给两阶段方法的长度：240 轮中的 30 轮，`ci` 下
      3 轮），学习率固定为计算预算的初始值；它的优化器包含整个学生，但只有被引导层及之前的层会得到梯度（SGD 跳过
      没有梯度的参数）。这些层的批归一化统计量照常更新。
    - *阶段 2* 使用 `kd` 方法的权重；没有复现论文自己在阶段 2 的 KD 加权方式。回归器是卷积 + 批归一化 + ReLU，
      即基准的 `ConvReg`。
    - *损失*是对元素的平均（基准），而不是论文的减半求和；阶段 1 的权重为 1（基准对第一阶段的惯例）。
""")

# ---------------------------------------------------------------------------------------------- 7
nbt.add_prose(nb, r"""
    ## 7. Interactive

    **Regressor explorer.** Pick a teacher, a student, the hint layer and the input side: it shows
    both stages, the regressor FitNets needs between them, and its size next to the student's. A pair
    whose stage lists are too short for the chosen layer is reported, not drawn. Nothing trains.
""", r"""
    ## 7. 交互

    **回归器探索器。** 选择教师、学生、提示层和输入边长：它显示两个阶段、FitNets 在它们之间需要的回归器，以及
    回归器与学生相比的大小。如果某个模型的阶段数不够所选的层，它会报告原因，而不是画出来。不做任何训练。
""")

nbt.add_code(nb, """
    from kdteach.widgets import RegressorExplorer

    explorer = RegressorExplorer(teacher="resnet32x4", student="shufflenetv2", hint_layer=2, resolution=32)
    explorer
""")

nbt.add_prose(nb, r"""
    **All runs of this budget**, from every notebook you have run:
""", r"""
    **本计算预算下的全部运行**，来自你运行过的每一本笔记：
""")

nbt.add_code(nb, """
    from kdteach.widgets import results_dashboard

    results_dashboard(exp.budget)     # every run recorded under this budget; one filter rule everywhere
""")

# ---------------------------------------------------------------------------------------------- 8
nbt.add_prose(nb, r"""
    ## 8. Summary, exercises, references

    **Summary.**
    - A hint is a teacher's hidden layer output; a regressor maps the student's guided layer onto
      its shape (the paper: a conv with $k = N_g - N_h + 1$; kdteach: from the declared strides, for
      any pair), and $\mathcal{L}_{fitnet}$ is the mean squared difference. Its weight does not depend
      on the resolution.
    - `fitnet` is the paper's two stages (hint with weight 1, then KD); `fitnet_1stage` the
      benchmark's one stage (CE + 100 x hint). After stage 1 the guided layer explains more of the hint than the student
      alone's; part of that survives stage 2 (the card, every seed).

    **Exercises.**
    1. *One stage or two* (ci: about 40 s). `exp1 = run_experiment("fitnet_1stage", budget=budget,
       teacher=teacher)`; compute `hint_residual` for its students. With the hint loss active for the
       whole schedule, is its guided layer closer to the hint than the two-stage student's? Compare
       the accuracies with the card's standard error.
    2. *Another guided layer* (ci: about 45 s). `run_experiment("fitnet", budget=budget,
       teacher=teacher, hparams={"hint_layer": 3})` guides the last stage instead. Measure
       `hint_residual` on `layer3` and compare with the KD student's.
    3. *A heavier stage 1* (ci: about 45 s). Run `fitnet` with `hparams={"hint_weight": 100.0}` and
       compare, per conv layer, the weight norms of its students with the card's (`model.named_parameters()`).
       Batch norm makes a layer's effective learning rate scale as $1 / \lVert w \rVert^2$: what does that
       predict for stage 2, and what do the accuracies say?
    4. *Regressor sizes* (ci: no run). With the explorer, find the zoo pairs that need a transposed
       conv at `hint_layer` 2, and the pair whose regressor is largest relative to its student.

    **References.**
    - A. Romero, N. Ballas, S. E. Kahou, A. Chassang, C. Gatta, Y. Bengio. FitNets: Hints for Thin
      Deep Nets. ICLR 2015; arXiv:1412.6550.
    - G. Hinton, O. Vinyals, J. Dean. Distilling the Knowledge in a Neural Network. NIPS 2014 Deep
      Learning Workshop; arXiv:1503.02531.
    - Y. Tian, D. Krishnan, P. Isola. Contrastive Representation Distillation. ICLR 2020; code and
      benchmark: <https://github.com/HobbitLong/RepDistiller>.
    - A. Krizhevsky. Learning Multiple Layers of Features from Tiny Images. Technical report, 2009.
""", r"""
    ## 8. 小结、练习与参考文献

    **小结。**
    - 提示是教师某个隐藏层的输出；回归器把学生的被引导层映射成它的形状（论文：$k = N_g - N_h + 1$ 的卷积；
      kdteach：根据声明的步幅，适用于任意一对模型），$\mathcal{L}_{fitnet}$ 是平方差的平均。它的权重不依赖
      分辨率。
    - `fitnet` 是论文的两个阶段（先用权重 1 的提示，后 KD）；`fitnet_1stage` 是基准的单阶段（交叉熵 + 100 x 提示）。
      阶段 1 之后，被引导层对提示的解释好于单独训练的学生；其中一部分在阶段 2 之后仍然保留（结果卡片，每个
      随机种子）。

    **练习。**
    1. *一个阶段还是两个*（ci：约 40 秒）。运行 `exp1 = run_experiment("fitnet_1stage", budget=budget,
       teacher=teacher)`，对它的学生计算 `hint_residual`。提示损失在整个训练计划中都起作用时，它的被引导层
       是否比两阶段学生更接近提示？把准确率与卡片上的标准误比较。
    2. *换一个被引导层*（ci：约 45 秒）。`run_experiment("fitnet", budget=budget, teacher=teacher,
       hparams={"hint_layer": 3})` 改为引导最后一个阶段。在 `layer3` 上计算 `hint_residual`，并与 KD 学生比较。
    3. *更重的阶段 1*（ci：约 45 秒）。用 `hparams={"hint_weight": 100.0}` 运行 `fitnet`，逐个卷积层比较其学生与
       卡片中学生的权重范数（`model.named_parameters()`）。批归一化使一层的有效学习率按 $1 / \lVert w \rVert^2$
       缩放：这对阶段 2 意味着什么？准确率又说明了什么？
    4. *回归器的大小*（ci：无需训练）。用探索器找出在 `hint_layer` 为 2 时需要转置卷积的模型对，以及回归器相对
       学生最大的那一对。

    **参考文献。**
    - A. Romero, N. Ballas, S. E. Kahou, A. Chassang, C. Gatta, Y. Bengio. FitNets: Hints for Thin
      Deep Nets. ICLR 2015; arXiv:1412.6550.
    - G. Hinton, O. Vinyals, J. Dean. Distilling the Knowledge in a Neural Network. NIPS 2014 Deep
      Learning Workshop; arXiv:1503.02531.
    - Y. Tian, D. Krishnan, P. Isola. Contrastive Representation Distillation. ICLR 2020；代码与基准：
      <https://github.com/HobbitLong/RepDistiller>。
    - A. Krizhevsky. Learning Multiple Layers of Features from Tiny Images. Technical report, 2009.
""")

nbt.write_notebook(nb, OUT)
print(f"wrote {OUT}")
