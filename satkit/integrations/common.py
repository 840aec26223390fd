"""What both framework callbacks share and that needs no framework: finding the head and the
error for a missing extra (:class:`~satkit.hooks.RecorderOptions` is re-exported here). The run
directory is written by :class:`satkit.run_writer.RunWriter`, as for ``satkit train``.

Pure PyTorch and the standard library; importing this module imports no framework.
"""

from __future__ import annotations

from torch import nn

from satkit.hooks.capture import check_head
from satkit.hooks.options import RecorderOptions

__all__ = ["RecorderOptions", "find_head", "missing_extra"]


def missing_extra(framework: str, extra: str) -> ImportError:
    """The error raised when a callback is used without its framework installed.

    Example:
        >>> str(missing_extra("Lightning", "lightning"))
        "satkit's Lightning callback needs Lightning: pip install 'satkit[lightning]'"
    """
    return ImportError(f"satkit's {framework} callback needs {framework}: "
                       f"pip install 'satkit[{extra}]'")


def find_head(model: nn.Module, head: str | nn.Module) -> nn.Module:
    """The classifier head of ``model``: ``head`` itself, or the submodule at a dotted path.

    Args:
        model: the model being trained.
        head: a submodule of ``model``, or its dotted attribute path (``"classifier"``,
            ``"lm_head"``, ``"model.lm_head"``, ``"layers.3"``).

    Returns:
        The head, checked to be Linear-like (an ``nn.Module`` with a 2-D ``weight``, e.g. an
        ``nn.Linear``, a satkit head, a tied-embedding output layer).

    Raises:
        ValueError: the path does not exist (the message lists the model's top-level children
            and those of the module where the path broke off), or the module given is not part
            of ``model``.
        TypeError: ``head`` is neither a string nor a module, or the module is not Linear-like.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> find_head(net, "2")
        Linear(in_features=8, out_features=3, bias=True)
        >>> find_head(net, "head")
        Traceback (most recent call last):
        ...
        ValueError: head='head': the model has no submodule 'head'; ... ['0', '1', '2']
    """
    if isinstance(head, nn.Module):
        if not any(m is head for m in model.modules()):
            raise ValueError(f"head: the {type(head).__name__} given is not a submodule of the "
                             f"{type(model).__name__} being trained")
        return check_head(head)
    if not isinstance(head, str) or not head:
        raise TypeError(f"head must be a submodule or its dotted path (e.g. 'classifier', "
                        f"'lm_head'), got {head!r}")
    top = [name for name, _ in model.named_children()]
    module, parts = model, head.split(".")
    for i, part in enumerate(parts):
        children = dict(module.named_children())
        if part not in children:
            where = "the model" if i == 0 else repr(".".join(parts[:i]))
            below = "" if i == 0 else f" (its children are {list(children)})"
            raise ValueError(f"head={head!r}: {where} has no submodule {part!r}{below}; the "
                             f"model's top-level children are {top}")
        module = children[part]
    try:
        return check_head(module)
    except TypeError as err:
        raise TypeError(f"head={head!r}: {err}") from None
