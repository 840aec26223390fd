"""Read a running TensorBoard server back over its HTTP data API (what the tests and the
notebooks use to check what is served)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

__all__ = ["TensorBoardClient", "TensorBoardError"]

# No proxy, ever: requests go straight to the local server (a proxy in the environment must
# not see them, nor turn a loopback request into a network one).
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class TensorBoardError(RuntimeError):
    """TensorBoard could not be started, or a request to it failed."""


class TensorBoardClient:
    """Read a running TensorBoard's HTTP data API (``/data/...``), as the browser does.

    Args:
        url: the server's base URL, e.g. ``http://localhost:6006/``.
        timeout: seconds per request.

    Requests never go through a proxy. Errors raise :class:`TensorBoardError`.
    """

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.timeout = timeout

    def get(self, path: str, **params: str) -> Any:
        """GET ``path`` (relative to the base URL) with query ``params``; the decoded JSON."""
        return self._request(path, params)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        """POST a JSON ``body`` to ``path`` (the hparams plugin's API); the decoded JSON."""
        return self._request(path, {}, body)

    def _request(self, path: str, params: dict[str, str],
                 body: dict[str, Any] | None = None) -> Any:
        url = self.url + path.lstrip("/")
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data, headers = None, {}
        if body is not None:
            data = json.dumps(body).encode()
            # TensorBoard rejects POSTs without this header (its XSRF protection).
            headers = {"Content-Type": "application/json", "X-XSRF-Protected": "1"}
        request = urllib.request.Request(url, data=data, headers=headers)
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                return json.loads(response.read().decode("utf-8"))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise TensorBoardError(f"{request.get_method()} {url} failed: {exc}") from exc

    def ready(self) -> bool:
        """Whether the server answers ``/data/runs``."""
        try:
            self.runs()
        except TensorBoardError:
            return False
        return True

    def runs(self) -> list[str]:
        """The run names served (paths relative to the logdir, e.g. ``softmax_seed=0``)."""
        return list(self.get("data/runs"))

    def plugins(self) -> dict[str, Any]:
        """``/data/plugins_listing``: plugin name -> listing (``enabled``: it has data)."""
        return dict(self.get("data/plugins_listing"))

    def scalar_tags(self) -> dict[str, list[str]]:
        """Run -> its scalar tags."""
        return {run: sorted(tags) for run, tags in self.get("data/plugin/scalars/tags").items()}

    def scalars(self, run: str, tag: str) -> list[tuple[float, int, float]]:
        """The ``(wall_time, step, value)`` points of one scalar series, in step order."""
        points = self.get("data/plugin/scalars/scalars", run=run, tag=tag)
        return [(float(w), int(s), float(v)) for w, s, v in points]

    def histogram_tags(self) -> dict[str, list[str]]:
        """Run -> its histogram tags."""
        return {run: sorted(tags)
                for run, tags in self.get("data/plugin/histograms/tags").items()}

    def histograms(self, run: str, tag: str) -> list[tuple[float, int, list[list[float]]]]:
        """The ``(wall_time, step, [[left, right, count], ...])`` of one histogram series."""
        points = self.get("data/plugin/histograms/histograms", run=run, tag=tag)
        return [(float(w), int(s), buckets) for w, s, buckets in points]

    def custom_scalars_layout(self) -> dict[str, Any]:
        """The merged custom-scalars layout (``{"category": [{"title": ..., "chart": [...]}]}``)."""
        return dict(self.get("data/plugin/custom_scalars/layout"))

    def hparams_experiment(self) -> dict[str, Any]:
        """The hparams plugin's experiment: ``hparamInfos`` and ``metricInfos``."""
        return dict(self.post("data/plugin/hparams/experiment", {"experimentName": ""}))

    def hparams_session_groups(self) -> dict[str, dict[str, Any]]:
        """What the HPARAMS table shows, per trial (run): its hyperparameters and its metric
        values, ``{run: {name: value, ..., metric tag: value, ...}}``."""
        reply = self.post("data/plugin/hparams/session_groups", {
            "experimentName": "", "startIndex": 0, "sliceSize": 10_000,
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE",
                                "STATUS_RUNNING"]})
        return {group["name"]: {**group.get("hparams", {}),
                                **{m["name"]["tag"]: m["value"]
                                   for m in group.get("metricValues", [])}}
                for group in reply.get("sessionGroups", [])}
