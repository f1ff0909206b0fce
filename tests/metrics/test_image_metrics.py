"""Image metrics on a feature network of ours: FID equals its closed form and is ~0 for a set
against itself, FID and KID grow with a shift, SSIM of identical images is 1, PSNR by hand."""
import math

import numpy as np
import pytest
import torch
from scipy import linalg
from torch import nn

from crossmedia.metrics.image import FID, KID, PSNR, SSIM

pytestmark = pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save")


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, stride=2), nn.Tanh(), nn.AdaptiveAvgPool2d(2), nn.Flatten())  # (N, 24)


def _images(n: int, seed: int, high: float = 0.6) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * high


def _fid(net, real, fake, **kwargs) -> float:
    metric = FID(feature_net=net, image_shape=(3, 16, 16), **kwargs)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return metric.compute().item()


def test_fid_equals_the_closed_form_on_our_features():
    net, real, fake = _net(), _images(80, 1), _images(80, 2) + 0.2
    with torch.no_grad():
        fr, ff = net(real).double().numpy(), net(fake).double().numpy()
    mu_r, mu_f = fr.mean(0), ff.mean(0)
    cov_r, cov_f = np.cov(fr, rowvar=False), np.cov(ff, rowvar=False)
    expected = ((mu_r - mu_f) ** 2).sum() + np.trace(cov_r + cov_f - 2 * linalg.sqrtm(cov_r @ cov_f).real)
    assert _fid(net, real, fake) == pytest.approx(expected, rel=1e-3)


def test_fid_is_zero_for_a_set_against_itself_and_grows_with_a_shift():
    net, real = _net(), _images(80, 1)
    assert abs(_fid(net, real, real)) < 1e-4
    small, large = _fid(net, real, real + 0.1), _fid(net, real, real + 0.4)
    assert 0 < small < large


def test_input_range_is_converted_once_and_checked():
    net, real, fake = _net(), _images(40, 1), _images(40, 2)
    assert _fid(net, real * 2 - 1, fake * 2 - 1, input_range=(-1.0, 1.0)) == pytest.approx(_fid(net, real, fake), rel=1e-5)
    with pytest.raises(ValueError, match=r"outside the declared range \(0.0, 1.0\)"):
        _fid(net, real * 2 - 1, fake)


def test_the_feature_network_is_not_part_of_an_owner_state_or_parameters():
    net = _net()
    owner = nn.Module()
    owner.fid = FID(feature_net=net, image_shape=(3, 16, 16))
    owner.kid = KID(feature_net=net, image_shape=(3, 16, 16), subset_size=10)
    assert not any(k.startswith(("fid.inception.net", "kid.inception.net")) for k in owner.state_dict())
    assert len(list(owner.parameters())) == 0
    assert net.training  # evaluating left the caller's mode alone
    _fid(net, _images(4, 1), _images(4, 2))
    assert net.training


def test_kid_is_near_zero_for_a_set_against_itself_and_grows_with_a_shift():
    net, real = _net(), _images(60, 1)

    def kid(fake):
        torch.manual_seed(0)
        metric = KID(feature_net=net, image_shape=(3, 16, 16), subsets=20, subset_size=30)
        metric.update(real, real=True)
        metric.update(fake, real=False)
        return metric.compute()[0].item()

    same, small, large = kid(real), kid(real + 0.1), kid(real + 0.4)
    assert abs(same) < 0.1 * small and 0 < small < large


def test_ssim_of_identical_images_is_one_and_falls_with_noise():
    images = _images(4, 3)
    ssim = SSIM()
    ssim.update(images, images)
    assert ssim.compute().item() == pytest.approx(1.0, abs=1e-6)
    noisy = SSIM(input_range=(-1.0, 1.0))
    noisy.update((images + 0.1 * _images(4, 4)) * 2 - 1, images * 2 - 1)
    assert noisy.compute().item() < 0.99


def test_psnr_by_hand_per_image_and_pooled():
    target = torch.zeros(2, 1, 2, 2)
    preds = torch.zeros(2, 1, 2, 2)
    preds[0, 0, 0, 0] = 0.5   # MSE 0.25 / 4 = 0.0625 -> 10 log10(16) = 12.0412 dB
    preds[1] = 0.1            # MSE 0.01 -> 20 dB
    per_image, pooled = PSNR(), PSNR(per_image=False)
    per_image.update(preds, target)
    pooled.update(preds, target)
    assert per_image.compute().item() == pytest.approx((10 * math.log10(16) + 20) / 2, abs=1e-4)
    assert pooled.compute().item() == pytest.approx(10 * math.log10(1 / ((0.0625 + 0.01) / 2)), abs=1e-4)
