"""One registry mechanism: every kind of pluggable thing (spaces, presets, blocks, backends, boards, search
strategies, accuracy proxies) is a ``nasprof.registry.Registry``, and third-party search strategies and
proxies come in through entry points as backends do."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from nasprof.errors import InputError
from nasprof.registry import Registry


def test_every_kind_uses_the_one_registry() -> None:
    from nasprof.devices.base import registry as backends
    from nasprof.devices.mcu.boards import BOARDS
    from nasprof.search.proxies import proxy_registry
    from nasprof.search.strategies import strategy_registry
    from nasprof.space.blocks.base import block_registry
    from nasprof.space.presets._registry import preset_registry
    from nasprof.space.registry import space_registry

    kinds = {"space": space_registry, "preset": preset_registry, "block": block_registry, "backend": backends,
             "board": BOARDS, "strategy": strategy_registry, "proxy": proxy_registry}
    for what, reg in kinds.items():
        assert isinstance(reg, Registry), what
        assert reg.names(), f"no {what} registered"
    assert {"evolution", "random", "rl", "tpe", "nsga2", "cmaes", "qmc"} <= set(strategy_registry.names())
    assert set(proxy_registry.names()) >= {"macs", "naswot"}


def _install(site: Path, group: str, entry: str, module: str) -> None:
    dist = site / "nasprof_searchplugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nasprof-searchplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{group}]\n{entry}\n")
    (site / "nasprof_searchplugin.py").write_text(textwrap.dedent(module))


def test_a_third_party_strategy_comes_in_by_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nasprof.search.strategies import RandomSearch, get_strategy, strategy_registry
    from nasprof.space.spaces import get_space

    _install(tmp_path, "nasprof.strategies", "lucky = nasprof_searchplugin:Lucky", """
        from nasprof.search.strategies import RandomSearch

        class Lucky(RandomSearch):
            name = "lucky"
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("strategy", entry_point_group="nasprof.strategies", error=InputError)
    assert reg.names() == ["lucky"]
    monkeypatch.setattr(strategy_registry, "_entry_points_loaded", False)
    try:
        strategy = get_strategy("lucky", get_space("mnasnet"), seed=1)
        assert isinstance(strategy, RandomSearch) and type(strategy).__name__ == "Lucky"
    finally:
        strategy_registry.unregister("lucky")
    with pytest.raises(InputError, match=r"unknown strategy 'lucky'; known: cmaes, evolution"):
        get_strategy("lucky", get_space("mnasnet"))


def test_a_broken_proxy_plugin_fails_only_when_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install(tmp_path, "nasprof.proxies", "ghost = nasprof_no_such_module:Ghost", "")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry[object] = Registry("accuracy proxy", entry_point_group="nasprof.proxies", error=InputError)
    reg.register("macs", object)
    assert reg.names() == ["macs"]  # a plugin that failed to load is not registered ...
    with pytest.raises(InputError, match="accuracy proxy plugin 'ghost' failed to load: ModuleNotFoundError"):
        reg.get("ghost")  # ... and asking for it says why
