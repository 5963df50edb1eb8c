"""Plausibility bounds: the ranges every quantity lowcarb records must lie in.

A value outside them is refused where it enters (a client, a round's report, a service
request) and again by the ledger before anything is written, so that no stored value can
overflow a later sum or break a later JSON answer. The bounds are generous for real
federated learning and far from float overflow even when summed over a long run:
``MAX_CLIENT_ROUND_KWH x MAX_PLAUSIBLE_G_PER_KWH x 1e5 clients x 1e9 rounds`` is about
3e21 g. Text (client ids, zones, metric names) must be encodable as UTF-8: a lone
surrogate such as U+D800 cannot be stored in SQLite or sent as JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from lowcarb._series import MAX_PLAUSIBLE_G_PER_KWH
from lowcarb.exceptions import InvalidInputError

__all__ = [
    "MAX_CLIENT_ROUND_KWH",
    "MAX_METRIC",
    "MAX_PLAUSIBLE_G_PER_KWH",
    "MAX_POWER_W",
    "MAX_ROUND",
    "MAX_ROUND_G",
    "MAX_UTILITY",
    "check_quantity",
    "check_text",
    "check_text_keys",
]

#: Most energy one client may spend on one round (kWh): a 1 MW site training for 10 hours.
MAX_CLIENT_ROUND_KWH = 1e4
#: Most device power of one client (W): 10 MW.
MAX_POWER_W = 1e7
#: Largest utility of one client (any unit, e.g. samples).
MAX_UTILITY = 1e12
#: Largest magnitude of a reported metric (accuracy, loss, ...).
MAX_METRIC = 1e12
#: Highest round number (1-based).
MAX_ROUND = 10**9
#: Most gCO2eq of one whole round (a counterfactual over many clients): 1e12 kg.
MAX_ROUND_G = 1e15


def check_quantity(name: str, value: object, *, most: float, least: float = 0.0) -> float:
    """Return ``value`` as a float if it is a number within ``[least, most]``.

    Args:
        name: What the value is, with its unit, for the message (``energy_kwh of 'a'``).
        value: The value (bool is not a number here).
        most: Largest value allowed.
        least: Smallest value allowed.

    Raises:
        InvalidInputError: Naming the value and the bounds.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range is out of bounds either way
        number = math.inf
    if not math.isfinite(number) or not least <= number <= most:
        bounds = f"between {least:g} and {most:g}" if math.isfinite(most) else f">= {least:g}"
        raise InvalidInputError(f"{name} must be a finite number {bounds}, got {value!r}")
    return number


def check_text(name: str, value: object) -> str:
    """Return ``value`` if it is a string that UTF-8 can encode (no lone surrogates).

    Raises:
        InvalidInputError: For anything else.
    """
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a string, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(
            f"{name} {value[:40]!r} is not valid Unicode text (it holds a lone surrogate)"
        ) from None
    return value


def check_text_keys(name: str, mapping: Mapping[str, object]) -> None:
    """Check that every key of ``mapping`` is text UTF-8 can encode.

    Raises:
        InvalidInputError: Naming the first bad key.
    """
    for key in mapping:
        check_text(f"a key of {name}", key)
