"""The action classifier's Tf-KD switch: CE by default (the zoo entry unchanged), Tf-KD reg one argument away."""
import pytest
import torch
import torch.nn.functional as F

from crossmedia.nn.distill import tfkd_reg_loss
from crossmedia.tasks.posevideo.estimator import ActionClassifier

ACTIONS = ["wave", "clap", "walk"]


def _batch():
    g = torch.Generator().manual_seed(0)
    keypoints = torch.rand(4, 16, 17, 3, generator=g) * 63
    keypoints[..., 2] = 2.0
    return {"keypoints": keypoints, "action": torch.tensor([0, 1, 2, 1])}


@pytest.mark.parametrize("distillation, expected", [
    ("ce", lambda logits, y: F.cross_entropy(logits, y)),
    ("tfkd-reg", lambda logits, y: tfkd_reg_loss(logits, y)),
])
def test_training_loss_follows_the_switch(distillation, expected):
    torch.manual_seed(0)
    model = ActionClassifier(actions=ACTIONS, width=8, dropout=0.0, jitter=0.0, scale=0.0, shift=0.0,
                             distillation=distillation)
    model.log = lambda *args, **kwargs: None
    batch = _batch()
    loss = model.training_step(batch, 0)
    assert loss.item() == pytest.approx(expected(model.logits(batch["keypoints"]), batch["action"]).item(), abs=1e-6)


def test_the_switch_adds_no_weights_and_checks_the_teacher():
    plain = ActionClassifier(actions=ACTIONS, width=8)
    reg = ActionClassifier(actions=ACTIONS, width=8, distillation="tfkd-reg")
    assert set(plain.state_dict()) == set(reg.state_dict())  # the zoo's action-classifier weights still load
    with pytest.raises(ValueError, match="needs a teacher: set model.init_args.teacher .* action-classifier"):
        ActionClassifier(actions=ACTIONS, distillation="tfkd-self")
