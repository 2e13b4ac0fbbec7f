from photoavatar.live.ice import loopback_candidates_only

OFFER = """v=0\r
m=audio 9 UDP/TLS/RTP/SAVPF 111\r
a=candidate:1 1 udp 2122260223 192.0.2.2 50000 typ host generation 0\r
a=candidate:2 1 udp 2122262783 127.0.0.1 50001 typ host generation 0\r
a=candidate:3 1 udp 2122194687 6f1c2b9e-2d4b-4c0c-9a0e-3b1f0c1d2e3f.local 50002 typ host\r
a=candidate:4 1 udp 2122262783 ::1 50003 typ host\r
a=end-of-candidates\r
"""


def test_only_loopback_candidates_survive():
    kept = loopback_candidates_only(OFFER)
    assert "127.0.0.1 50001" in kept and "::1 50003" in kept
    assert "192.0.2.2" not in kept and ".local" not in kept
    assert kept.count("\r\n") == OFFER.count("\r\n") - 2
    assert "a=end-of-candidates" in kept



def test_loopback_mode_is_the_servers_choice_held_while_it_runs():
    import aioice.ice

    from photoavatar.live import ice
    from photoavatar.live.transports import Transports, TransportSettings

    assert not ice.restricted_to_loopback()  # importing the modules changed nothing
    all_interfaces = aioice.ice.get_host_addresses
    with Transports(TransportSettings(ice_loopback=True)).running():
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1"]
        with Transports(TransportSettings(ice_loopback=False)).running():
            assert not ice.restricted_to_loopback()
        assert ice.restricted_to_loopback()
    assert aioice.ice.get_host_addresses is all_interfaces  # put back as it was at shutdown
