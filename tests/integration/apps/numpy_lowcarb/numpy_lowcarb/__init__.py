"""numpy-lowcarb: Flower's NumPy quickstart with carbon-aware node selection."""
