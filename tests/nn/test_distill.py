"""CE, label smoothing, KD and Tf-KD losses equal hand-computed values; the teacher is frozen."""
import math

import pytest
import torch
from torch import nn

from crossmedia.nn.distill import (DEFAULTS, Distillation, kd_loss, label_smoothing_loss, tfkd_reg_loss,
                                   virtual_teacher)

Z = [1.0, 0.0, -1.0]  # one sample, K = 3, label 0
T_LOGITS = [0.0, 1.0, 0.0]


def _softmax(v, t=1.0):
    e = [math.exp(x / t) for x in v]
    return [x / sum(e) for x in e]


def _kl(p, q):
    return sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q))


def _ce(v, y):
    return -math.log(_softmax(v)[y])


logits = torch.tensor([Z], dtype=torch.float64)
labels = torch.tensor([0])


def test_cross_entropy_by_hand():
    expected = math.log(math.e + 1 + 1 / math.e) - 1.0  # −log(e¹ / (e¹ + e⁰ + e⁻¹))
    assert Distillation("ce")(logits, labels).item() == pytest.approx(expected, abs=1e-12)


def test_label_smoothing_spreads_epsilon_over_the_other_classes():
    q = _softmax(Z)
    expected = -(0.9 * math.log(q[0]) + 0.05 * math.log(q[1]) + 0.05 * math.log(q[2]))  # ε/(K−1) = 0.05
    assert label_smoothing_loss(logits, labels, epsilon=0.1).item() == pytest.approx(expected, abs=1e-12)
    assert Distillation("ls")(logits, labels).item() == pytest.approx(expected, abs=1e-12)  # default ε = 0.1


def test_kd_scales_the_kl_by_t_squared():
    alpha, t = 0.5, 2.0
    kl = _kl(_softmax(T_LOGITS, t), _softmax(Z, t))
    expected = (1 - alpha) * _ce(Z, 0) + alpha * t * t * kl
    got = kd_loss(logits, labels, torch.tensor([T_LOGITS], dtype=torch.float64), alpha=alpha, temperature=t)
    assert got.item() == pytest.approx(expected, abs=1e-12)
    # T² is there: the same loss at τ = 1 differs by exactly the factor on the KL term
    assert kl * t * t == pytest.approx((got.item() - (1 - alpha) * _ce(Z, 0)) / alpha, abs=1e-12)


def test_virtual_teacher_is_softmax_of_the_designed_probabilities():
    p = virtual_teacher(torch.tensor([0, 2]), 3, a=0.99, temperature=20.0, dtype=torch.float64)
    # p^d = (0.99, 0.005, 0.005); softmax(p^d / 20) = e^0.0495, e^0.00025, e^0.00025 normalised
    assert p[0].tolist() == pytest.approx([0.3443661085, 0.3278169457, 0.3278169457], abs=1e-9)
    assert p[1].tolist() == pytest.approx([0.3278169457, 0.3278169457, 0.3443661085], abs=1e-9)
    sharp = virtual_teacher(torch.tensor([1]), 3, a=0.9, temperature=1.0)[0].tolist()
    assert sharp == pytest.approx(_softmax([0.05, 0.9, 0.05]), abs=1e-7)


def test_tfkd_reg_by_hand_with_reference_defaults():
    assert DEFAULTS["tfkd-reg"] == {"alpha": 0.1, "temperature": 20.0, "a": 0.99, "multiplier": 1.0}
    teacher = _softmax([0.99, 0.005, 0.005], 20.0)
    expected = 0.9 * _ce(Z, 0) + 0.1 * _kl(teacher, _softmax(Z))  # no τ on the student, no τ²
    assert tfkd_reg_loss(logits, labels).item() == pytest.approx(expected, abs=1e-9)
    assert Distillation("tfkd-reg")(logits, labels).item() == pytest.approx(expected, abs=1e-9)


def test_batch_mean_over_samples():
    z = torch.tensor([Z, T_LOGITS], dtype=torch.float64)
    y = torch.tensor([0, 2])
    expected = (_ce(Z, 0) + _ce(T_LOGITS, 2)) / 2
    assert Distillation("ce")(z, y).item() == pytest.approx(expected, abs=1e-12)
    both = tfkd_reg_loss(z, y).item()
    one = [tfkd_reg_loss(z[i:i + 1], y[i:i + 1]).item() for i in range(2)]
    assert both == pytest.approx(sum(one) / 2, abs=1e-12)


def test_teacher_is_frozen_kept_out_of_the_state_and_gets_no_gradients():
    torch.manual_seed(0)
    student, teacher = nn.Linear(4, 3), nn.Linear(4, 3)
    teacher.train()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    loss_fn = Distillation("tfkd-self", {"alpha": 0.5, "temperature": 4.0})
    loss_fn.attach_teacher(teacher)
    holder = nn.ModuleDict({"student": student, "loss": loss_fn})
    assert not teacher.training and all(not p.requires_grad for p in teacher.parameters())
    assert set(holder.state_dict()) == {"student.weight", "student.bias"}  # the teacher is not saved
    assert len(list(holder.parameters())) == 2
    holder.train()  # a parent's train() does not wake the teacher
    assert not teacher.training
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    optimizer = torch.optim.SGD(holder.parameters(), lr=0.5)
    for _ in range(3):
        optimizer.zero_grad()
        loss_fn(student(x), y, x).backward()
        optimizer.step()
    assert all(p.grad is None for p in teacher.parameters())
    assert student.weight.grad is not None
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    expected = kd_loss(student(x), y, teacher(x), alpha=0.5, temperature=4.0)
    assert loss_fn(student(x), y, x).item() == pytest.approx(expected.item(), abs=1e-6)


def test_teacher_methods_without_teacher_and_bad_arguments_are_refused():
    with pytest.raises(RuntimeError, match="attach_teacher"):
        Distillation("kd")(logits, labels, logits)
    with pytest.raises(ValueError, match="choose one of ce, ls, kd, tfkd-self, tfkd-reg"):
        Distillation("focal")
    with pytest.raises(ValueError, match="takes no argument temperature"):
        Distillation("ls", {"temperature": 2.0})


def test_tfkd_reg_is_label_smoothing_against_its_virtual_teacher():
    z = torch.randn(5, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 3, 9, 3, 1])
    p = virtual_teacher(y, 10, dtype=torch.float64)
    assert p[0, 0].item() == pytest.approx(0.1045388, abs=1e-6) and p[0, 1].item() == pytest.approx(0.0994957, abs=1e-6)
    target = 0.9 * torch.nn.functional.one_hot(y, 10).double() + 0.1 * p  # (1 − α) 1_y + α p^τ_d
    entropy = -(p * p.log()).sum(dim=1).mean()
    cross = -(target * z.log_softmax(dim=1)).sum(dim=1).mean()
    assert tfkd_reg_loss(z, y).item() == pytest.approx((cross - 0.1 * entropy).item(), abs=1e-12)
