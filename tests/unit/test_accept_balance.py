"""The ledger behind balanced accept: whose turn it is, and dead workers do not block the port.
(The split itself is tested end to end with two real workers in test_serve_cli.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from inference.accept_balance import SLOT, ConnectionLedger
from recsys.errors import ConfigError


def _peer(ledger: ConnectionLedger, slot: int, pid: int, count: int) -> None:
    SLOT.pack_into(ledger._map, slot * SLOT.size, pid, count)


def test_a_worker_waits_while_a_live_peer_holds_fewer_connections(tmp_path: Path) -> None:
    ledger = ConnectionLedger(tmp_path / "ledger")
    peer = os.getppid()  # alive for the whole test
    _peer(ledger, ledger.slot + 1, peer, 0)
    assert ledger.my_turn()  # 0 and 0
    ledger.add(1)
    assert not ledger.my_turn()  # 1 against 0: the peer's turn
    _peer(ledger, ledger.slot + 1, peer, 1)
    assert ledger.my_turn()
    ledger.add(-1)
    ledger.add(-1)  # never below 0
    assert ledger.counts() == {ledger.slot: 0, ledger.slot + 1: 1}
    ledger.close()
    again = ConnectionLedger(tmp_path / "ledger")
    assert again.slot == ledger.slot  # a closed worker's slot is free
    again.close()
    assert (tmp_path / "ledger").exists()  # the (live) peer is still in it


def test_a_dead_workers_slot_is_released_instead_of_blocking_the_others(tmp_path: Path) -> None:
    ledger = ConnectionLedger(tmp_path / "ledger")
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    _peer(ledger, ledger.slot + 1, int(gone.stdout), 0)
    ledger.add(3)
    assert ledger.my_turn()
    assert ledger.counts() == {ledger.slot: 3}
    ledger.close()
    assert not (tmp_path / "ledger").exists()  # the last worker out removes it


def test_a_bad_balanced_accept_setting_names_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    from inference.transformer_main import parse

    monkeypatch.setenv("RECSYS_TRANSFORMER_BALANCED_ACCEPT", "yes")
    with pytest.raises(ConfigError, match=r"--balanced_accept: Input should be 'on' or 'off' \(got 'yes'\)"):
        parse([])
    monkeypatch.delenv("RECSYS_TRANSFORMER_BALANCED_ACCEPT")
    assert parse([])[1].balanced_accept == "on"
    assert parse(["--balanced_accept", "off"])[1].balanced_accept == "off"
