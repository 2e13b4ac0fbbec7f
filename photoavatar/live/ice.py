"""Loopback ICE mode: keep WebRTC media on 127.0.0.1 (PHOTOAVATAR_ICE_LOOPBACK=1).

aiortc (through aioice) never offers a 127.0.0.1 candidate, and a browser hides its own addresses behind
mDNS names, so two peers on one machine normally meet on a LAN address or through multicast DNS. In
loopback mode the process gathers only 127.0.0.1 and ignores a client's candidates that are not loopback,
so no packet leaves loopback: what the tests and benchmarks need. Browsers ignore loopback candidates
unless told (Chromium: `--allow-loopback-in-peer-connection`), so the mode is off by default.

What a process gathers is aioice's process-wide choice: the server sets it once, at start, from its settings
(`live.transports.Transports.running`), and puts aioice back as it was at shutdown. Importing this module
changes nothing.
"""

from __future__ import annotations

import ipaddress

import aioice.ice

_aioice_host_addresses = aioice.ice.get_host_addresses


def _loopback_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else []


def restrict_to_loopback(enabled: bool) -> None:
    """Gather only 127.0.0.1 in this process (True) or every interface, as aioice does (False)."""
    aioice.ice.get_host_addresses = _loopback_host_addresses if enabled else _aioice_host_addresses


def restricted_to_loopback() -> bool:
    return aioice.ice.get_host_addresses is _loopback_host_addresses


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
