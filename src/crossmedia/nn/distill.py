"""Classification losses with soft targets: CE, label smoothing, KD and Teacher-free KD (one selector).

Yuan et al., "Revisiting Knowledge Distillation via Label Smoothing Regularization", CVPR 2020
(arXiv 1909.11723; reference code yuanli2333/Teacher-free-Knowledge-Distillation,
``my_loss_function.py``). With student logits z (B, K), labels y (B,) and q^τ = softmax(z / τ):

* ``"ce"``: L = CE(q, y) = −log q_y.
* ``"ls"``, label smoothing (Sec. 3): the target puts 1 − ε on y and ε / (K − 1) on every other
  class (the reference's spread, not Szegedy's ε / K); L = −Σ_k u_k log q_k. Reference ε = 0.1.
* ``"kd"``, Hinton's KD from a teacher's logits t (Eq. 2):
  L = (1 − α) CE(q, y) + α τ² KL(p^τ_t ‖ q^τ), p^τ_t = softmax(t / τ).
* ``"tfkd-self"``, Tf-KD self (Sec. 5, Eq. 8): the same loss, the teacher being a pre-trained copy
  of the student itself (frozen; any zoo classifier by name).
* ``"tfkd-reg"``, Tf-KD reg (Sec. 5, Eq. 9): a hand-designed virtual teacher
  p^d_k = a if k = y else (1 − a) / (K − 1), softened by temperature as p^τ_d = softmax(p^d / τ)
  (the reference softens the *probabilities* p^d, so at τ = 20 the virtual teacher is close to
  uniform with a small peak on y), and L = (1 − α) CE(q, y) + α KL(p^τ_d ‖ q) (no τ on the
  student, no τ²). Since KL(p ‖ q) = −Σ p log q − H(p), this is, up to a constant, cross-entropy
  against the target (1 − α) 1_y + α p^τ_d: label smoothing whose smoothing distribution is the
  virtual teacher. With the defaults and K = 10, p^τ_d is 0.1045 on y and 0.0995 elsewhere, so
  the target is 0.9105 on y and 0.00995 on each other class: label smoothing with ε ≈ 0.09.

KL(p ‖ q) = Σ_k p_k (log p_k − log q_k), summed over classes and averaged over the batch
(``batchmean``). The reference calls ``nn.KLDivLoss()`` whose old default averages over all B·K
elements, i.e. it computes KL / K, and makes up for it with a ``multiplier``: Tf-KD reg's
ResNet-18 CIFAR-100 config uses multiplier 100 = K, which is exactly the per-sample KL used here.
Our ``multiplier`` (default 1) scales the per-sample KL term further. The reference's KD and
self-teacher configs do not all make up for it: its MobileNetV2 and ShuffleNetV2 self-teacher
configs use multiplier 1, i.e. KL / K, so our default ``tfkd-self`` (multiplier 1: the paper's
Eq. 8 as written) weighs the distillation term K times more than those runs did (10x at K = 10);
``distillation_args={"multiplier": 1 / K}`` reproduces them, and the ResNet-18 self config
(τ = 6, multiplier 50) is our multiplier 50 / K.

Defaults (the reference's): ``ls`` ε = 0.1; ``kd`` and ``tfkd-self`` α = 0.95, τ = 20 (its KD and
MobileNetV2 self-teacher configs; the ResNet-18 self config uses τ = 6); ``tfkd-reg`` a = 0.99
(hard-coded in ``loss_kd_regularization``), τ = 20, α = 0.1 (the ResNet-18 config).

Where it applies: single-label heads (softmax over K exclusive classes): the classify task and the
pose-video action classifier. It does not apply to multi-label heads such as the caption task's
scene tagger (independent sigmoids, K binary problems): there is no softmax over classes to soften,
no single correct class for the virtual teacher to peak on, and smoothing each binary target is a
different method.

Shapes: logits and teacher logits (B, K) float, labels (B,) long; every loss returns a scalar.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["METHODS", "DEFAULTS", "label_smoothing_targets", "label_smoothing_loss", "kd_loss",
           "virtual_teacher", "tfkd_reg_loss", "Distillation"]

Method = Literal["ce", "ls", "kd", "tfkd-self", "tfkd-reg"]
METHODS: tuple[str, ...] = ("ce", "ls", "kd", "tfkd-self", "tfkd-reg")
DEFAULTS: dict[str, dict[str, float]] = {  # the reference code's values (module docstring)
    "ce": {},
    "ls": {"epsilon": 0.1},
    "kd": {"alpha": 0.95, "temperature": 20.0, "multiplier": 1.0},
    "tfkd-self": {"alpha": 0.95, "temperature": 20.0, "multiplier": 1.0},
    "tfkd-reg": {"alpha": 0.1, "temperature": 20.0, "a": 0.99, "multiplier": 1.0},
}
_TEACHER_METHODS = ("kd", "tfkd-self")


# helpers

def _kl(target: Tensor, log_q: Tensor) -> Tensor:
    """KL(target ‖ q) per sample, averaged over the batch: (B, K), (B, K) -> ()."""
    return F.kl_div(log_q, target, reduction="batchmean")


# functions

def label_smoothing_targets(labels: Tensor, num_classes: int, *, epsilon: float = 0.1,
                            dtype: torch.dtype = torch.float32) -> Tensor:
    """u (B, K): 1 − ε on the label, ε / (K − 1) on each other class."""
    targets = torch.full((len(labels), num_classes), epsilon / (num_classes - 1), device=labels.device, dtype=dtype)
    return targets.scatter_(1, labels[:, None], 1.0 - epsilon)  # (B, K)


def label_smoothing_loss(logits: Tensor, labels: Tensor, *, epsilon: float = 0.1) -> Tensor:
    """−Σ_k u_k log q_k, averaged over the batch."""
    targets = label_smoothing_targets(labels, logits.shape[1], epsilon=epsilon, dtype=logits.dtype)
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def kd_loss(logits: Tensor, labels: Tensor, teacher_logits: Tensor, *, alpha: float = 0.95,
            temperature: float = 20.0, multiplier: float = 1.0) -> Tensor:
    """(1 − α) CE(q, y) + α τ² · multiplier · KL(softmax(t / τ) ‖ softmax(z / τ)); Tf-KD self too."""
    t = temperature
    soft = _kl(F.softmax(teacher_logits.detach() / t, dim=1), F.log_softmax(logits / t, dim=1))
    return (1.0 - alpha) * F.cross_entropy(logits, labels) + alpha * t * t * multiplier * soft


def virtual_teacher(labels: Tensor, num_classes: int, *, a: float = 0.99, temperature: float = 20.0,
                    dtype: torch.dtype = torch.float32) -> Tensor:
    """Tf-KD reg's teacher distribution (B, K): softmax(p^d / τ), p^d = a on y, (1 − a) / (K − 1) elsewhere."""
    p_d = label_smoothing_targets(labels, num_classes, epsilon=1.0 - a, dtype=dtype)  # (B, K)
    return F.softmax(p_d / temperature, dim=1)


def tfkd_reg_loss(logits: Tensor, labels: Tensor, *, alpha: float = 0.1, temperature: float = 20.0,
                  a: float = 0.99, multiplier: float = 1.0) -> Tensor:
    """(1 − α) CE(q, y) + α · multiplier · KL(virtual teacher ‖ q)."""
    teacher = virtual_teacher(labels, logits.shape[1], a=a, temperature=temperature, dtype=logits.dtype)
    soft = _kl(teacher, F.log_softmax(logits, dim=1))
    return (1.0 - alpha) * F.cross_entropy(logits, labels) + alpha * multiplier * soft


# classes

class Distillation(nn.Module):
    """The loss of a single-label classifier, chosen by ``method`` (one of :data:`METHODS`).

    ``args`` overrides the method's :data:`DEFAULTS` (unknown keys are refused). ``kd`` and
    ``tfkd-self`` need a teacher: :meth:`attach_teacher` freezes it (eval mode, no gradients) and
    keeps it outside this module's parameters and ``state_dict``, so optimisers, checkpoints and
    exported weights never see it. ``forward(logits, labels, inputs)`` runs the teacher on
    ``inputs`` under ``torch.no_grad``.
    """

    def __init__(self, method: Method = "ce", args: dict | None = None):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"unknown distillation method {method!r}; choose one of {', '.join(METHODS)}")
        unknown = sorted(set(args or {}) - set(DEFAULTS[method]))
        if unknown:
            allowed = ", ".join(DEFAULTS[method]) or "none"
            raise ValueError(f"distillation {method!r} takes no argument {', '.join(unknown)} (it takes: {allowed})")
        self.method = method
        self.args = {**DEFAULTS[method], **(args or {})}
        self.__dict__["_teacher"] = None  # not a submodule: never trained, saved or moved by the parent

    def check_teacher_name(self, teacher: str | None, *, example: str) -> None:
        """Refuse a missing teacher for ``kd`` / ``tfkd-self`` and a teacher for the other methods
        (``teacher`` is an owner's init argument, a zoo name such as ``example``)."""
        if self.needs_teacher and not teacher:
            raise ValueError(f"distillation {self.method!r} needs a teacher: set model.init_args.teacher to a zoo "
                             f"classifier of the same classes (e.g. {example})")
        if teacher and not self.needs_teacher:
            raise ValueError(f"distillation {self.method!r} uses no teacher, but teacher={teacher!r} was given")

    @property
    def needs_teacher(self) -> bool:
        return self.method in _TEACHER_METHODS

    @property
    def teacher(self) -> nn.Module | None:
        return self.__dict__["_teacher"]

    def attach_teacher(self, teacher: nn.Module, logits: Callable[[Tensor], Tensor] | None = None) -> nn.Module:
        """Freeze ``teacher`` (eval mode, ``requires_grad=False``) and use it; returns it.

        ``logits(inputs)`` gives the teacher's logits (default: calling ``teacher``), e.g. a bound
        method of a teacher whose ``forward`` is not its logits.
        """
        teacher.eval().requires_grad_(False)
        self.__dict__["_teacher"] = teacher
        self.__dict__["_teacher_logits"] = logits or teacher
        return teacher

    def forward(self, logits: Tensor, labels: Tensor, inputs: Tensor | None = None) -> Tensor:
        """The scalar loss of logits (B, K) for labels (B,); ``inputs`` feed the teacher (kd, tfkd-self)."""
        if self.method == "ce":
            return F.cross_entropy(logits, labels)
        if self.method == "ls":
            return label_smoothing_loss(logits, labels, **self.args)
        if self.method == "tfkd-reg":
            return tfkd_reg_loss(logits, labels, **self.args)
        if self.teacher is None or inputs is None:
            raise RuntimeError(f"distillation {self.method!r} needs a teacher and the inputs it reads: "
                               f"attach_teacher(model) first (a zoo classifier named by the module's "
                               f"'teacher' init argument)")
        self.teacher.to(logits.device)
        with torch.no_grad():
            teacher_logits = self.__dict__["_teacher_logits"](inputs).float()  # (B, K)
        if teacher_logits.shape != logits.shape:
            raise ValueError(f"the teacher gives logits of shape {tuple(teacher_logits.shape)} but the student "
                             f"{tuple(logits.shape)}: the teacher must classify the same K classes")
        return kd_loss(logits, labels, teacher_logits, **self.args)

    def extra_repr(self) -> str:
        return f"method={self.method!r}, args={self.args}"
