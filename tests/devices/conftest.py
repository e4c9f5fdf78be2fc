"""Fake phones shared by the Android tests: one loopback adb server per test module (its serials from the
module's ``SERIALS`` tuple or ``PHONES`` name -> serial dict), and a devices file naming ``PHONES``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nasprof.testing.fake_adb import FakeAdb, write_devices_file, write_fake_runner


@pytest.fixture(scope="module")
def fake(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeAdb]:
    serials = getattr(request.module, "SERIALS", None) or tuple(request.module.PHONES.values())
    with FakeAdb(tmp_path_factory.mktemp("phones"), tuple(serials)) as server:
        yield server


@pytest.fixture
def devices(request: pytest.FixtureRequest, fake: FakeAdb, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Path:
    """A devices file naming the module's ``PHONES`` on the fake adb server, each with a fake runner."""
    runner, _ = write_fake_runner(tmp_path / "bin")
    runner.chmod(0o755)
    path = write_devices_file(tmp_path / "devices.toml", request.module.PHONES, runner, fake.server,
                              runs_per_sample=2)
    monkeypatch.setenv("NASPROF_DEVICES", str(path))
    return path
