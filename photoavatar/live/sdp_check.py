"""Check a client's SDP offer before aiortc sees it, and say what is wrong with a bad one.

aiortc's parser trusts its input: a port that is not a number raises ValueError, `a=setup:banana` a
KeyError, non-UTF-8 text an assertion, and an offer without a DTLS fingerprint (or with one in a hash
aiortc cannot check) is accepted, only to fail later in a task nobody awaits. Every such offer is refused
here (HTTP 400) with the line at fault, so the session can still take a good offer afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from photoavatar.live.transport import SignallingError

MAX_OFFER_LINES = 2000
MAX_MEDIA_SECTIONS = 16
# RFC 8841: without a=max-message-size the peer accepts 64 KiB; 0 means "no limit" (we keep our own cap).
DEFAULT_MAX_MESSAGE_BYTES = 65536
OWN_MAX_MESSAGE_BYTES = 262144  # aiortc's receive limit: never send more in one message either
FINGERPRINT_HASHES = ("sha-256", "sha-384", "sha-512")  # the ones aiortc can verify
SETUP_ROLES = ("actpass", "active", "passive")
_LINE = re.compile(r"[a-z]=.*", re.ASCII)
_M_LINE = re.compile(r"m=(?P<media>[a-z]+) (?P<port>[0-9]{1,5})(?:/[0-9]+)? (?P<proto>[A-Za-z0-9/]+)"
                     r"(?P<formats>(?: [A-Za-z0-9_.:-]+)+)", re.ASCII)
_FINGERPRINT = re.compile(r"a=fingerprint:(?P<hash>\S+) (?P<value>[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})+)", re.ASCII)
_HELP = "send the complete offer from RTCPeerConnection.createOffer (after setLocalDescription)"


@dataclass(frozen=True)
class OfferFacts:
    max_message_bytes: int  # the largest data-channel message the client accepts


def check_offer(offer: bytes | str) -> tuple[str, OfferFacts]:
    """The offer as text, and what the transport needs from it; SignallingError (400) saying what is wrong."""
    text = _as_text(offer)
    lines = [line for line in text.replace("\r\n", "\n").split("\n") if line]
    if len(lines) > MAX_OFFER_LINES:
        _refuse(f"the offer has {len(lines)} lines, more than {MAX_OFFER_LINES}")
    if not lines or lines[0] != "v=0":
        _refuse("the offer must start with the line v=0")
    for number, line in enumerate(lines, 1):
        if not _LINE.fullmatch(line):
            _refuse(f"line {number} is not an SDP line of the form x=value: {_excerpt(line)}")
    session, sections = _split_sections(lines)
    if not sections:
        _refuse("the offer has no media section: add a recvonly audio transceiver and the two data channels")
    if len(sections) > MAX_MEDIA_SECTIONS:
        _refuse(f"the offer has {len(sections)} media sections, more than {MAX_MEDIA_SECTIONS}")
    for section in sections:
        _check_section(section, session)
    if not any(section[0].startswith("m=audio ") for section in sections):
        _refuse("the offer has no audio section: add a recvonly audio transceiver before createOffer")
    return text, OfferFacts(_max_message_bytes(sections))


def _as_text(offer: bytes | str) -> str:
    if isinstance(offer, str):
        return offer
    try:
        return offer.decode("utf-8")
    except UnicodeDecodeError as error:
        _refuse(f"the offer is not UTF-8 text (byte {error.start} is {offer[error.start]:#04x})")


def _split_sections(lines: list[str]) -> tuple[list[str], list[list[str]]]:
    session: list[str] = []
    sections: list[list[str]] = []
    for line in lines:
        if line.startswith("m="):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
        else:
            session.append(line)
    return session, sections


def _check_section(section: list[str], session: list[str]) -> None:
    m_line = section[0]
    found = _M_LINE.fullmatch(m_line)
    if found is None:
        _refuse(f"the media line {_excerpt(m_line)} is not 'm=<media> <port> <protocol> <format> ...'")
    media = found["media"]
    if int(found["port"]) > 65535:
        _refuse(f"the {media} section's port {found['port']} is not a port number")
    attributes = section[1:] + session
    for line in attributes:
        if line.startswith("a=setup:") and line[len("a=setup:"):] not in SETUP_ROLES:
            _refuse(f"{_excerpt(line)} in the {media} section: a=setup must be one of {', '.join(SETUP_ROLES)}")
    if int(found["port"]) == 0:  # a rejected or disabled section needs nothing more
        return
    _check_fingerprints(media, attributes)
    for name in ("ice-ufrag", "ice-pwd"):
        if not any(line.startswith(f"a={name}:") and len(line) > len(name) + 3 for line in attributes):
            _refuse(f"the {media} section has no a={name} line")


def _check_fingerprints(media: str, attributes: list[str]) -> None:
    fingerprints = [line for line in attributes if line.startswith("a=fingerprint:")]
    if not fingerprints:
        _refuse(f"the {media} section has no DTLS fingerprint (a=fingerprint:sha-256 ...)")
    for line in fingerprints:
        found = _FINGERPRINT.fullmatch(line)
        if found is None:
            _refuse(f"{_excerpt(line)} is not 'a=fingerprint:<hash> <hex:pairs>'")
    hashes = {_FINGERPRINT.fullmatch(line)["hash"].lower() for line in fingerprints}
    if not hashes & set(FINGERPRINT_HASHES):
        _refuse(f"the {media} section's fingerprint uses {', '.join(sorted(hashes))}; "
                f"this server verifies {', '.join(FINGERPRINT_HASHES)}")


def _max_message_bytes(sections: list[list[str]]) -> int:
    for section in sections:
        if section[0].startswith("m=application "):
            for line in section[1:]:
                if line.startswith("a=max-message-size:"):
                    value = line[len("a=max-message-size:"):]
                    if not value.isdigit():
                        _refuse(f"{_excerpt(line)} is not a number of bytes")
                    size = int(value)
                    return OWN_MAX_MESSAGE_BYTES if size == 0 else min(size, OWN_MAX_MESSAGE_BYTES)
    return DEFAULT_MAX_MESSAGE_BYTES


def _excerpt(line: str, limit: int = 60) -> str:
    return repr(line[:limit] + ("..." if len(line) > limit else ""))


def _refuse(problem: str):
    raise SignallingError(f"bad SDP offer: {problem}; {_HELP}")
