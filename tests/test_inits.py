"""Every distribution of docs/inits.md: sample std / values against the formula, scaled forms for
several k (std x 1/sqrt(k), k the fraction kept), slot presets and score inits."""

import math

import pytest
import torch

from hiddenlab.config import ConfigError
from hiddenlab.models.inits import INITS, fans_of, init_scores, init_weights

CONV = (64, 32, 3, 3)  # fan_in 288, fan_out 576
FI, FO = 288, 576
SK = math.sqrt(2 / FI)
SX = math.sqrt(2 / (FI + FO))


@pytest.mark.parametrize("name,std", [
    ("kaiming_normal", SK), ("kaiming_uniform", SK), ("xavier_normal", SX),
])
@pytest.mark.parametrize("k", [1.0, 0.5, 0.3, 0.1])
def test_random_inits_std(name, std, k):
    torch.manual_seed(0)
    plain = init_weights(name, CONV, CONV, k)
    scaled = init_weights("scaled_" + name, CONV, CONV, k)
    assert plain.std().item() == pytest.approx(std, rel=0.03)
    assert scaled.std().item() == pytest.approx(std / math.sqrt(k), rel=0.03)
    assert abs(plain.mean().item()) < 0.05 * std


@pytest.mark.parametrize("k", [1.0, 0.5, 0.3, 0.1])
def test_constant_inits_values(k):
    torch.manual_seed(0)
    s = init_weights("signed_constant", CONV, CONV, k)
    assert sorted(s.unique().tolist()) == pytest.approx([-SK, SK])
    assert (s > 0).float().mean().item() == pytest.approx(0.5, abs=0.02)
    ss = init_weights("scaled_signed_constant", CONV, CONV, k)
    assert sorted(ss.unique().tolist()) == pytest.approx([-SK / math.sqrt(k), SK / math.sqrt(k)])
    u = init_weights("unsigned_constant", CONV, CONV, k)
    assert u.unique().tolist() == pytest.approx([SK])
    x = init_weights("xavier_constant", CONV, CONV, k)
    assert sorted(x.unique().tolist()) == pytest.approx([-SX, SX])


def test_kaiming_uniform_bound():
    w = init_weights("kaiming_uniform", CONV, CONV)
    assert w.abs().max().item() <= math.sqrt(3) * SK
    assert w.abs().max().item() > 0.98 * math.sqrt(3) * SK


def test_slot_presets_values_and_scores():
    K = 8
    shape = (*CONV, K)
    b_code = math.sqrt(6 / (FI + FO))
    v = init_weights("slot-code", shape, CONV)
    assert v.abs().max().item() <= b_code and v.abs().max().item() > 0.99 * b_code
    assert v.std().item() == pytest.approx(b_code / math.sqrt(3), rel=0.02)
    s = init_scores("slot-code", shape, CONV)
    assert s.min().item() >= 0 and s.max().item() == pytest.approx(b_code, rel=0.01)
    vp = init_weights("slot-paper", shape, CONV)
    assert vp.abs().max().item() == pytest.approx(SX, rel=0.01)
    sp_conv = init_scores("slot-paper", shape, CONV)
    assert sp_conv.max().item() == pytest.approx(SX, rel=0.01) and sp_conv.min().item() >= 0
    fc = (256, 1024)
    sx_fc = math.sqrt(2 / (1024 + 256))
    sp_fc = init_scores("slot-paper", (*fc, K), fc)
    assert sp_fc.max().item() == pytest.approx(0.1 * sx_fc, rel=0.01)  # lambda = 0.1 for FC


def test_edgepopup_score_init_and_fans():
    assert fans_of(CONV).fan_in == FI and fans_of(CONV).fan_out == FO
    s = init_scores("kaiming_uniform", CONV, CONV)
    assert s.abs().max().item() <= 1 / math.sqrt(FI)
    assert init_scores("constant", (3, 3), (3, 3), const=-1.5).unique().tolist() == [-1.5]
    with pytest.raises(ConfigError, match="init: 'nope' is not one of"):
        init_weights("nope", CONV, CONV)


def test_every_init_registered():
    expected = {"kaiming_normal", "kaiming_uniform", "signed_constant", "unsigned_constant",
                "xavier_normal", "xavier_constant", "slot-code", "slot-paper"}
    assert expected <= set(INITS)
    assert {"scaled_" + n for n in expected - {"slot-code", "slot-paper"}} <= set(INITS)
