"""Torch modules of NASNet operations and cells (see ``nasprof.space.blocks.nasnet``)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias
from torch import nn

from nasprof.space.blocks.base import BlockSpec
from nasprof.space.nn.common import ConvBN


class _DwPw(nn.Module):
    """Depthwise k x k (no BN: the pointwise after it carries it) then pointwise + BN."""

    def __init__(self, cin: int, cout: int, k: int, stride: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, k, stride, k // 2, groups=cin, bias=False)
        self.pw = ConvBN(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class _FactorizedReduce(nn.Module):
    """Two stride-2 1x1 convs, the second on the pixels shifted by one, concatenated (NASNet's way of halving
    a map without dropping three of every four pixels).

    The shifted path is NASNet's ``pad(0, 1, 0, 1)``, crop the first row and column, stride-2 conv, written as
    a stride-2 conv with padding 1 whose first output row and column are dropped: the same values, and a
    graph of constant shapes (an exported Pad computes its pads at run time, which shape inference cannot
    follow)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.a = ConvBN(cin, cout // 2, 1, 2, pad=0)
        self.b = ConvBN(cin, cout // 2, 1, 2, pad=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        return torch.cat([self.a(x), self.b(x)[:, :, 1:, 1:]], 1)


class NasOpModule(nn.Module):
    """One ``nasnet_op``."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        v, cin, cout, s = spec.variant, spec.cin, spec.cout, spec.stride
        self.relu_first = v in ("pre", "sep3", "sep5") or (v == "id" and cin != cout and s == 1)
        self.pool: nn.Module = nn.Identity()
        self.body: nn.Module = nn.Identity()
        self.proj: nn.Module = nn.Identity()
        if v.startswith("sep"):
            k = int(v[3:])
            self.body = nn.Sequential(_DwPw(cin, cin, k, s), nn.ReLU(), _DwPw(cin, cout, k, 1))
        elif v == "pre" or (v == "id" and s == 1 and cin != cout):
            self.body = ConvBN(cin, cout, 1)
        elif v == "id" and s == 2:
            self.body = _FactorizedReduce(cin, cout)
        elif v in ("avg3", "max3"):
            self.pool = (nn.AvgPool2d(3, s, 1, count_include_pad=False) if v == "avg3"
                         else nn.MaxPool2d(3, s, 1))
            if cin != cout:
                self.proj = nn.Sequential(nn.ReLU(), ConvBN(cin, cout, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.relu_first:
            x = F.relu(x)
        return self.proj(self.body(self.pool(x)))


class NasCellModule(nn.Module):
    """One ``nasnet_cell``: input ``concat(s1, s0)`` (or one tensor used as both), output
    ``concat(unused states, carry)``."""

    def __init__(self, spec: BlockSpec, plan: dict[str, Any]) -> None:
        # ``plan`` is ``nasprof.space.blocks.nasnet.cell_plan(spec)``, handed over by the block so this
        # torch side never imports the spec side (which imports it lazily to build).
        super().__init__()
        self.s1, self.mid = plan["s1"], spec.mid
        self.pre0 = NasOpModule(plan["pre0"]) if plan["pre0"] is not None else None
        self.pre1 = NasOpModule(plan["pre1"])
        self.reads = [(a[0], b[0]) for a, b in plan["ops"]]
        self.combines = [blk.combine for blk in plan["genotype"].blocks]
        self.ops = nn.ModuleList(
            nn.ModuleList(NasOpModule(op) if op is not None else nn.Identity() for _, op in pair)
            for pair in plan["ops"]
        )
        self.out = list(plan["out"])
        self.carry = NasOpModule(plan["carry"]) if plan["carry"] is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Constant slices, not split(): a Split's sizes are an input that shape inference cannot always read.
        s1_raw = x[:, : self.s1] if self.mid else x
        s0 = x[:, self.s1 :] if self.pre0 is None else self.pre0(x)
        states = [s0, self.pre1(s1_raw)]
        for (i, j), pair, combine in zip(self.reads, self.ops, self.combines, strict=True):
            op_a, op_b = pair.children()  # one ModuleList of two per block
            a, b = op_a(states[i]), op_b(states[j])
            states.append(a + b if combine == "add" else torch.cat([a, b], 1))
        outs = [states[k] for k in self.out]
        if self.carry is not None:
            outs.append(self.carry(s1_raw))
        return outs[0] if len(outs) == 1 else torch.cat(outs, 1)
