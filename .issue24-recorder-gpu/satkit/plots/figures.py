"""The named figures: the dashboard and the figures the dashboard leaves out, each a function
returning a Figure, and :data:`FIGURES` by name (``satkit plot --figure NAME``).

Every figure takes run(s) or directories (comparison directories expand to their runs) and
draws both views of saturation where a view applies, one colour per method (or alpha2), with
the title saying what is shown; with several seeds per method the curves are the mean over the
seeds with their range as a band and the survival curves pool them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from matplotlib.figure import Figure

from satkit.analysis import has_several_methods, run_table
from satkit.plots._common import PlotData, run_sort_key, runs_of
from satkit.plots.composite import compose, dashboard, has_noise
from satkit.plots.curves import feature_norms, gradient_curves, noise_curves, saturated_fraction
from satkit.plots.distribution import p_target_heatmap
from satkit.plots.learning import learning_curves
from satkit.plots.methods import method_comparison
from satkit.plots.reliability import reliability_figure
from satkit.plots.survival_curves import survival
from satkit.plots.sweep import alpha_sweep
from satkit.schema import DEFAULT_TAU
from satkit.validation import check_choice

__all__ = ["FIGURES", "distribution_figure", "figure", "gradient_figure",
           "learning_curves_figure", "norms_figure", "saturation_figure", "summary_figure",
           "survival_figure"]

_VIEWS = ("clean", "noisy")
_SUMMARY_FIGURES = ("test_error", "median_saturation_step", "median_saturation_step_noisy",
                    "grad_target_late")


def saturation_figure(runs: PlotData, *, steps: str = "log", max_points: int | None = 2000,
                      title: str | None = None) -> Figure:
    """The share of the batch at or above each threshold, clean and under the training logits
    (one line style per threshold)."""
    def share(view: str):
        return lambda ax, rs, pooled: saturated_fraction(rs, ax=ax, saturation=view,
                                                         max_points=max_points, steps=steps,
                                                         legend=False)

    return compose(runs, [share(v) for v in _VIEWS], columns=2, size=(12.0, 5.0), title=title,
                   subtitle="share of the batch with p_y >= each threshold (line style), clean "
                            "and under the training logits", legend_from=0)


def survival_figure(runs: PlotData, *, steps: str = "log", title: str | None = None) -> Figure:
    """Kaplan-Meier curves of the samples: first saturation (top) and settled, from then on
    saturated (bottom), clean (left) and under the training logits (right), 95% bands."""
    draws = [(lambda ax, rs, pooled, v=view, e=event: survival(
        rs, ax=ax, saturation=v, event=e, pool=pooled, steps=steps, legend=False))
        for event in ("first", "settled") for view in _VIEWS]
    return compose(runs, draws, columns=2, size=(12.0, 8.0), title=title,
                   subtitle="fraction of samples without the event, 95% pointwise band; dotted "
                            "line: the median")


def gradient_figure(runs: PlotData, *, steps: str = "linear", max_points: int | None = 2000,
                    title: str | None = None) -> Figure:
    """The target-logit gradient |dL/df_y| and the gradient norms (all logits, sent back into
    the network, the class weights), log scale."""
    draws = [(lambda ax, rs, pooled, c=column: gradient_curves(
        rs, ax=ax, column=c, max_points=max_points, aggregate=pooled, steps=steps,
        late=0.25 if c == "grad_target_mean" else None, legend=False))
        for column in ("grad_target_mean", "grad_logits_norm_mean", "grad_features_norm_mean",
                       "grad_weight_norm")]
    return compose(runs, draws, columns=2, size=(12.0, 8.0), title=title,
                   subtitle="how much gradient still flows (batch means, log scale)")


def norms_figure(runs: PlotData, *, steps: str = "linear", max_points: int | None = 2000,
                 title: str | None = None) -> Figure:
    """The feature and class-weight norms (their collapse is Noisy Softmax's failure without
    normalisation) and the noise's mean and maximum."""
    draws: list = [lambda ax, rs, pooled: feature_norms(rs, ax=ax, max_points=max_points,
                                                        steps=steps, legend=False)]
    if has_noise(runs_of(runs)):
        draws += [(lambda ax, rs, pooled, c=column: noise_curves(
            rs, ax=ax, column=c, max_points=max_points, steps=steps, legend=False))
            for column in ("noise_mean", "noise_max")]
    fig = compose(runs, draws, columns=len(draws), size=(6.0 * len(draws), 5.0), title=title,
                  subtitle="||X|| solid, ||W_y|| dashed (log scale); the noise on the target "
                           "logit, logit units")
    return fig


def learning_curves_figure(runs: PlotData, *, title: str | None = None) -> Figure:
    """Test and training error, test and training loss per epoch (``epochs.csv``)."""
    draws = [(lambda ax, rs, pooled, c=column: learning_curves(rs, ax=ax, column=c,
                                                               legend=False))
             for column in ("test_error", "train_error", "test_loss", "train_loss")]
    return compose(runs, draws, columns=2, size=(12.0, 8.0), title=title,
                   subtitle="one marker per finished epoch; training figures from the training "
                            "logits")


def summary_figure(runs: PlotData, *, tau: float = DEFAULT_TAU,
                   title: str | None = None) -> Figure:
    """Test error, the median sample onset in both views and the late gradient: against
    alpha2 (softmax and Noisy Softmax runs) or by method (several methods), with the
    interval over seeds where there are several."""
    runs = sorted(runs_of(runs), key=run_sort_key)
    table = run_table(runs, tau=tau)
    by_method = has_several_methods(runs)

    def panel(name: str):
        if by_method:
            return lambda ax, rs, pooled: method_comparison(table, ax=ax, figure=name)
        # the test-error sweep takes the runs: it tells CIFAR10 from CIFAR10+ for the paper
        return lambda ax, rs, pooled: alpha_sweep(rs if name == "test_error" else table, ax=ax,
                                                  figure=name, legend=name == "test_error")

    return compose(runs, [panel(n) for n in _SUMMARY_FIGURES], columns=2, size=(12.0, 8.0),
                   title=title, subtitle="one value per run; mean and 95% interval over seeds "
                                         "where there are several", legend_from=None)


def distribution_figure(runs: PlotData, *, steps: str = "log",
                        title: str | None = None) -> Figure:
    """Each run's per-sample p_y distribution over training, clean (left) and under the
    training logits (right): the run's histograms when it has enough, else its batch
    quantiles (each panel says which)."""
    runs = sorted(runs_of(runs), key=run_sort_key)
    draws = [(lambda ax, rs, pooled, r=run, v=view: p_target_heatmap(
        [r], ax=ax, saturation=v, steps=steps))
        for run in runs for view in _VIEWS]
    return compose(runs, draws, columns=2, size=(12.0, 3.2 * len(runs) + 1.2), title=title,
                   subtitle="colour: fraction of samples per p_y bin at each step")


#: The named figures of ``satkit plot --figure NAME``: name -> function(runs) -> Figure.
FIGURES: Mapping[str, Callable[..., Figure]] = MappingProxyType({
    "dashboard": dashboard,
    "saturation": saturation_figure,
    "survival": survival_figure,
    "summary": summary_figure,
    "gradient": gradient_figure,
    "norms": norms_figure,
    "distribution": distribution_figure,
    "learning-curves": learning_curves_figure,
    "reliability": reliability_figure,
})


def figure(name: str, runs: PlotData, **kwargs) -> Figure:
    """The named figure ``name`` (a key of :data:`FIGURES`) of ``runs``.

    Raises:
        ValueError: an unknown ``name``, naming the figures there are.
    """
    check_choice("figure", name, tuple(FIGURES))
    return FIGURES[name](runs, **kwargs)
