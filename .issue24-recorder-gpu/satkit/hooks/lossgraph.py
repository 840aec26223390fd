"""The loss's own log-softmax of the head's logits, read from the loss's autograd graph.

A cross-entropy loss (``F.cross_entropy``, ``nn.CrossEntropyLoss``, a Hugging Face model's
loss, ``F.log_softmax`` then ``F.nll_loss``, with or without label smoothing) computes
``log_softmax(logits)`` and keeps it for backward: the saved result of the graph's
``LogSoftmaxBackward0`` node. Those are exactly the log-probabilities the recorder needs, so a
recorder given the loss before backward (``SaturationRecorder.set_loss``) reads log p_y there
instead of computing a second log-softmax over (positions x classes): for a language model's
head that is the one costly operation of a recorded step.

The saved tensor is used only when it is, provably, the log-softmax of the head's logits:

* the node takes the log-softmax over the last dimension;
* the path from the node down to the head's output holds only operations that keep every
  value and its place: a view or reshape, a contiguous copy, and at most one dtype cast,
  which must not lose precision (float32 or float64 log-probabilities, float64 for float64
  logits) and stays on the logits' device;
* it has one value per position and class.

Anything else (a temperature, a slice of the positions, a softmax computed another way, a
compiled loss) is not recognised, and the recorder computes its own log-softmax: the numbers
are the same either way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["MAX_NODES", "find_log_softmax"]

#: Autograd nodes visited from the loss, nearest first, before giving up (the log-softmax of
#: a cross-entropy is a few nodes from the loss; the budget bounds the cost of a loss that
#: has none).
MAX_NODES = 64

#: Backward nodes of operations that keep every value in its (logical) place.
_KEEP_PLACE = frozenset({"ViewBackward0", "UnsafeViewBackward0", "ReshapeAliasBackward0",
                         "CloneBackward0", "AliasBackward0"})
_CAST = "ToCopyBackward0"
_PATH_LIMIT = 8


def _source_of(node: object, sources: dict[int, int]) -> int | None:
    """Index of the source reached from ``node``'s input along value-keeping nodes, or None."""
    casts = 0
    current = node.next_functions[0][0] if node.next_functions else None
    for _ in range(_PATH_LIMIT):
        if current is None:
            return None
        if id(current) in sources:
            return None if casts > 1 else sources[id(current)]
        name = current.name()
        if name == _CAST:
            casts += 1
        elif name not in _KEEP_PLACE:
            return None
        current = current.next_functions[0][0] if current.next_functions else None
    return None


def _usable(result: Tensor, dim: int, logits: Tensor) -> bool:
    """Whether ``result`` (a saved log-softmax over ``dim``) holds the log-probabilities of
    the (P, C) ``logits`` at no loss of precision."""
    p, c = logits.shape
    if dim >= 1 << 63:  # a negative dim, as autograd reports it (unsigned 64-bit)
        dim -= 1 << 64
    precise = (torch.float64,) if logits.dtype == torch.float64 else (torch.float32,
                                                                      torch.float64)
    return (result.dim() >= 1 and dim % result.dim() == result.dim() - 1
            and result.shape[-1] == c and result.numel() == p * c
            and result.dtype in precise and result.device == logits.device
            and result.is_contiguous())


def find_log_softmax(loss: Tensor, sources: Sequence[tuple[object, Tensor]]) -> list[Tensor | None]:
    """For each head output, the log-softmax of its logits that ``loss``'s graph saved, if any.

    Call before ``loss.backward()`` (backward frees the saved tensors).

    Args:
        loss: a tensor whose graph may take the log-softmax of the logits.
        sources: per head output, ``(grad_fn, logits)``: the output's autograd node and its
            values as a (P, C) tensor.

    Returns:
        Per source, a (P, C) view of the saved log-softmax (the graph's own tensor: read it,
        do not change it), or None where the graph has none that is provably of those logits
        (see the module's rules). No host sync.
    """
    found: list[Tensor | None] = [None] * len(sources)
    root = loss.grad_fn if isinstance(loss, Tensor) else None
    if root is None or not sources:
        return found
    index = {id(node): i for i, (node, _) in enumerate(sources) if node is not None}
    queue, seen = deque([root]), {id(root)}
    while queue and len(seen) <= MAX_NODES and any(f is None for f in found):
        node = queue.popleft()
        if node.name() == "LogSoftmaxBackward0":
            i = _source_of(node, index)
            if i is not None and found[i] is None:
                try:
                    result, dim = node._saved_result, node._saved_dim
                except RuntimeError:  # already freed by a backward
                    result = None
                if result is not None and _usable(result, dim, sources[i][1]):
                    found[i] = result.view(sources[i][1].shape)
        for child, _ in node.next_functions:
            if child is not None and id(child) not in seen and id(child) not in index:
                seen.add(id(child))
                queue.append(child)
    return found
