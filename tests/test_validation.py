"""The shared argument checks: what they accept, and the message when they refuse."""

import math

import pytest

from satkit.validation import check_bool, check_choice, check_int, check_real, check_reals


class Custom(ValueError):
    pass


@pytest.mark.parametrize("value", [True, 1.0, "1", None, 0])
def test_check_int_refuses_non_ints_and_out_of_range(value):
    with pytest.raises(ValueError, match=r"^epochs must be an integer >= 1, got "):
        check_int("epochs", value, minimum=1)


def test_check_int_bounds_optional_and_error_class():
    assert check_int("n", 5, minimum=0, maximum=5) == 5
    assert check_int("n", None, minimum=1, optional=True) is None
    with pytest.raises(Custom, match=r"n must be an integer in \[0, 4\], got 5"):
        check_int("n", 5, minimum=0, maximum=4, error=Custom)
    with pytest.raises(ValueError, match="or None"):
        check_int("n", 0, minimum=1, optional=True)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, True, "0.5", None, 0.0, 1.0])
def test_check_real_refuses_non_finite_bools_and_the_open_ends(value):
    with pytest.raises(ValueError, match=r"tau must be a finite number in \(0, 1\)"):
        check_real("tau", value, lo=0, hi=1, lo_open=True, hi_open=True)


def test_check_real_returns_float_and_closed_ends():
    assert check_real("x", 0, lo=0) == 0.0 and isinstance(check_real("x", 3, lo=0), float)
    assert check_real("x", 1, lo=0, hi=1) == 1.0
    assert check_real("x", None, optional=True) is None


def test_check_reals_increasing_and_nonempty():
    assert check_reals("t", (0.5, 0.9), lo=0, hi=1) == (0.5, 0.9)
    with pytest.raises(ValueError, match="strictly increasing"):
        check_reals("t", (0.9, 0.5), increasing=True)
    with pytest.raises(ValueError, match="at least one"):
        check_reals("t", ())
    with pytest.raises(ValueError, match="sequence of numbers"):
        check_reals("t", "0.5")


def test_check_choice_and_bool():
    assert check_choice("k", "a", ("a", "b")) == "a"
    with pytest.raises(ValueError, match="k must be one of a, b; got 'c'"):
        check_choice("k", "c", ("a", "b"))
    assert check_bool("flag", False) is False
    with pytest.raises(ValueError, match="flag must be true or false, got 1"):
        check_bool("flag", 1)
