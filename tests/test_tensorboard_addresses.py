"""Which hosts expose a TensorBoard server to the network, and the URLs it answers on."""

from __future__ import annotations

import socket
from collections import namedtuple

import pytest

from satkit.tensorboard.addresses import exposed, serving_urls


@pytest.mark.parametrize(("host", "public"), [
    ("localhost", False), ("127.0.0.1", False), ("127.0.0.2", False), ("::1", False),
    ("0.0.0.0", True), ("::", True), ("", True), ("192.0.2.7", True), ("10.1.2.3", True),
    ("no-such-host.invalid", True),
])
def test_only_loopback_keeps_the_server_on_this_machine(host, public):
    assert exposed(host) is public


def test_every_interface_lists_each_address_loopback_first(monkeypatch):
    import psutil

    entry = namedtuple("snicaddr", "family address")  # what the code reads of psutil's

    monkeypatch.setattr(psutil, "net_if_addrs", lambda: {
        "eth0": [entry(socket.AF_INET, "192.0.2.2"), entry(socket.AF_INET6, "fd00::2"),
                 entry(socket.AF_INET6, "fe80::1%eth0"), entry(psutil.AF_LINK, "02:00:00")],
        "lo": [entry(socket.AF_INET, "127.0.0.1"), entry(socket.AF_INET6, "::1")],
    })
    assert serving_urls("0.0.0.0", 6006) == [("http://127.0.0.1:6006/", "this machine only"),
                                             ("http://192.0.2.2:6006/", "eth0")]
    assert serving_urls("::", 80) == [
        ("http://127.0.0.1:80/", "this machine only"), ("http://[::1]:80/", "this machine only"),
        ("http://192.0.2.2:80/", "eth0"), ("http://[fd00::2]:80/", "eth0")]


def test_a_named_host_is_served_at_its_own_addresses():
    assert serving_urls("127.0.0.1", 6006) == [("http://127.0.0.1:6006/", "this machine only")]
    assert serving_urls("192.0.2.7", 1) == [("http://192.0.2.7:1/", "")]
    assert serving_urls("no-such-host.invalid", 1) == [("http://no-such-host.invalid:1/", "")]
