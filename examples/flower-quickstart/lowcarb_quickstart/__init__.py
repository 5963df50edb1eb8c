"""A carbon-aware Flower App: FedAvg over scikit-learn's bundled digits."""
