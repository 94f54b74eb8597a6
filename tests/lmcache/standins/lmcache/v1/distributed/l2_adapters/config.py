# SPDX-License-Identifier: Apache-2.0
"""Stand-in for LMCache's ``lmcache.v1.distributed.l2_adapters.config``: the
adapter-type registry (``register_l2_adapter_type``, lazy lookup through the
factory's pending modules, ``get_registered_l2_adapter_types``,
``get_type_name_for_config``), ``L2AdapterConfigBase`` with its optional
``eviction`` / ``persist_enabled`` / ``serde`` / ``shared`` sub-configs,
``L2AdaptersConfig``, and the repeatable ``--l2-adapter <JSON>`` command-line
option whose JSON carries ``"type"``."""

# Future
from __future__ import annotations

# Standard
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar
import json

if TYPE_CHECKING:
    # Standard
    import argparse

    # First Party
    from lmcache.v1.distributed.config import EvictionConfig

# First Party
from lmcache.logging import init_logger
from lmcache.v1.distributed.serde import SerdeConfig

logger = init_logger(__name__)

T = TypeVar("T", bound="L2AdapterConfigBase")


@dataclass(frozen=True)
class PersistConfig:
    """Whether data files are kept on disk at shutdown."""

    persist_enabled: bool = True


_L2_ADAPTER_CONFIG_REGISTRY: dict[str, type[L2AdapterConfigBase]] = {}


def register_l2_adapter_type(name: str, config_cls: type[L2AdapterConfigBase]) -> None:
    """Register an adapter config class under its JSON ``"type"`` name."""
    if name in _L2_ADAPTER_CONFIG_REGISTRY:
        raise ValueError("L2 adapter type already registered: %s" % repr(name))
    _L2_ADAPTER_CONFIG_REGISTRY[name] = config_cls


def _ensure_config_loaded(name: str) -> None:
    if name in _L2_ADAPTER_CONFIG_REGISTRY:
        return
    # First Party
    from lmcache.v1.distributed.l2_adapters.factory import (  # noqa: PLC0415
        ensure_adapter_loaded,
    )

    ensure_adapter_loaded(name)


def get_l2_adapter_config_class(type_name: str) -> type["L2AdapterConfigBase"]:
    _ensure_config_loaded(type_name)
    if type_name not in _L2_ADAPTER_CONFIG_REGISTRY:
        raise ValueError(f"unknown L2 adapter type {type_name!r}")
    return _L2_ADAPTER_CONFIG_REGISTRY[type_name]


def get_registered_l2_adapter_types() -> list[str]:
    """Return all known adapter type names (eager and lazy)."""
    # First Party
    from lmcache.v1.distributed.l2_adapters.factory import (  # noqa: PLC0415
        get_all_registered_names,
    )

    return get_all_registered_names()


def get_type_name_for_config(config: L2AdapterConfigBase) -> str:
    """Reverse-lookup the registered type name of a config instance."""
    for name, cls in _L2_ADAPTER_CONFIG_REGISTRY.items():
        if type(config) is cls:
            return name
    raise ValueError("Unregistered L2 adapter config type: %s" % type(config).__name__)


class L2AdapterConfigBase(ABC):
    """Base class for per-adapter configs (``from_dict`` + ``help``)."""

    eviction_config: EvictionConfig | None = None
    shared: bool = False
    persist_config: PersistConfig = PersistConfig()
    serde_config: SerdeConfig | None = None

    @staticmethod
    def _parse_serde_config(d: dict[str, object]) -> SerdeConfig | None:
        serde_dict = d.get("serde")
        if serde_dict is None:
            return None
        if not isinstance(serde_dict, dict):
            raise ValueError(f"'serde' must be a dict, got {type(serde_dict).__name__}")
        serde_type = serde_dict.get("type")
        if not isinstance(serde_type, str):
            raise ValueError("'serde' dict must include a 'type' field")
        kwargs = {k: v for k, v in serde_dict.items() if k != "type"}
        return SerdeConfig(type=serde_type, kwargs=kwargs)

    @staticmethod
    def _parse_eviction_config(d: dict) -> EvictionConfig | None:
        eviction_dict = d.get("eviction")
        if eviction_dict is None:
            return None
        # First Party
        from lmcache.v1.distributed.config import EvictionConfig  # noqa: PLC0415

        policy = eviction_dict.get("eviction_policy")
        if policy not in ("LRU", "IsolatedLRU", "noop"):
            raise ValueError(
                "eviction.eviction_policy must be 'LRU', 'IsolatedLRU', or "
                f"'noop', got {policy!r}"
            )
        return EvictionConfig(
            eviction_policy=policy,
            trigger_watermark=float(eviction_dict.get("trigger_watermark", 0.8)),
            eviction_ratio=float(eviction_dict.get("eviction_ratio", 0.2)),
        )

    @staticmethod
    def _parse_persist_config(d: dict) -> PersistConfig:
        return PersistConfig(persist_enabled=bool(d.get("persist_enabled", True)))

    @staticmethod
    def _validate_num_workers(raw: object) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
            raise ValueError("num_workers must be a positive integer")
        return raw

    @classmethod
    @abstractmethod
    def from_dict(cls: type[T], d: dict) -> T:
        """Build a config from a dict (parsed JSON, including ``"type"``)."""

    @classmethod
    @abstractmethod
    def help(cls) -> str:
        """Describe the config fields for command-line help."""


@dataclass
class L2AdaptersConfig:
    """Ordered list of adapter configs, one per L2 adapter instance."""

    adapters: list[L2AdapterConfigBase]


_L2_ADAPTER_ARG_DEST = "l2_adapter"


def add_l2_adapters_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the repeatable ``--l2-adapter <JSON>`` option."""
    group = parser.add_argument_group(
        "L2 Adapters",
        "L2 adapter instances. Each --l2-adapter is a JSON object with 'type' and "
        "type-specific keys. Repeat for multiple adapters.",
    )
    group.add_argument(
        "--l2-adapter",
        dest=_L2_ADAPTER_ARG_DEST,
        action="append",
        default=[],
        type=str,
        metavar="JSON",
        help='Adapter spec as JSON with a "type" field and adapter-specific configs'
        ', e.g. \'{"type":"fs","base_path":"/data"}\'.'
        "Repeat for multiple adapters."
        "Supported adapters are: ["
        + ", ".join(sorted(get_registered_l2_adapter_types()))
        + "].",
    )
    return parser


def parse_args_to_l2_adapters_config(args: argparse.Namespace) -> L2AdaptersConfig:
    """Build ``L2AdaptersConfig`` from the ``--l2-adapter`` JSON strings."""
    raw_list = getattr(args, _L2_ADAPTER_ARG_DEST, None) or []
    adapter_configs: list[L2AdapterConfigBase] = []
    for i, raw in enumerate(raw_list):
        try:
            d = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ValueError(f"Invalid JSON for --l2-adapter #{i + 1}: {e}") from e
        if not isinstance(d, dict):
            raise ValueError(
                f"--l2-adapter #{i + 1}: expected a JSON object, got {type(d).__name__}"
            )
        type_name = d.get("type")
        if type_name is None:
            raise ValueError("--l2-adapter #%d: missing 'type' field" % (i + 1))
        _ensure_config_loaded(type_name)
        if type_name not in _L2_ADAPTER_CONFIG_REGISTRY:
            known = ", ".join(sorted(_L2_ADAPTER_CONFIG_REGISTRY)) or "(none)"
            raise ValueError(
                f"--l2-adapter #{i + 1}: unknown adapter type {type_name!r}. Known: {known}"
            )
        config_cls = _L2_ADAPTER_CONFIG_REGISTRY[type_name]
        try:
            adapter_cfg = config_cls.from_dict(d)
            adapter_cfg.shared = bool(d.get("shared", False))
            adapter_cfg.eviction_config = L2AdapterConfigBase._parse_eviction_config(d)
            adapter_cfg.persist_config = L2AdapterConfigBase._parse_persist_config(d)
            adapter_cfg.serde_config = L2AdapterConfigBase._parse_serde_config(d)
            adapter_configs.append(adapter_cfg)
        except (TypeError, ValueError) as e:
            logger.error("Error parsing --l2-adapter #%d (type %r): %s", i + 1, type_name, e)
            logger.error(
                "Adapter config help for %s adapter:\n---------------------\n%s\n"
                "---------------------\n\n",
                type_name,
                config_cls.help(),
            )
            raise ValueError(f"--l2-adapter #{i + 1} ({type_name!r}): {e}") from e
    return L2AdaptersConfig(adapters=adapter_configs)
