"""``crossmedia classify seeds``: per-seed accuracies, mean ± std, the same seed's baseline as Tf-KD self's teacher."""
import json

import pytest
import yaml

from crossmedia.tasks.classify import cli

CONFIG = {
    "model": {"class_path": "crossmedia.tasks.classify.module.ClassifyModule",
              "init_args": {"num_classes": 10, "backbone": "test_resnet", "image_size": 16}},
    "data": {"class_path": "crossmedia.tasks.classify.data.ClassifyDataModule",
             "init_args": {"dataset": "mini", "image_size": 16, "train_per_class": 3}},
    "trainer": {"max_epochs": 1, "check_val_every_n_epoch": 5},
}


@pytest.mark.slow
def test_seeds_pairs_each_student_with_its_own_seeds_baseline(tmp_path, mini, monkeypatch, capsys):
    base = {**CONFIG, "data": {**CONFIG["data"], "init_args": {**CONFIG["data"]["init_args"], "root": str(mini)}}}
    selfkd = {**base, "model": {**base["model"], "init_args": {**base["model"]["init_args"],
                                                               "distillation": "tfkd-self", "teacher": "base"}}}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "selfkd.yaml").write_text(yaml.safe_dump(selfkd))
    teachers, train = [], cli.train_and_test

    def spy(config, *, seed, teacher=None, split="test"):
        teachers.append((seed, teacher))
        return train(config, seed=seed, teacher=teacher, split=split)

    monkeypatch.setattr(cli, "train_and_test", spy)
    out = tmp_path / "seeds.json"
    code = cli.classify_main(["seeds", str(tmp_path / "base.yaml"), str(tmp_path / "selfkd.yaml"),
                              "--seeds", "0", "1", "--out", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["seeds"] == [0, 1] and set(result["top1"]) == {"base", "selfkd"}
    assert all(0.0 <= v <= 1.0 for values in result["top1"].values() for v in values)
    (s0, none0), (s0b, teacher0), (s1, none1), (s1b, teacher1) = teachers
    assert (s0, s0b, s1, s1b) == (0, 0, 1, 1) and none0 is None and none1 is None
    assert teacher0 is not None and teacher1 is not None and teacher0 is not teacher1  # a baseline per seed
    assert not any(p.requires_grad for p in teacher0.parameters())
    printed = capsys.readouterr().out
    assert "mean ± std" in printed and "selfkd" in printed


def test_seeds_refuses_an_unknown_model(capsys):
    assert cli.classify_main(["seeds", "no-such-model"]) == 1
    assert "'no-such-model' is neither a config file nor a zoo name" in capsys.readouterr().err
