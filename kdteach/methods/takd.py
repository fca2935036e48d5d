"""TAKD: Mirzadeh, Farajtabar, Li, Levine, Matsukawa, Ghasemzadeh, "Improved Knowledge Distillation
via Teacher Assistant", AAAI 2020 (arXiv:1902.03393).

The sequence protocol's reference method. When the teacher is much larger than the student, KD
helps less (the "gap"); TAKD inserts teacher assistants of intermediate size and distils along the
chain teacher -> assistant(s) -> student, each link with Hinton et al.'s KD loss:

    L = ce_weight · CE(z_s, y) + kd_weight · T² KL(softmax(z_t/T) ‖ softmax(z_s/T))

with z_t the *previous link's* logits. Each link is an ordinary offline run; the chain is run by
:func:`kdteach.train.run_chain` (cached and resumable link by link, records linked), which
:func:`kdteach.train.distill` calls for this method (``protocol = "sequence"``).

Hyper-parameters: KD's (:class:`~kdteach.methods.kd.KD`, the CRD benchmark's weights and T) and
``assistants``: the assistants' model names, comma-separated, teacher side first (``"resnet56"``,
``"resnet56,resnet32"``), or ``"auto"`` for the assistant kdteach pairs with a known teacher and
student (:data:`AUTO_ASSISTANTS`; ``tiny_assistant`` between the ``ci`` budget's tiny nets).
"""

from __future__ import annotations

from types import MappingProxyType

from .kd import KD

#: ``"auto"`` assistants for (teacher, student) pairs of the zoo: one intermediate network each.
AUTO_ASSISTANTS = MappingProxyType({
    ("tiny_teacher", "tiny_student"): ("tiny_assistant",),
    ("resnet110", "resnet20"): ("resnet56",),
    ("resnet56", "resnet20"): ("resnet32",),
    ("resnet110", "resnet8"): ("resnet32",),
    ("wrn_40_2", "wrn_16_2"): ("wrn_40_1",),
})

#: Assistants of graded size for a teacher -> student pair, larger first: what the takd notebook
#: compares (accuracy against the teacher-student gap) and :func:`kdteach.zoo.warm` caches as the
#: pair's shared teachers (the teacher -> assistant links).
GRADED_ASSISTANTS = MappingProxyType({
    ("tiny_teacher", "tiny_student"): ("tiny_assistant", "tiny_assistant_small"),
    ("resnet32x4", "resnet8x4"): ("vgg8", "wrn_40_2"),
})


class TAKD(KD):
    """KD along the chain teacher -> assistants -> student; every link has KD's terms ``ce``, ``kd``."""

    name = "takd"
    paper = ("S. I. Mirzadeh, M. Farajtabar, A. Li, N. Levine, A. Matsukawa, H. Ghasemzadeh, Improved Knowledge "
             "Distillation via Teacher Assistant, AAAI 2020 (https://arxiv.org/abs/1902.03393)")
    defaults = MappingProxyType({**KD.defaults, "assistants": "auto"})
    protocol = "sequence"
    #: hyper-parameters that only choose the chain's architectures (left out of the links' cache keys)
    chain_hparams = ("assistants",)

    def validate_hparams(self) -> None:
        super().validate_hparams()
        a = self.hparams["assistants"]
        if not isinstance(a, str) or not a.strip():
            raise ValueError(f"hyper-parameter 'assistants' of method 'takd' must be 'auto' or comma-separated model "
                             f"names, got {a!r}")

    def chain(self, teacher: str, student: str) -> list[str]:
        """The architectures of the chain, teacher first: ``[teacher, *assistants, student]``.

        Raises:
            ValueError: ``assistants="auto"`` for a pair without a known assistant.
        """
        a = self.hparams["assistants"].strip()
        if a == "auto":
            if (teacher, student) not in AUTO_ASSISTANTS:
                known = ", ".join(f"{t}->{s}" for t, s in AUTO_ASSISTANTS)
                raise ValueError(f"method 'takd' has no automatic assistant for {teacher} -> {student} (known: {known}); "
                                 f"pass hparams={{'assistants': '<model>[,<model>...]'}}")
            middle = list(AUTO_ASSISTANTS[(teacher, student)])
        else:
            middle = [name.strip() for name in a.split(",")]
        return [teacher, *middle, student]
