"""Real federated learning, small enough to run inside ``lowcarb simulate``.

A carbon-aware policy decides *which* clients train *when*. Whether that costs accuracy
depends on whose data the model sees, so ``lowcarb simulate`` trains a real model under
each policy: :class:`FederatedDigits` splits scikit-learn's bundled handwritten digits
(1797 images of 8x8 pixels, 10 classes, no download) across clients with Dirichlet label
skew, and trains a softmax-regression model by federated averaging (FedAvg, McMahan et
al. 2017, https://arxiv.org/abs/1602.05629).

Everything is seeded: the test split, the partition, the initial weights, and each
client's local training, which depends only on the seed, the round index, the client
id and the incoming weights. Two policies that pick the same clients in the same round
from the same model therefore get bit-identical results, and any accuracy difference
between policies comes from the selection alone.
"""

from __future__ import annotations

import importlib.util
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from lowcarb.exceptions import InvalidInputError

__all__ = ["FederatedDigits", "ModelWeights"]

_ArrayT = TypeVar("_ArrayT", bound="np.ndarray[Any, Any]")

N_CLASSES = 10
N_FEATURES = 64  # 8x8 pixels

# Each random stream of one seed gets its own tag, so that changing, say, the local
# training never shifts the partition drawn from the same seed.
_SPLIT_STREAM = 0
_INIT_STREAM = 1
_LOCAL_STREAM = 2

# Zeros would do for this convex loss; a seeded draw keeps new_model() meaning "the
# initial weights of this seed", as it would for any other model. 0.01 starts the
# model near uniform predictions.
_INIT_SCALE = 0.01


@dataclass(frozen=True, eq=False)
class ModelWeights:
    """Weights of the softmax-regression model; immutable.

    Attributes:
        params: Array of shape ``(65, 10)``: rows 0-63 hold the coefficient of each
            pixel for each class, row 64 the intercepts. Read-only.
    """

    params: NDArray[np.float64]

    def __post_init__(self) -> None:
        params = np.array(self.params, dtype=np.float64)  # a private copy
        if params.shape != (N_FEATURES + 1, N_CLASSES):
            raise InvalidInputError(
                f"model weights must have shape {(N_FEATURES + 1, N_CLASSES)}, "
                f"got {params.shape}; build them with FederatedDigits.new_model()"
            )
        params.flags.writeable = False
        object.__setattr__(self, "params", params)

    @property
    def coef(self) -> NDArray[np.float64]:
        """Pixel coefficients, shape ``(64, 10)`` (a read-only view)."""
        return self.params[:N_FEATURES]

    @property
    def intercept(self) -> NDArray[np.float64]:
        """Class intercepts, shape ``(10,)`` (a read-only view)."""
        return self.params[N_FEATURES:].reshape(N_CLASSES)


class FederatedDigits:
    """The digits data split non-IID across clients, trained by FedAvg.

    Data: scikit-learn's ``load_digits`` (read from the file scikit-learn ships, without
    importing scikit-learn), pixels scaled from 0-16 to [0, 1]. A stratified
    ``test_fraction`` of each class is held out (at least one image per class on each
    side). The rest is split across clients by Dirichlet label skew: for each class,
    client shares are drawn from ``Dir(alpha, ..., alpha)`` and the class's images are
    dealt out by a multinomial draw with those shares. Every image lands on exactly one
    client. Small ``alpha`` means each client holds few labels; large ``alpha`` tends to
    IID. Clients left with fewer than ``min_client_samples`` images are then topped up,
    in random order, one image at a time from the currently largest client (an image of
    its most common label). When there are too few images for that, the floor drops to
    ``max(1, n_train // n_clients)``; with more clients than training images (1347 at
    the default ``test_fraction``) each of ``n_train`` random clients holds one image
    and the others none. A selected empty client contributes nothing to a round, like
    a client that dropped out.

    Model: multinomial logistic (softmax) regression, trained by plain minibatch SGD on
    the cross-entropy. It is convex, so every policy optimises the same problem and
    differences in accuracy come from the data the policy lets it see. On these data it
    reaches about 0.95 test accuracy with fair participation, while 96 rounds on the
    same ten label-skewed clients stay clearly lower.

    Defaults: ``alpha=0.5`` is the usual "moderately non-IID" setting in the FL
    literature; ``local_epochs=5`` follows McMahan et al.; ``batch_size=16`` means a
    typical client (about 13 images with 100 clients) takes one full-batch step per
    epoch; ``lr=0.5`` reaches about 0.94 within 50 rounds of 10 clients out of 100 and
    does not diverge. With these, uniformly random and round-robin selection end within about
    a point of each other.

    Args:
        n_clients: Number of clients, at least 1.
        seed: Seeds the test split, the partition, the initial weights and local
            training. A non-negative integer.
        alpha: Dirichlet concentration of the label skew, > 0.
        test_fraction: Share of each class held out for testing, in (0, 1).
        local_epochs: Passes over its own data each selected client makes per round.
        lr: SGD step size, > 0.
        batch_size: Minibatch size of local SGD.
        min_client_samples: Images each client holds at least, when there are enough.

    Raises:
        InvalidInputError: If an argument is out of range.
        ModuleNotFoundError: If scikit-learn, which ships the data, is not installed.

    Example:
        >>> task = FederatedDigits(100, seed=0)
        >>> weights = task.new_model()
        >>> for round_index in range(96):
        ...     clients = [(10 * round_index + j) % 100 for j in range(10)]
        ...     weights = task.train_round(weights, clients, round_index=round_index)
        >>> task.evaluate(weights) > 0.9
        True
    """

    def __init__(
        self,
        n_clients: int,
        *,
        seed: int = 0,
        alpha: float = 0.5,
        test_fraction: float = 0.25,
        local_epochs: int = 5,
        lr: float = 0.5,
        batch_size: int = 16,
        min_client_samples: int = 2,
    ) -> None:
        self._n_clients = _check_int("n_clients", n_clients, minimum=1)
        self._seed = _check_int("seed", seed, minimum=0)
        self._alpha = _check_float("alpha", alpha, low=0.0)
        self._test_fraction = _check_float("test_fraction", test_fraction, low=0.0, high=1.0)
        self._local_epochs = _check_int("local_epochs", local_epochs, minimum=1)
        self._lr = _check_float("lr", lr, low=0.0)
        self._batch_size = _check_int("batch_size", batch_size, minimum=1)
        self._min_client_samples = _check_int("min_client_samples", min_client_samples, minimum=0)

        features, labels = _load_digits()
        rng = np.random.default_rng([self._seed, _SPLIT_STREAM])
        train, test = _stratified_split(labels, self._test_fraction, rng)
        owner = _dirichlet_partition(
            labels[train], self._n_clients, self._alpha, self._min_client_samples, rng
        )

        # Store the training set grouped by client, so each client's data is a
        # contiguous slice (a view), which scales to thousands of clients.
        order = np.argsort(owner, kind="stable")
        grouped = train[order]
        self._x_train = _with_bias_column(features[grouped])
        self._y_train = labels[grouped]
        self._onehot_train = np.eye(N_CLASSES)[self._y_train]
        sizes = np.bincount(owner, minlength=self._n_clients)
        self._offsets = np.concatenate(([0], np.cumsum(sizes)))
        self._sizes = _read_only(sizes)
        counts = np.zeros((self._n_clients, N_CLASSES), dtype=np.intp)
        np.add.at(counts, (owner, labels[train]), 1)
        self._label_counts = _read_only(counts)

        self._x_test = _with_bias_column(features[test])
        self._y_test = labels[test]

    def __repr__(self) -> str:
        return (
            f"FederatedDigits(n_clients={self._n_clients}, seed={self._seed}, "
            f"alpha={self._alpha}, test_fraction={self._test_fraction}, "
            f"local_epochs={self._local_epochs}, lr={self._lr}, "
            f"batch_size={self._batch_size}, min_client_samples={self._min_client_samples})"
        )

    @property
    def n_clients(self) -> int:
        """Number of clients."""
        return self._n_clients

    @property
    def seed(self) -> int:
        """The seed everything is drawn from."""
        return self._seed

    @property
    def alpha(self) -> float:
        """Dirichlet concentration of the label skew."""
        return self._alpha

    @property
    def local_epochs(self) -> int:
        """Local passes over its data per selected client and round."""
        return self._local_epochs

    @property
    def lr(self) -> float:
        """SGD step size."""
        return self._lr

    @property
    def batch_size(self) -> int:
        """Minibatch size of local SGD."""
        return self._batch_size

    @property
    def n_train(self) -> int:
        """Number of training images, all clients together."""
        return int(self._y_train.shape[0])

    @property
    def n_test(self) -> int:
        """Number of held-out test images."""
        return int(self._y_test.shape[0])

    @property
    def client_sizes(self) -> NDArray[np.intp]:
        """Training images per client, shape ``(n_clients,)`` (read-only)."""
        return self._sizes

    @property
    def label_counts(self) -> NDArray[np.intp]:
        """Training images per client and class, shape ``(n_clients, 10)`` (read-only)."""
        return self._label_counts

    def new_model(self) -> ModelWeights:
        """Return the initial weights: the same for every call with the same seed.

        Returns:
            Small Gaussian weights (standard deviation 0.01) drawn from the seed.
        """
        rng = np.random.default_rng([self._seed, _INIT_STREAM])
        return ModelWeights(rng.normal(0.0, _INIT_SCALE, size=(N_FEATURES + 1, N_CLASSES)))

    def local_update(self, weights: ModelWeights, client: int, *, round_index: int) -> ModelWeights:
        """Train ``weights`` on one client's data, as that client would in a round.

        Runs ``local_epochs`` epochs of minibatch SGD, reshuffling each epoch from a
        stream seeded by (seed, round index, client). A client with at most
        ``batch_size`` images takes one full-batch step per epoch.

        Args:
            weights: The global model the round starts from.
            client: Client index in ``[0, n_clients)``.
            round_index: Index of the round, >= 0.

        Returns:
            The client's locally trained weights; ``weights`` itself if the client
            holds no data.

        Raises:
            InvalidInputError: If the client or round index is out of range.
        """
        _check_weights(weights)
        client = self._check_client(client)
        round_index = _check_int("round_index", round_index, minimum=0)
        if self._sizes[client] == 0:
            return weights
        return ModelWeights(self._local_params(weights.params, client, round_index))

    def train_round(
        self, weights: ModelWeights, clients: Sequence[int], *, round_index: int
    ) -> ModelWeights:
        """Run one FedAvg round with the selected clients.

        Each selected client trains locally (see :meth:`local_update`); the result is
        the mean of the local weights weighted by each client's number of images.
        Clients are aggregated in index order, so the result does not depend on the
        order of ``clients``.

        Args:
            weights: The global model at the start of the round.
            clients: Indices of the selected clients, each in ``[0, n_clients)``,
                without repeats. May be empty.
            round_index: Index of the round, >= 0; seeds the local training.

        Returns:
            The new global weights; ``weights`` unchanged if no selected client holds
            data (or none was selected).

        Raises:
            InvalidInputError: If a client index is out of range or repeated, or the
                round index is negative.
        """
        _check_weights(weights)
        round_index = _check_int("round_index", round_index, minimum=0)
        selected = [self._check_client(client) for client in clients]
        if len(set(selected)) != len(selected):
            repeated = sorted({c for c in selected if selected.count(c) > 1})
            raise InvalidInputError(
                f"clients {repeated} are selected more than once in round {round_index}; "
                "a client trains at most once per round"
            )
        total = 0
        weighted_sum = np.zeros_like(weights.params)
        for client in sorted(selected):
            size = int(self._sizes[client])
            if size == 0:
                continue
            weighted_sum += size * self._local_params(weights.params, client, round_index)
            total += size
        if total == 0:
            return weights
        return ModelWeights(weighted_sum / total)

    def evaluate(self, weights: ModelWeights) -> float:
        """Return the test accuracy of ``weights``.

        Args:
            weights: Model weights.

        Returns:
            The share of held-out test images classified correctly, in [0, 1].
        """
        _check_weights(weights)
        predicted = np.argmax(self._x_test @ weights.params, axis=1)
        return float(np.mean(predicted == self._y_test))

    def loss(self, weights: ModelWeights) -> float:
        """Return the mean cross-entropy of ``weights`` on the test set.

        Args:
            weights: Model weights.

        Returns:
            Mean negative log-likelihood of the true class, in nats (>= 0).
        """
        _check_weights(weights)
        logits = self._x_test @ weights.params
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return float(-np.mean(log_probs[np.arange(self.n_test), self._y_test]))

    def _check_client(self, client: object) -> int:
        if isinstance(client, bool) or not isinstance(client, numbers.Integral):
            raise InvalidInputError(f"client index must be an integer, got {client!r}")
        index = int(client)
        if not 0 <= index < self._n_clients:
            raise InvalidInputError(
                f"client index {index} is out of range: this task has {self._n_clients} "
                f"clients, numbered 0 to {self._n_clients - 1}"
            )
        return index

    def _local_params(
        self, params: NDArray[np.float64], client: int, round_index: int
    ) -> NDArray[np.float64]:
        start, stop = int(self._offsets[client]), int(self._offsets[client + 1])
        x, onehot = self._x_train[start:stop], self._onehot_train[start:stop]
        size = stop - start
        theta = params.copy()
        if size <= self._batch_size:
            # One batch holds everything: shuffling would not change the step, so skip
            # the generator (most clients, and most of the run time, fall here).
            step = self._lr / size
            for _ in range(self._local_epochs):
                theta -= step * (x.T @ (_softmax(x @ theta) - onehot))
            return theta
        rng = np.random.default_rng([self._seed, _LOCAL_STREAM, round_index, client])
        for _ in range(self._local_epochs):
            order = rng.permutation(size)
            for begin in range(0, size, self._batch_size):
                batch = order[begin : begin + self._batch_size]
                xb = x[batch]
                grad = xb.T @ (_softmax(xb @ theta) - onehot[batch])
                theta -= (self._lr / batch.shape[0]) * grad
        return theta


@lru_cache(maxsize=1)
def _load_digits() -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    table = _read_digits_table(_bundled_digits_file())
    # Pixel values are integers 0-16; [0, 1] keeps the default step size meaningful.
    features = _read_only(table[:, :N_FEATURES] / 16.0)
    labels = _read_only(table[:, N_FEATURES].astype(np.intp))
    return features, labels


def _bundled_digits_file() -> Path:
    # find_spec locates scikit-learn without importing it: importing sklearn.datasets
    # takes about 0.8 s, thirty times longer than reading the 1797 rows themselves.
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "FederatedDigits uses the digits data bundled with scikit-learn: "
            "pip install scikit-learn"
        )
    return Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"


def _read_digits_table(path: Path | None) -> NDArray[np.float64]:
    """Return the digits as rows of 64 pixel values and the label (1797 x 65)."""
    expected = (1797, N_FEATURES + 1)
    if path is not None:
        try:
            table = np.loadtxt(path, delimiter=",", dtype=np.float64)
        except (FileNotFoundError, ValueError):
            # The file's location and format are scikit-learn internals; should they
            # change, its public loader below returns the same data, only slower.
            pass
        else:
            if table.shape == expected:
                return table
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return np.column_stack([bunch.data, bunch.target]).astype(np.float64)


def _stratified_split(
    labels: NDArray[np.intp], test_fraction: float, rng: np.random.Generator
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Return (train, test) indices holding out ``test_fraction`` of each class."""
    held_out = []
    for label in range(N_CLASSES):
        members = np.flatnonzero(labels == label)
        # Both sides keep every class, whatever the fraction.
        n_test = min(max(round(test_fraction * members.size), 1), members.size - 1)
        held_out.append(rng.permutation(members)[:n_test])
    test = np.sort(np.concatenate(held_out))
    is_train = np.ones(labels.size, dtype=bool)
    is_train[test] = False
    return np.flatnonzero(is_train), test


def _dirichlet_partition(
    labels: NDArray[np.intp],
    n_clients: int,
    alpha: float,
    min_samples: int,
    rng: np.random.Generator,
) -> NDArray[np.intp]:
    """Return the owning client of each sample (see :class:`FederatedDigits`)."""
    owner = np.empty(labels.size, dtype=np.intp)
    for label in range(N_CLASSES):
        members = rng.permutation(np.flatnonzero(labels == label))
        shares = rng.dirichlet(np.full(n_clients, alpha))
        counts = rng.multinomial(members.size, shares)
        owner[members] = np.repeat(np.arange(n_clients), counts)

    # Re-drawing until every client is large enough (the common recipe) never ends with
    # thousands of clients, so move single images to the small clients instead.
    floor = min(min_samples, max(1, labels.size // n_clients))
    sizes = np.bincount(owner, minlength=n_clients)
    # Random order, so that clients left empty when images run out are not all at the
    # high indices.
    for client in rng.permutation(np.flatnonzero(sizes < floor)):
        while sizes[client] < floor:
            donor = int(np.argmax(sizes))
            if sizes[donor] <= floor:
                # Only with fewer images than clients: every image now has its own client.
                return owner
            held = np.flatnonzero(owner == donor)
            # Its most common label is the one whose loss skews the donor least.
            majority = np.argmax(np.bincount(labels[held], minlength=N_CLASSES))
            owner[rng.choice(held[labels[held] == majority])] = client
            sizes[donor] -= 1
            sizes[client] += 1
    return owner


def _softmax(logits: NDArray[np.float64]) -> NDArray[np.float64]:
    """Row-wise softmax; overwrites and returns ``logits``."""
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return logits


def _with_bias_column(features: NDArray[np.float64]) -> NDArray[np.float64]:
    return _read_only(np.hstack([features, np.ones((features.shape[0], 1))]))


def _read_only(array: _ArrayT) -> _ArrayT:
    array.flags.writeable = False
    return array


def _check_weights(weights: object) -> None:
    if not isinstance(weights, ModelWeights):
        raise InvalidInputError(
            f"expected ModelWeights (from new_model() or train_round()), "
            f"got {type(weights).__name__}"
        )


def _check_int(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidInputError(f"{name} must be an integer, got {value!r}")
    if int(value) < minimum:
        raise InvalidInputError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def _check_float(name: str, value: object, *, low: float, high: float = math.inf) -> float:
    """Check ``low < value < high`` (both bounds exclusive)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInputError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not (low < number < high):
        bound = f"in ({low:g}, {high:g})" if math.isfinite(high) else f"greater than {low:g}"
        raise InvalidInputError(f"{name} must be {bound}, got {value!r}")
    return number
