"""The addresses this machine answers on, for the banner: what to type into a phone.

Read from the machine's own interfaces (psutil); nothing is sent anywhere.
"""

from __future__ import annotations

import ipaddress
import socket

import psutil

EVERY_INTERFACE = ("0.0.0.0", "::", "")


def listens_everywhere(host: str) -> bool:
    return host in EVERY_INTERFACE


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach an address (127.0.0.1, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def machine_addresses(ipv6: bool) -> list[str]:
    """Every address of this machine's interfaces that are up: loopback first, then the
    LAN ones; IPv6 ones (link-local left out: a URL cannot carry them usefully) only if
    asked. Empty when the interfaces cannot be read."""
    try:
        interfaces = psutil.net_if_addrs()
        stats = psutil.net_if_stats()
    except (OSError, RuntimeError):
        return []
    families = (socket.AF_INET, socket.AF_INET6) if ipv6 else (socket.AF_INET,)
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for name, addresses in interfaces.items():
        if name in stats and not stats[name].isup:
            continue
        for address in addresses:
            if address.family not in families:
                continue
            try:
                parsed = ipaddress.ip_address(address.address.split("%", 1)[0])
            except ValueError:
                continue
            if parsed.is_link_local or parsed in found:
                continue
            found.append(parsed)
    found.sort(key=lambda ip: (not ip.is_loopback, ip.version, int(ip)))
    return [str(ip) for ip in found]


def url_for(address: str, port: int) -> str:
    return f"http://[{address}]:{port}" if ":" in address else f"http://{address}:{port}"
