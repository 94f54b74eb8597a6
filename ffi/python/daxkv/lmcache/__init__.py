"""libdaxkv for LMCache.

- :class:`DaxCore` (with :class:`DaxReadReservation` and
  :class:`DaxPutFromPtrResult`) is a drop-in for LMCache's own DAX core
  (``lmcache.v1.storage_backend.dax.core``): LMCache's ``DaxBackend`` and
  ``dax`` L2 adapter run on it unchanged.
- ``daxkv.lmcache.backend.DaxkvBackend`` is a storage plugin that LMCache's
  ``storage_plugin_launcher`` loads by configuration
  (``storage_plugins: [daxkv]``).
- ``daxkv.lmcache.l2.DaxkvL2Adapter`` is an L2 adapter that LMCache's MP
  server loads by configuration (``--l2-adapter '{"type": "plugin", ...}'``).

The plugins import LMCache; this package itself does not (keys and metadata
are decoded into LMCache's types only when read back). See
docs/lmcache-integration.md.
"""

from .core import DaxCore, DaxCoreError, DaxPutFromPtrResult, DaxReadReservation
from .keys import decode_key, encode_key, register_key_type
from .meta import EntryMeta, decode_meta, encode_meta

__all__ = [
    "DaxCore",
    "DaxCoreError",
    "DaxPutFromPtrResult",
    "DaxReadReservation",
    "EntryMeta",
    "decode_key",
    "decode_meta",
    "encode_key",
    "encode_meta",
    "register_key_type",
]
