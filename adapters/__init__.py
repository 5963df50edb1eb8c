"""Framework integrations, installed as ``lowcarb.adapters``.

Adapters are thin glue between a framework's hooks and the lowcarb core: they hold no
selection logic and no HTTP code. The Flower strategy wrapper and the DISCO-compatible
bridge live here, each behind its optional extra (``lowcarb[flower]``, ``lowcarb[disco]``),
and are imported only when used.
"""

__all__: list[str] = []
