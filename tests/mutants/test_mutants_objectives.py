"""Messages of the loss and metric tables, word for word (mutants of training/objectives.py).

The arguments each function takes are those of its definition in
nnx_build.training.functions (``sigmoid_focal_loss(pred, target, alpha, gamma)``,
``mean_squared_error(pred, target)``), so the lists below are written from them.
"""

from __future__ import annotations

import pytest

from nnx_build.training.objectives import LOSSES, METRICS, lookup


def test_an_unknown_argument_names_every_argument_the_function_takes() -> None:
    ((arg, message),) = LOSSES["sigmoid_focal_loss"].check_args({"beta": 1.0})
    assert arg == "beta"
    assert message.startswith("sigmoid_focal_loss has no argument 'beta'")
    assert message.endswith("; its arguments: alpha, gamma")


def test_a_function_without_arguments_says_none() -> None:
    ((arg, message),) = LOSSES["mean_squared_error"].check_args({"delta": 1.0})
    assert arg == "delta"
    assert message == "mean_squared_error has no argument 'delta'; its arguments: (none)"


def test_an_unknown_name_lists_the_names_and_says_what_it_looked_for() -> None:
    with pytest.raises(KeyError) as info:
        lookup(METRICS, "precision", "metric")
    assert info.value.args[0] == f"unknown metric 'precision'; expected one of {', '.join(METRICS)}"
    with pytest.raises(KeyError) as info:
        lookup(LOSSES, "hindge")
    assert info.value.args[0].startswith("unknown loss 'hindge'")  # a loss unless told otherwise
    assert "did you mean 'hinge'" in info.value.args[0]
