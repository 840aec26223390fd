"""The two views of saturation and the two per-sample events, as table columns.

A *view* says whose softmax "saturated" is measured on (:data:`satkit.schema.VIEWS`):

* ``"clean"``: p_y of the eval-mode (clean) logits -- what the model predicts;
* ``"noisy"``: p_y of the logits the loss was computed on -- Noisy Softmax's noise on the
  target logit (Eq. 5 of arXiv 1708.03769), a margin (CosFace, ArcFace) or a temperature;
  identical to clean for plain softmax. This is the softmax whose target gradient p_y - 1
  vanishes when it saturates, so it is the view in which postponement is measured.

An *event* says which step of a sample is its time to saturation (samples table):

* ``"first"``: ``first_saturated_step``, the first step at which it was seen saturated;
* ``"settled"``: ``settled_step``, the step of the first visit from which on it was never
  again seen below tau. It is judged at the run's end: a sample whose last visit was below
  tau has none (right-censored at the run's last step), and a longer run could still undo a
  settled step, so compare settled times of runs of the same length.

Runs recorded before the noisy view and the settled event existed lack their columns; asking
for them raises a :class:`~satkit.analysis.RunError` that names the missing column.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from satkit.analysis.errors import RunError
from satkit.schema import VIEWS, view_column
from satkit.validation import check_choice

__all__ = ["EVENTS", "VIEWS", "VIEW_LABELS", "check_event", "check_view", "event_column",
           "require_column"]

#: The per-sample events (see the module docstring).
EVENTS: tuple[str, ...] = ("first", "settled")
_EVENT_COLUMNS = {"first": "first_saturated_step", "settled": "settled_step"}
#: How tables and figures name each view.
VIEW_LABELS = {"clean": "clean", "noisy": "training logits"}


def check_view(saturation: object) -> str:
    """Return ``saturation`` if it is a view, else raise a ValueError naming the argument.

    Example:
        >>> check_view("noisy")
        'noisy'
        >>> check_view("nosiy")
        Traceback (most recent call last):
        ...
        ValueError: saturation must be one of clean, noisy; got 'nosiy'
    """
    return check_choice("saturation", saturation, VIEWS)


def check_event(event: object) -> str:
    """Return ``event`` if it is an event (``"first"``, ``"settled"``), else ValueError."""
    return check_choice("event", event, EVENTS)


def event_column(event: str, saturation: str) -> str:
    """The samples-table column holding ``event`` in a view.

    Raises:
        ValueError: an unknown event or view.

    Example:
        >>> event_column("first", "clean"), event_column("settled", "noisy")
        ('first_saturated_step', 'settled_step_noisy')
    """
    return view_column(_EVENT_COLUMNS[check_event(event)], check_view(saturation))


def require_column(frame: pd.DataFrame, column: str, table: str,
                   path: Path | None = None) -> pd.Series:
    """``frame[column]``, or a :class:`RunError` that names the column and the table.

    Args:
        frame: the table.
        column: the column wanted.
        table: what the table is, for the message (``"metrics"``, ``"samples"``).
        path: the run directory, when known, for the message.

    Raises:
        RunError: the column is missing; for a noisy-view or settled column the message says
            the run predates them and how to ask for what it has.
    """
    if column in frame.columns:
        return frame[column]
    where = f"{path}: " if path is not None else ""
    fixes = [fix for needed, fix in (("noisy" in column, "saturation='clean'"),
                                     (column.startswith("settled"), "event='first'")) if needed]
    hint = (f" (the run was recorded before satkit kept the training-logit view and the "
            f"settled event; ask for {' and '.join(fixes)})") if fixes \
        else f"; has {list(frame.columns)}"
    raise RunError(f"{where}{table} table has no column {column!r}{hint}")
