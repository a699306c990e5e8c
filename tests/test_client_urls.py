"""tritonize.Client's URLs: the scheme is honoured (TLS) or refused, never dropped; local servers never go
through a proxy (issue 23 items 11 and 18). End to end: tests/test_e2e_cortex_edge.py."""

import socket
import sys

import pytest

from tritonize.client.client import Client, grpc_channel_args, host_of, is_local_address, split_url


@pytest.mark.parametrize(
    "url,address,tls",
    [
        ("127.0.0.1:8000", "127.0.0.1:8000", False),
        ("http://h:8000/", "h:8000", False),
        ("https://h:8000", "h:8000", True),
        ("HTTPS://h", "h", True),
        ("grpc://h:8001", "h:8001", False),
        ("grpcs://h:8001", "h:8001", True),
    ],
)
def test_split_url(url, address, tls):
    assert split_url(url) == (address, tls)


def test_an_unknown_scheme_is_refused_not_dropped():
    with pytest.raises(ValueError, match="unsupported URL scheme 'ftp'"):
        split_url("ftp://h:8000")
    with pytest.raises(ValueError):
        Client("ws://127.0.0.1:8000")


def test_https_makes_a_tls_client():
    if sys.version_info >= (3, 12):  # tritonclient 2.51's HTTP client has no TLS there: a clear refusal
        with pytest.raises(ValueError, match="needs Python 3.10 or 3.11"):
            Client("https://127.0.0.1:8000")
    else:
        with Client("https://127.0.0.1:8000") as client:
            assert client.tls and client.url == "127.0.0.1:8000"
    with Client("grpcs://127.0.0.1:8001", protocol="grpc") as client:
        assert client.tls
    with Client("127.0.0.1:8001", protocol="grpc") as client:
        assert not client.tls


@pytest.mark.parametrize("address", ["127.0.0.1:1", "localhost:1", "[::1]:1", "127.5.5.5:1"])
def test_loopback_is_local(address):
    assert is_local_address(address)


def test_this_machines_own_name_is_local_and_others_are_not():
    assert is_local_address(f"{socket.gethostname()}:1")
    assert not is_local_address("192.0.2.1:8001")  # TEST-NET-1: never this machine's
    assert not is_local_address("no-such-host.invalid:8001")


def test_grpc_channel_args_disable_the_proxy_only_for_local_servers():
    assert ("grpc.enable_http_proxy", 0) in grpc_channel_args("127.0.0.1:8001")
    assert ("grpc.enable_http_proxy", 0) not in grpc_channel_args("192.0.2.1:8001")
    assert host_of("[::1]:8001") == "::1" and host_of("h:1") == "h" and host_of("h") == "h"
