"""Loopback ICE mode: keep WebRTC media on 127.0.0.1 (PHOTOAVATAR_ICE_LOOPBACK=1).

aiortc (through aioice) never offers a 127.0.0.1 candidate, and a browser hides its own addresses behind
mDNS names, so two peers on one machine normally meet on a LAN address or through multicast DNS. In
loopback mode the process gathers only 127.0.0.1 and ignores a client's candidates that are not loopback,
so no packet leaves loopback: what the tests and benchmarks need. Browsers ignore loopback candidates
unless told (Chromium: `--allow-loopback-in-peer-connection`), so the mode is off by default.
"""

from __future__ import annotations

import ipaddress

import aioice.ice

_original_host_addresses = aioice.ice.get_host_addresses
_loopback_only = False


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    if _loopback_only:
        return ["127.0.0.1"] if use_ipv4 else []
    return _original_host_addresses(use_ipv4, use_ipv6)


aioice.ice.get_host_addresses = _host_addresses


def restrict_to_loopback(enabled: bool) -> None:
    """Gather only 127.0.0.1 in this process (True) or every interface, as aioice does (False)."""
    global _loopback_only
    _loopback_only = enabled


def loopback_candidates_only(sdp: str) -> str:
    """SDP without the candidate lines whose address is not a loopback address (mDNS names included)."""
    return "".join(line for line in sdp.splitlines(keepends=True) if not _is_remote_candidate(line))


def _is_remote_candidate(line: str) -> bool:
    if not line.startswith("a=candidate:"):
        return False
    fields = line.split()
    if len(fields) < 5:
        return True
    try:
        return not ipaddress.ip_address(fields[4]).is_loopback
    except ValueError:  # an mDNS name such as 1f2e....local
        return True
