"""Gradient-based NAS with a differentiable expected latency: the logits α move to faster ops as λ grows.

ProxylessNAS / FBNet train architecture logits α with loss = task loss + λ·E[latency], where E[latency] is
the lookup-table sum under softmax(α). Here that term is ``nasprof.search.differentiable.ExpectedLatency``
over the ``mnasnet`` space at 224 px; for each λ only α is optimised (Adam), then the argmax architecture
is derived and its latency predicted with the same table.

What is synthetic, and why:
* the table: no device is measured here, so every distinct layer of the space gets a roofline-style
  latency, ms = 0.02 + MACs / (20 GMAC/s) + bytes moved / (10 GB/s), bytes = float32 input, output and
  weights. A real search would load ``LutPredictor.from_table(...)`` instead, nothing else changes;
* the task loss: there is no data set and no supernet here, so it is a capacity stand-in,
  −log(E[MACs] / E₀[MACs]) (bigger networks assumed more accurate, the assumption behind MACs-based
  accuracy proxies), with E₀ at uniform α. In a real search it is the supernet's loss on a batch.

With λ = 0 the stand-in alone drives α to the biggest network; larger λ trades it for latency.

    .venv/bin/python examples/supernet_expected_latency.py      # a few seconds on a laptop CPU
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nasprof.predictors import LutPredictor
from nasprof.search.differentiable import ExpectedLatency, ExpectedMacs
from nasprof.space import Arch, Layer, get_space

SPACE, RESOLUTION = "mnasnet", 224
LAMBDAS = (0.0, 0.3, 1.0, 3.0)


def synthetic_ms(layer: Layer) -> float:
    """Roofline-style latency of one layer (not a measurement; see the module docstring)."""
    c, h, w = layer.input_shape
    co, ho, wo = layer.output_shape
    moved = 4 * (c * h * w + co * ho * wo + layer.params)
    return 0.02 + layer.macs / 20e9 * 1e3 + moved / 10e9 * 1e3


def synthetic_predictor() -> LutPredictor:
    entries = {x.key: synthetic_ms(x) for x in get_space(SPACE).distinct_layers(RESOLUTION)}
    return LutPredictor(entries, space=SPACE, resolution=RESOLUTION, device="synthetic (roofline)")


@dataclass(frozen=True)
class Row:
    lam: float
    expected_ms: float
    arch: Arch
    predicted_ms: float
    macs: int


def search(lambdas: tuple[float, ...] = LAMBDAS, steps: int = 150, lr: float = 0.1) -> list[Row]:
    """Optimise α from uniform for each λ; the derived architecture with its predicted latency."""
    predictor = synthetic_predictor()
    latency = ExpectedLatency(predictor, SPACE)
    macs = ExpectedMacs(SPACE, RESOLUTION)
    with torch.no_grad():
        start = latency.new_alpha()
        t0, m0 = float(latency(start)), float(macs(start))
    rows = []
    for lam in lambdas:
        alpha = latency.new_alpha()
        opt = torch.optim.Adam([alpha], lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            # Both terms are relative to uniform α, so λ reads as "how many % of capacity one % of
            # latency is worth".
            loss = -torch.log(macs(alpha) / m0) + lam * latency(alpha) / t0
            loss.backward()
            opt.step()
        arch = latency.derive(alpha)
        with torch.no_grad():
            expected = float(latency(alpha))
        rows.append(Row(lam, expected, arch, predictor.predict(arch), arch.macs))
    return rows


def main() -> None:
    rows = search()
    print(f"mnasnet @ {RESOLUTION} px, synthetic roofline table; loss = -log E[MACs] + λ·E[LAT]/E₀[LAT]")
    print(f"{'λ':>5} {'E[LAT] ms':>10} {'derived ms':>11} {'MACs M':>8}  ops per block")
    for r in rows:
        ops = " ".join(f"{b.op}k{b.kernel}" for b in r.arch.blocks)
        print(f"{r.lam:>5g} {r.expected_ms:>10.3f} {r.predicted_ms:>11.3f} {r.macs / 1e6:>8.1f}  {ops}")
    print("derived architectures:")
    for r in rows:
        print(f"  λ={r.lam:g}: {r.arch}")
    ms = [r.predicted_ms for r in rows]
    falling = all(b <= a for a, b in zip(ms, ms[1:], strict=False))
    print(f"predicted latency {'falls' if falling else 'does NOT fall'} as λ grows")


if __name__ == "__main__":
    main()
