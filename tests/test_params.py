"""One parameter table: every parameter of MDN, train and the modules has one rule and one
message wherever it is given."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
import torch

from mdn import MDN, REFERENCE, MixtureDensityHead, params
from mdn.nn import ACTIVATIONS, MLP
from mdn.training import train


def test_every_parameter_of_mdn_and_train_has_a_rule():
    mdn_params = set(MDN().get_params())
    train_params = set(inspect.signature(train).parameters) - {
        "network",
        "x",
        "y",
        "x_val",
        "y_val",
        "generator",
        "member_rows",
        "loss_fn",
        "callbacks",
    }
    named = {params.ALIASES.get(name, name) for name in mdn_params | train_params}
    assert named <= set(params.PARAMETERS)


def test_the_activation_names_are_those_the_networks_build():
    assert tuple(sorted(ACTIVATIONS)) == params.ACTIVATIONS


@pytest.mark.parametrize(
    ("name", "bad", "good"),
    [
        ("n_mix", 0, 3),
        ("n_mix", 2.0, 2),
        ("n_mix", True, np.int64(4)),
        ("lr", 0.0, 1e-3),
        ("lr", float("nan"), 1.0),
        ("l2", -1e-3, 0.0),
        ("ema_decay", 1.0, None),
        ("clip_grad", 0, None),
        ("patience", 0, None),
        ("bagging", 1.5, 1.0),
        ("bagging", True, None),
        ("recalibrate", 1, True),
        ("recalibrate", "always", "scale"),
        ("target_transform", "sqrt", None),
        ("hidden", (10, 0), ()),
        ("hidden", "100", [100, 50]),
        ("device", "tpu!", "auto"),
        ("verbose", -1, 0),
    ],
)
def test_a_rule_refuses_the_bad_value_by_name_and_takes_the_good_one(name, bad, good):
    with pytest.raises(ValueError, match=rf"^{name} must be .* got {re.escape(repr(bad))}$"):
        params.validate(name, bad)
    params.validate(name, good)


def _message(call) -> str:
    with pytest.raises(ValueError) as info:
        call()
    return str(info.value)


@pytest.mark.parametrize(
    ("name", "bad"), [("n_mix", 0), ("covariance", "round"), ("epsilon", -1.0)]
)
def test_the_estimator_and_the_head_say_the_same(name, bad):
    X, y = np.zeros((20, 2)), np.arange(20.0)
    from_mdn = _message(lambda: MDN(**{name: bad}, n_iter=1, verbose=0).fit(X, y))
    from_head = _message(lambda: MixtureDensityHead(4, 1, **{name: bad}))
    assert from_mdn == from_head == _message(lambda: params.validate(name, bad))


@pytest.mark.parametrize(
    ("name", "bad"),
    [("lr_schedule", "step"), ("ema_decay", -0.1), ("clip_grad", -1.0), ("patience", 0)],
)
def test_the_estimator_and_the_loop_say_the_same(name, bad):
    X, y = np.zeros((20, 2)), np.arange(20.0)
    from_mdn = _message(lambda: MDN(**{name: bad}, n_iter=1, verbose=0).fit(X, y))
    network = MLP(2, (3,))  # any module with parameters: the settings are checked first
    from_loop = _message(
        lambda: train(network, torch.zeros(4, 2), torch.zeros(4, 1), **{name: bad})
    )
    assert from_mdn == from_loop


def test_batch_size_is_named_as_train_calls_it():
    with pytest.raises(ValueError, match=r"^batch_size must be an integer >= 1, got 0$"):
        params.validate("batch_size", 0)


def test_mlp_refuses_an_unknown_activation_with_the_table_message():
    assert _message(lambda: MLP(3, (4,), "swish!")) == _message(
        lambda: params.validate("activation", "swish!")
    )


def test_reference_is_a_valid_set_of_parameters():
    params.validate_all(REFERENCE)
    assert MDN(**REFERENCE).get_params()["n_models"] == 10
