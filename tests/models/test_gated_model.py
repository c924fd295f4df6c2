"""``model.gate``: the autogate is the model's first step, trains, predicts and comes back
from a checkpoint with the recipe."""

from __future__ import annotations

import numpy as np
import torch

from g2res.config import Config, GateConfig, ModelConfig
from g2res.models import build_model
from g2res.models.checkpoint import load_fold_model, save_checkpoint
from g2res.signal.gate import GATE_TAPER, GATE_WINDOW, Gate, gate

N = 2048
TINY = dict(frontend={"name": "cqt"}, backbone={"name": "resnet18", "base_width": 4})


def test_gated_model_trains_one_step_predicts_and_round_trips(tmp_path, rng):
    cfg = Config().replace({**{f"model.{k}": v for k, v in TINY.items()},
                            "model.gate.threshold": 7.0, "model.gate.window": 0.05})  # fmt: skip
    assert cfg.model.gate.threshold == 7.0 and cfg.model.gate.taper == 0.05
    assert GateConfig().threshold is None  # off unless asked
    assert (GateConfig().window, GateConfig().taper) == (GATE_WINDOW, GATE_TAPER)
    assert build_model(ModelConfig(**TINY), n_time=N).gate is None  # off by default
    torch.manual_seed(0)
    model = build_model(cfg.model, n_time=N)
    assert isinstance(model.gate, Gate) and model.gate.window == 0.05
    x = torch.as_tensor(rng.normal(size=(4, 3, N)), dtype=torch.float32)
    x[0, 0, 900:910] += 40.0  # a glitch in H1 of the first sample
    y = torch.tensor([[0.0], [1.0], [0.0], [1.0]])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in model.parameters()]
    model.train()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
    loss.backward()
    opt.step()
    assert np.isfinite(float(loss))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    model.eval()
    with torch.no_grad():
        logits = model(x)
        # the gate is the first step: the model sees what gate() leaves of the input
        ungated = model.head(model.backbone(model.frontend(gate(x, 7.0, 0.05))))
        plain = model.head(model.backbone(model.frontend(x)))
    torch.testing.assert_close(logits, ungated)
    assert float((logits[0] - plain[0]).abs()) > 0  # the glitched sample is changed
    torch.testing.assert_close(logits[1:], plain[1:])  # clean samples are not
    assert model.gate.last_fraction[0, 0] > 0 and float(model.gate.last_fraction[1:].max()) == 0

    path = tmp_path / "best.pt"
    save_checkpoint(path, {"model": model.state_dict(), "config": cfg.to_dict(),
                           "sample_rate": 2048.0, "n_time": N})  # fmt: skip
    again, cfg2 = load_fold_model(path)
    assert cfg2.model.gate.threshold == 7.0 and isinstance(again.gate, Gate)
    with torch.no_grad():
        torch.testing.assert_close(again(x), logits)
