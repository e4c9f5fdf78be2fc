"""Calibration, in one place: a predictor fitted on isolated layers or kernels, corrected on whole networks
measured end to end.

- ``rounds``: the device work ``predictor fit`` and ``validate`` share: which networks to calibrate on,
  measuring them in interleaved rounds (on one device or several), the profiled passes, and then handing
  the measurements to the fits below.
- ``lut``: the lookup table's fit (one factor per layer family, a cost per MB of weights, a per-network
  constant), behind ``LutPredictor.calibrate``.
- ``in_network``: the lookup table's in-network ratio per key, learned from profiled passes.
- ``kernel``: the kernel predictor's fit (a factor per calibration group, a cost per MB of weights),
  behind ``KernelPredictor.calibrate``.

This package's ``__init__`` imports nothing: the fits are imported by the predictors, the rounds by the
commands, and neither should pull in the other.
"""
