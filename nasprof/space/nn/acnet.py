"""torch module of ACNet's asymmetric convolution block, with its inference-time fusion into one conv."""

from __future__ import annotations

import torch
from torch import nn

from nasprof.space.blocks.base import BlockSpec
from nasprof.space.nn.common import ConvBN, make_act


def asymmetric_conv_bn(cin: int, cout: int, kernel: tuple[int, int], stride: int, groups: int) -> ConvBN:
    """A ``ConvBN`` with a 1 x k or k x 1 kernel, padded by half the kernel along its long axis only.

    That padding keeps the output aligned with the square k x k conv's (at any stride): output (i, j) of the
    1 x k conv reads input row ``stride * i``, exactly the square kernel's centre row there.
    """
    module = ConvBN(cin, cout, 1, stride, groups)
    # ConvBN takes square kernels only; swapping its conv keeps ConvBN.fold() for the branch. The placeholder
    # 1x1 conv's initialisation is negligible (and free under ``instantiate``'s meta device).
    module.conv = nn.Conv2d(
        cin, cout, kernel, stride, (kernel[0] // 2, kernel[1] // 2), groups=groups, bias=False
    )
    return module


class ACBlock(nn.Module):
    """Training form: ``square`` (kxk+BN) + ``horizontal`` (1xk+BN) + ``vertical`` (kx1+BN) -> act.
    ``fold()`` re-parameterises into ``square`` alone (kxk conv with bias), the exported form."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        k, s, g = spec.kernel, spec.stride, spec.groups
        self.square = ConvBN(spec.cin, spec.cout, k, s, g)
        self.horizontal: ConvBN | None = asymmetric_conv_bn(spec.cin, spec.cout, (1, k), s, g)
        self.vertical: ConvBN | None = asymmetric_conv_bn(spec.cin, spec.cout, (k, 1), s, g)
        self.act = make_act(spec.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.square(x)
        if self.horizontal is not None:
            y = y + self.horizontal(x)
        if self.vertical is not None:
            y = y + self.vertical(x)
        return self.act(y)

    @torch.no_grad()
    def fold(self) -> None:
        # Idempotent: fold_bn calls fold() on every module, this one and (afterwards) its branches.
        if self.horizontal is None or self.vertical is None:
            return
        self.square.fold()
        self.horizontal.fold()
        self.vertical.fold()
        square, horizontal, vertical = self.square.conv, self.horizontal.conv, self.vertical.conv
        assert square.bias is not None and horizontal.bias is not None and vertical.bias is not None
        weight, bias = square.weight.clone(), square.bias.clone()
        c = weight.shape[-1] // 2
        # Convolution is linear in the kernel and the three convs read the same (aligned) windows: a 1 x k
        # kernel is a k x k kernel that is zero outside its centre row, a k x 1 one outside its centre column.
        weight[:, :, c : c + 1, :] += horizontal.weight
        weight[:, :, :, c : c + 1] += vertical.weight
        bias += horizontal.bias + vertical.bias
        square.weight.copy_(weight)
        square.bias.copy_(bias)
        self.horizontal, self.vertical = None, None
