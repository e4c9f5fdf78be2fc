"""Small graphs where a blocked tensor meets one kernel whose layout is in question: each case is one rule of
the split's ``_blocked_kernel``. Shared by the layout tests and the script that records them on devices."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: (case, width, whether the kernel runs blocked with blocks of 16 on onnxruntime 1.32).
LAYOUT_CASES = [
    ("depthwise", 12, True), ("depthwise", 44, True), ("depthwise", 42, False), ("depthwise", 46, False),
    ("conv", 44, True), ("conv", 42, False),
    ("concat", 16, True), ("concat", 24, False),
    ("add_plain", 32, False),
    ("avgpool_ceil_pad", 16, False), ("avgpool_ceil", 16, True), ("avgpool_pad", 16, True),
]


def layout_model(path: Path, case: str, c: int) -> Path:
    """x (1×32×28×28) -> conv 32->c -> [the case's kernel] -> conv ->32: a blocked tensor meets the kernel."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def w(name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    inits = [w("w0", (c, 32, 1, 1))]
    nodes = [helper.make_node("Conv", ["x", "w0"], ["a"], name="/c0")]
    out_c = c
    if case == "depthwise":
        inits.append(w("wd", (c, 1, 3, 3)))
        nodes.append(helper.make_node("Conv", ["a", "wd"], ["b"], name="/dw", group=c, pads=[1, 1, 1, 1]))
    elif case == "conv":  # a 1×1 conv reading c channels
        inits.append(w("wc", (c, c, 1, 1)))
        nodes.append(helper.make_node("Conv", ["a", "wc"], ["b"], name="/pw"))
    elif case == "concat":  # two convs of c channels joined
        inits.append(w("w1", (c, 32, 1, 1)))
        nodes += [helper.make_node("Conv", ["x", "w1"], ["a1"], name="/c1"),
                  helper.make_node("Concat", ["a", "a1"], ["b"], name="/cat", axis=1)]
        out_c = 2 * c
    elif case == "add_plain":  # a residual add of a blocked tensor and a plain one (an SE gate's output)
        inits.append(w("wg", (c, c, 1, 1)))
        nodes += [helper.make_node("GlobalAveragePool", ["a"], ["m"], name="/gap"),
                  helper.make_node("Conv", ["m", "wg"], ["g"], name="/gate"),
                  helper.make_node("Mul", ["a", "g"], ["se"], name="/mul"),
                  helper.make_node("Relu", ["x"], ["xr"], name="/relu"),
                  helper.make_node("Conv", ["xr", "w0"], ["a2"], name="/c2"),
                  helper.make_node("Add", ["se", "a2"], ["b"], name="/add")]
    else:  # a 2×2 stride-2 AveragePool; case names its ceil_mode / count_include_pad
        ceil, include_pad = {"avgpool_ceil_pad": (1, 1), "avgpool_ceil": (1, 0), "avgpool_pad": (0, 1)}[case]
        nodes.append(helper.make_node("AveragePool", ["a"], ["b"], name="/pool", kernel_shape=[2, 2],
                                      strides=[2, 2], ceil_mode=ceil, count_include_pad=include_pad))
    inits.append(w("wz", (32, out_c, 1, 1)))
    nodes.append(helper.make_node("Conv", ["b", "wz"], ["y"], name="/cz"))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, 28, 28])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    model = helper.make_model(helper.make_graph(nodes, case, [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    # Inferred shapes give the output its shape too: onnx's checker (and so nasprof) wants one.
    onnx.save(onnx.shape_inference.infer_shapes(model), str(path))
    return path
