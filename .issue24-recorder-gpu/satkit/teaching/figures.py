"""Figures of the toy computations in :mod:`satkit.teaching.toy` (notebook 01).

Axes-level functions take a frame from :mod:`~satkit.teaching.toy` and ``ax=None`` and return
the Axes. :func:`explorer` and :func:`explorer_grid` build a :class:`matplotlib.figure.Figure`
directly (not through pyplot), so a widget callback that redraws it leaks no open figures and
a notebook shows each one exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from satkit.plots.palette import alpha2_color
from satkit.teaching.toy import noisy_response

__all__ = ["explorer", "explorer_grid", "fitting_path_plot", "margin_plot", "noise_angle_plot",
           "sigmoid_plot"]

_CLEAN, _NOISY, _NOISE = "#000000", "#0072B2", "#D55E00"


def _ax(ax):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.gca()


def margin_plot(frame: pd.DataFrame, *, ax=None, tau: float = 0.99):
    """``p_y`` (left axis) and ``|dL/df_y|`` (right axis, log) against the logit margin.

    Args:
        frame: :func:`satkit.teaching.saturation_by_margin`.
        ax: the Axes (default: pyplot's current one).
        tau: the saturation threshold, drawn where ``p_y`` reaches it.

    Returns:
        The left Axes (the gradient is on its ``twinx``).
    """
    ax = _ax(ax)
    ax.plot(frame["margin"], frame["p_target"], color=_CLEAN, label="$p_y$")
    ax.set(xlabel="logit margin $f_y - f_j$", ylabel="$p_y$", ylim=(0, 1.02))
    right = ax.twinx()
    right.semilogy(frame["margin"], -frame["grad_target"], color=_NOISE, ls="--",
                   label=r"$|\partial L/\partial f_y| = 1 - p_y$")
    right.set_ylabel(r"$|\partial L / \partial f_y|$ (log)", color=_NOISE)
    hit = frame[frame["p_target"] >= tau]
    if len(hit):
        m = hit["margin"].iloc[0]
        ax.axvspan(m, frame["margin"].max(), color="0.9", zorder=0)
        ax.axvline(m, color="0.5", lw=0.8, ls=":")
        ax.text(m, 0.05, f"  saturated\n  ($p_y \\geq {tau:g}$)", fontsize=8, va="bottom")
    lines = ax.get_lines()[:1] + right.get_lines()[:1]
    ax.legend(lines, [ln.get_label() for ln in lines], loc="center right", fontsize=8)
    return ax


def sigmoid_plot(frame: pd.DataFrame, *, ax=None):
    """The sigmoid and its derivative, with the two-class softmax ``p_y`` on top of it.

    Args:
        frame: :func:`satkit.teaching.sigmoid_saturation`.

    Returns:
        The Axes.
    """
    ax = _ax(ax)
    ax.plot(frame["z"], frame["sigmoid"], color=_CLEAN, label=r"$\sigma(z)$")
    ax.plot(frame["z"], frame["p_target_2class"], color=_NOISY, ls=":", lw=2.5,
            label="2-class softmax $p_y$ at margin $z$")
    ax.plot(frame["z"], frame["dsigmoid"], color=_NOISE, ls="--", label=r"$\sigma'(z)$")
    flat = frame["dsigmoid"] < 0.01
    for side in (frame["z"] < 0, frame["z"] > 0):
        zs = frame.loc[flat & side, "z"]
        if len(zs):
            ax.axvspan(zs.min(), zs.max(), color="0.9", zorder=0)
    ax.set(xlabel="$z$ (pre-activation, or logit margin)", ylabel="value")
    ax.legend(fontsize=8, loc="center left")
    return ax


def noise_angle_plot(frame: pd.DataFrame, *, ax=None):
    """Mean Eq. 5 noise against the angle theta, one line per ``||W_y|| ||X||``.

    Args:
        frame: :func:`satkit.teaching.noise_by_angle`.

    Returns:
        The Axes.
    """
    ax = _ax(ax)
    scales = sorted(frame["scale"].unique())
    shades = np.linspace(0.35, 1.0, len(scales))
    for s, shade in zip(scales, shades, strict=True):
        part = frame[frame["scale"] == s]
        ax.plot(part["angle"], part["noise"], color=_NOISE, alpha=float(shade),
                label=rf"$\|W_y\|\,\|X\| = {s:g}$")
    ax.set(xlabel=r"angle $\theta$ between $W_y$ and $X$ (degrees)",
           ylabel="mean noise on $f_y$ (logit units)")
    ax.invert_xaxis()
    ax.annotate("fitted\n(cos θ → 1)", xy=(0, 0), xytext=(25, frame["noise"].max() * 0.3),
                fontsize=8, arrowprops={"arrowstyle": "->", "color": "0.4"})
    ax.legend(fontsize=8, loc="upper right")
    return ax


def fitting_path_plot(frame: pd.DataFrame, *, ax=None):
    """A sample being fitted: clean vs noisy ``p_y`` (left) and the noise (right axis).

    Args:
        frame: :func:`satkit.teaching.fitting_path`.

    Returns:
        The left Axes (the noise is on its ``twinx``).
    """
    ax = _ax(ax)
    ax.plot(frame["t"], frame["p_clean"], color=_CLEAN, label="clean $p_y$")
    ax.plot(frame["t"], frame["p_noisy_mean"], color=_NOISY, label="noisy $P_y$ (mean)")
    ax.set(xlabel=r"fitting progress ($\theta$: {:.0f}° → {:.0f}°, $\|W\|\|X\|$: {:g} → {:g})"
           .format(frame["angle"].iloc[0], frame["angle"].iloc[-1], frame["scale"].iloc[0],
                   frame["scale"].iloc[-1]), ylabel="probability of the true class", ylim=(0, 1.02))
    right = ax.twinx()
    right.plot(frame["t"], frame["noise_mean"], color=_NOISE, ls="--", label="mean noise")
    right.set_ylabel("mean noise on $f_y$", color=_NOISE)
    right.set_ylim(bottom=0)
    lines = ax.get_lines() + right.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="center left")
    return ax


def _explorer_axes(axes, alpha2: float, margin: float, angle: float, max_margin: float,
                   num_classes: int, draws: int) -> None:
    left, right = axes
    margins = np.linspace(0.05, max_margin, 80)
    curve = noisy_response(margins, alpha2=alpha2, angle_deg=angle, num_classes=num_classes,
                           draws=draws)
    here = noisy_response([margin], alpha2=alpha2, angle_deg=angle, num_classes=num_classes,
                          draws=draws).iloc[0]
    colour = alpha2_color(alpha2) if alpha2 > 0 else _NOISY
    left.plot(curve["margin"], curve["p_clean"], color=_CLEAN, label="clean $p_y$ (softmax)")
    left.plot(curve["margin"], curve["p_noisy_mean"], color=colour, label="noisy $P_y$, mean")
    left.fill_between(curve["margin"], curve["p_noisy_q10"], curve["p_noisy_q90"], color=colour,
                      alpha=0.2, lw=0, label="noisy $P_y$, 10-90% of draws")
    left.axhline(0.99, color="0.5", lw=0.8, ls=":")
    left.plot([margin, margin], [here["p_clean"], here["p_noisy_mean"]], "o", color="0.3", ms=4)
    left.set(xlabel="clean logit margin", ylabel="probability of the true class",
             ylim=(0, 1.02), title=rf"$\alpha^2$={alpha2:g}, $\theta$={angle:g}°: "
             f"noise {here['noise_mean']:.2f}")
    left.legend(fontsize=7, loc="lower right")
    right.semilogy(curve["margin"], curve["grad_clean"], color=_CLEAN, label="softmax: $1-p_y$")
    right.semilogy(curve["margin"], curve["grad_noisy_mean"], color=colour,
                   label="Noisy Softmax: E$[1-P_y]$")
    right.plot([margin, margin], [here["grad_clean"], here["grad_noisy_mean"]], "o", color="0.3",
               ms=4)
    ratio = here["grad_noisy_mean"] / max(here["grad_clean"], 1e-300)
    right.set(xlabel="clean logit margin", ylabel=r"$|\partial L/\partial f_y|$ (log)",
              title=f"margin {margin:g}: gradient × {ratio:.1f}")
    right.set_ylim(bottom=max(1e-6, float(curve["grad_clean"].min()) * 0.5), top=1.5)
    right.legend(fontsize=7, loc="lower left")


def explorer(alpha2: float, margin: float, angle: float, *, max_margin: float = 12.0,
             num_classes: int = 10, draws: int = 1000):
    """Two panels for one setting: ``p_y`` and the target gradient against the clean margin.

    Left: clean ``p_y`` vs the noisy ``P_y`` the loss sees (mean and 10-90% band over draws of
    xi). Right: the gradient on the target logit, clean vs the mean under noise. The dots mark
    the chosen ``margin``; the title gives the mean noise there and the gradient ratio.

    Args:
        alpha2: the paper's alpha^2.
        margin: the clean logit margin marked, in (0, max_margin].
        angle: theta in [0, 90) degrees (the margin is reached with ``||W|| ||X|| =
            margin / cos theta``).

    Returns:
        A :class:`matplotlib.figure.Figure` (not registered with pyplot).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6), layout="constrained")
    _explorer_axes(fig.subplots(1, 2), alpha2, margin, angle, max_margin, num_classes, draws)
    return fig


def explorer_grid(settings: Sequence[tuple[float, float, float]], *, max_margin: float = 12.0,
                  num_classes: int = 10, draws: int = 500):
    """:func:`explorer` for several ``(alpha2, margin, angle)`` settings, one row each.

    The static stand-in for the interactive sliders, readable without a running kernel.

    Returns:
        A :class:`matplotlib.figure.Figure` (not registered with pyplot).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.2 * len(settings)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(settings), 2))
    for row, (alpha2, margin, angle) in zip(axes, settings, strict=True):
        _explorer_axes(row, alpha2, margin, angle, max_margin, num_classes, draws)
    return fig
