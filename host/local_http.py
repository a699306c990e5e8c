"""urllib without proxies for this machine's own addresses.

With http_proxy/HTTP_PROXY set (common in companies), urllib sends every request to the
proxy, 127.0.0.1 included, unless no_proxy says otherwise: `serve` then never sees Triton
ready. Requests to loopback, to 0.0.0.0 and to any address of this machine go direct;
others keep the environment's proxy settings (a remote server may need them).
"""

import functools
import ipaddress
import socket
import urllib.parse
import urllib.request

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@functools.lru_cache(maxsize=64)
def is_this_machine(host):
    """True for loopback, the unspecified address, localhost, and addresses bound on this machine."""
    if not host:
        return True
    host = host.strip("[]")
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name: resolving it here could hang; the proxy settings decide
    if address.is_loopback or address.is_unspecified:
        return True
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, 0))  # only an address of this machine can be bound
            return True
        except OSError:
            return False


def urlopen(request, timeout):
    """urllib.request.urlopen, direct (no proxy) when the URL's host is this machine."""
    url = request.full_url if isinstance(request, urllib.request.Request) else request
    if is_this_machine(urllib.parse.urlsplit(url).hostname):
        return _DIRECT.open(request, timeout=timeout)
    return urllib.request.urlopen(request, timeout=timeout)
