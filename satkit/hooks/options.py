"""``RecorderOptions``: what a :class:`~satkit.hooks.SaturationRecorder` records, stated once.

The recorder, :class:`satkit.run_writer.RunWriter` and both framework callbacks take one of
these; ``satkit train`` builds it from its :class:`~satkit.training.TrainConfig`. Pure
standard library (no torch): config files and tests can build and check options anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from satkit.columns import check_opt_in
from satkit.schema import DEFAULT_THRESHOLDS
from satkit.validation import check_int, check_real, check_reals

__all__ = ["RecorderOptions", "recorder_options"]


@dataclass(frozen=True)
class RecorderOptions:
    """The settings of a :class:`~satkit.hooks.SaturationRecorder`.

    Attributes:
        thresholds: saturation thresholds tau in (0, 1); ``saturated_frac`` and the
            per-sample record use the last one.
        every: record the optimizer steps whose index is a multiple of ``every``.
        flush_every: recorded rows kept on the device between two host transfers (so a flush
            every ``flush_every * every`` steps; earlier when the buffer would exceed 64 MiB).
        histogram_every: keep the per-sample p_target and noise of the steps whose index is a
            multiple of this, for sinks with ``write_histograms``; None: no histograms.
        ignore_index: the target value of positions to leave out (-100, as PyTorch and
            Hugging Face use).
        sequence_level: for (N, T, C) logits, the share of a sequence's tokens at p_y >= tau
            that makes the sequence count as saturated in the per-sample record; in (0, 1].
        opt_in: names of the costly quantities to record as well (each needs another pass over
            positions x classes); ``()``: none.

    Raises:
        ValueError: a setting out of range, naming it; an ``opt_in`` name that is not an
            opt-in quantity (:func:`satkit.columns.opt_in_names`).
        TypeError: ``opt_in`` that is not a sequence of names.

    Example:
        >>> RecorderOptions(every=2).every, RecorderOptions().thresholds
        (2, (0.9, 0.99))
        >>> RecorderOptions(every=0)
        Traceback (most recent call last):
        ...
        ValueError: every must be an integer >= 1, got 0
    """

    thresholds: Sequence[float] = DEFAULT_THRESHOLDS
    every: int = 1
    flush_every: int = 100
    histogram_every: int | None = 100
    ignore_index: int = -100
    sequence_level: float = 0.5
    opt_in: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "thresholds", check_reals(
            "thresholds", self.thresholds, lo=0.0, hi=1.0, lo_open=True, hi_open=True))
        check_int("every", self.every, minimum=1)
        check_int("flush_every", self.flush_every, minimum=1)
        check_int("histogram_every", self.histogram_every, minimum=1, optional=True)
        check_int("ignore_index", self.ignore_index)
        check_real("sequence_level", self.sequence_level, lo=0.0, hi=1.0, lo_open=True)
        names = self.opt_in
        if isinstance(names, str) or not isinstance(names, Sequence | set | frozenset) \
                or not all(isinstance(n, str) and n for n in names):
            raise TypeError(f"opt_in must be a sequence of quantity names (e.g. ('entropy',)), "
                            f"got {names!r}")
        object.__setattr__(self, "opt_in", check_opt_in(names))


#: The names of :class:`RecorderOptions`' fields.
FIELDS = tuple(f.name for f in fields(RecorderOptions))


def recorder_options(options: RecorderOptions | None, settings: Mapping[str, Any], *,
                     who: str) -> RecorderOptions:
    """``options`` (default: :class:`RecorderOptions`'s defaults) with the fields in
    ``settings`` replaced: what lets ``SaturationRecorder(head, every=2)`` and a callback's
    ``every=2`` stand for ``RecorderOptions(every=2)``.

    Raises:
        TypeError: ``options`` is not a :class:`RecorderOptions`, or a name in ``settings`` is
            not one of its fields (the message says who was called and lists the fields).

    Example:
        >>> recorder_options(RecorderOptions(every=3), {"flush_every": 5}, who="f").flush_every
        5
        >>> recorder_options(None, {"evry": 2}, who="SaturationRecorder")
        Traceback (most recent call last):
        ...
        TypeError: SaturationRecorder() got an unexpected keyword argument 'evry'; ...
    """
    if options is not None and not isinstance(options, RecorderOptions):
        raise TypeError(f"{who}(): options must be a satkit.hooks.RecorderOptions, got "
                        f"{type(options).__name__}")
    unknown = [name for name in settings if name not in FIELDS]
    if unknown:
        raise TypeError(f"{who}() got an unexpected keyword argument {unknown[0]!r}; the "
                        f"recorder's settings are RecorderOptions fields: {', '.join(FIELDS)}")
    base = options if options is not None else RecorderOptions()
    return replace(base, **settings) if settings else base
