"""Every process on every available device: outputs stay on the data's device and dtype, tables follow .to()."""

from __future__ import annotations

import pytest
import torch

from td_models.diffusion import (
    DiscreteProcess,
    VPProcess,
    WrappedNormalProcess,
    sample_timesteps,
    wrapped_normal_score,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_processes_on_device(device, dtype):
    gen = torch.Generator(device).manual_seed(0)
    t = sample_timesteps(6, 100, generator=gen, device=device)
    s = t - 1
    assert t.device.type == device

    vp = VPProcess(100).to(device)
    assert vp.alpha_bars.device.type == device and vp.alpha_bars.dtype == torch.float64
    x0 = torch.randn(6, 3, generator=gen, device=device, dtype=dtype)
    xt, eps = vp.q_sample(x0, t, generator=gen)
    xs = vp.step(xt, t, s, eps, generator=gen)
    prior = vp.prior_sample((2, 3), generator=gen, dtype=dtype)
    assert all(v.device.type == device and v.dtype == dtype for v in (xt, eps, xs, prior))
    ref = VPProcess(100).predict_x0(xt.cpu(), t.cpu(), eps.cpu())
    torch.testing.assert_close(vp.predict_x0(xt, t, eps).cpu(), ref)

    wn = WrappedNormalProcess(100).to(device)
    ft, target = wn.q_sample(x0, t, generator=gen)
    fp = wn.predictor_step(ft, t, s, target, generator=gen)
    fc = wn.corrector_step(ft, t, target, generator=gen)
    fu = wn.prior_sample((2, 3), generator=gen, dtype=dtype)
    assert all(v.device.type == device and v.dtype == dtype for v in (ft, target, fp, fc, fu))
    assert bool(((fp >= 0) & (fp < 1)).all()) and bool(((fu >= 0) & (fu < 1)).all())
    delta = torch.linspace(-0.4, 0.4, 9, dtype=dtype)
    torch.testing.assert_close(wrapped_normal_score(delta.to(device), 0.1).cpu(), wrapped_normal_score(delta, 0.1))

    for kind in ("absorbing", "uniform"):
        dp = DiscreteProcess(4, 100, kind).to(device)
        tokens = torch.randint(0, 4, (6, 5), generator=gen, device=device)
        zt = dp.q_sample(tokens, t, generator=gen)
        logits = torch.randn(6, 5, 4, generator=gen, device=device, dtype=dtype)
        zs = dp.step(zt, t, s, logits, generator=gen)
        loss = dp.loss(logits, tokens, zt, t)
        prior = dp.prior_sample((3,), generator=gen)
        assert all(v.device.type == device for v in (zt, zs, loss, prior))
        assert zs.dtype == torch.long and loss.dtype == dtype and loss.shape == (6,)
        probs = torch.softmax(logits, dim=-1)
        ref = DiscreteProcess(4, 100, kind).posterior_logits(zt.cpu(), t.cpu(), s.cpu(), probs.cpu())
        torch.testing.assert_close(dp.posterior_logits(zt, t, s, probs).cpu(), ref)
