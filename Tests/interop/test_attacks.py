"""The gateway under HTTP/2 attacks (`attacks.py`), each while a well-behaved client calls it at 50 calls/s:
the gateway stays up, the good client's calls succeed (at least 99%), and its memory stays bounded. The
latency criterion (p99 within 5x the no-attack baseline) depends on the machine's load, so it is checked by
`scripts/attack`, not here."""

import pytest

import attacks
from gateway_fixtures import run_gateway

#: Peak RSS growth allowed during any one attack. The largest expected: the zero-window attack's 3,600
#: stalled streams at ~14 KiB each (about 50 MiB).
RSS_BOUND_MIB = 128


@pytest.fixture(scope="module")
def gateway(binaries, tmp_path_factory):
    with run_gateway(binaries, tmp_path_factory.mktemp("gateway-attacks"), "--log-level", "warning") as gw:
        yield gw


@pytest.mark.parametrize("name", list(attacks.ATTACKS))
def test_the_gateway_stays_up_and_serves_good_clients_under(gateway, name):
    result = attacks.run(gateway.proc, name, seconds=3)
    print(attacks.table([result]))
    assert result["alive"], result
    assert result["calls"] >= 10, result  # the good client ran (how fast is scripts/attack's business)
    assert result["success"] >= 0.99, result
    assert result["rss_growth_mib"] < RSS_BOUND_MIB, result
