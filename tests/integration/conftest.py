"""Integration tests run real frameworks; the Flower ones need the flower extra."""

from __future__ import annotations

import importlib.util

# Without lowcarb[flower] there is nothing to run the Flower tests against.
collect_ignore_glob = [] if importlib.util.find_spec("flwr") else ["test_flower_*.py"]
