"""FederatedDigits: a seeded non-IID split of real data, trained by FedAvg.

The accuracy bounds below were measured over 20-30 seeds (see each test) and hold with
a margin; they are properties of the defaults, so a change of defaults that breaks them
should be a deliberate one.
"""

import sys
import types

import numpy as np
import pytest

from lowcarb.exceptions import InvalidInputError
from lowcarb.simulation._learning import (
    N_CLASSES,
    FederatedDigits,
    ModelWeights,
    _bundled_digits_file,
    _load_digits,
    _read_digits_table,
)

N_DIGITS = 1797
# Client i sits in zone i mod 14; a greedy carbon policy that always picks the cleanest
# zones takes the 8 clients of zone 0 and 2 of zone 1, every round.
ZONE_GREEDY = [i for i in range(100) if i % 14 == 0] + [1, 15]


def run(task, select, rounds):
    weights = task.new_model()
    for r in range(rounds):
        weights = task.train_round(weights, select(r), round_index=r)
    return weights


def round_robin(n_clients, per_round):
    return lambda r: [(r * per_round + j) % n_clients for j in range(per_round)]


def uniform_random(n_clients, per_round, seed):
    rng = np.random.default_rng(seed)
    return lambda r: rng.choice(n_clients, per_round, replace=False).tolist()


def max_label_share(task):
    sizes = task.client_sizes
    return task.label_counts.max(axis=1)[sizes > 0] / sizes[sizes > 0]


# --- data and partition -----------------------------------------------------------------


def test_same_seed_same_split_model_and_training():
    a, b = FederatedDigits(20, seed=3), FederatedDigits(20, seed=3)
    assert np.array_equal(a.client_sizes, b.client_sizes)
    assert np.array_equal(a.label_counts, b.label_counts)
    assert np.array_equal(a.new_model().params, b.new_model().params)
    assert np.array_equal(a.new_model().params, a.new_model().params)
    select = uniform_random(20, 5, seed=1)
    wa = run(a, select, 5)
    select = uniform_random(20, 5, seed=1)
    assert np.array_equal(wa.params, run(b, select, 5).params)

    other = FederatedDigits(20, seed=4)
    assert not np.array_equal(a.label_counts, other.label_counts)
    assert not np.array_equal(a.new_model().params, other.new_model().params)


def test_every_training_image_is_on_exactly_one_client_and_the_test_split_is_stratified():
    task = FederatedDigits(37, seed=5)
    features, labels = _load_digits()
    assert task.n_train + task.n_test == N_DIGITS
    assert task.client_sizes.sum() == task.n_train
    assert np.array_equal(task.label_counts.sum(axis=1), task.client_sizes)
    # Stratified: each class keeps round(25 %) of its images for the test set.
    per_class = np.bincount(labels, minlength=N_CLASSES)
    test_per_class = np.bincount(task._y_test, minlength=N_CLASSES)
    assert np.array_equal(test_per_class, np.round(0.25 * per_class).astype(int))
    assert np.array_equal(task.label_counts.sum(axis=0), per_class - test_per_class)
    # The train rows and test rows together are the data set, each image once.
    rows = np.vstack([task._x_train, task._x_test])[:, :-1]
    rows = rows[np.lexsort(rows.T)]
    assert np.array_equal(rows, features[np.lexsort(features.T)])


def test_partition_is_label_skewed():
    # Mean max-label share per client, 20 seeds at 100 clients: 0.41-0.46 for
    # alpha=0.5, 0.24-0.27 for alpha=1000 (near IID), 0.71-0.79 for alpha=0.05.
    skewed = max_label_share(FederatedDigits(100, seed=0, alpha=0.5)).mean()
    near_iid = max_label_share(FederatedDigits(100, seed=0, alpha=1000.0)).mean()
    very_skewed = max_label_share(FederatedDigits(100, seed=0, alpha=0.05)).mean()
    assert near_iid < 0.3
    assert skewed > 0.38
    assert very_skewed > 0.65


@pytest.mark.parametrize(
    ("n_clients", "floor"), [(1, 1347), (2, 2), (100, 2), (673, 2), (674, 1), (1347, 1)]
)
def test_every_client_holds_some_images(n_clients, floor):
    task = FederatedDigits(n_clients, seed=2)
    assert task.client_sizes.min() >= floor
    assert task.client_sizes.sum() == task.n_train == 1347


def test_more_clients_than_images_leaves_some_empty_and_they_contribute_nothing():
    task = FederatedDigits(3000, seed=0)
    sizes = task.client_sizes
    assert sizes.sum() == task.n_train
    assert np.count_nonzero(sizes) == task.n_train  # one image each, as far as they go
    empty = np.flatnonzero(sizes == 0)
    full = np.flatnonzero(sizes > 0)
    assert empty.max() > 2000 and empty.min() < 1000  # not bunched at one end
    w = task.new_model()
    assert task.train_round(w, empty[:5].tolist(), round_index=0) is w
    mixed = task.train_round(w, [*empty[:5].tolist(), *full[:3].tolist()], round_index=0)
    alone = task.train_round(w, full[:3].tolist(), round_index=0)
    assert np.array_equal(mixed.params, alone.params)


def test_min_client_samples_raises_the_floor():
    task = FederatedDigits(100, seed=0, min_client_samples=8)
    assert task.client_sizes.min() >= 8
    assert task.client_sizes.sum() == task.n_train


# --- training -----------------------------------------------------------------------------


def test_fedavg_is_the_size_weighted_mean_of_local_updates():
    task = FederatedDigits(5, seed=1)
    w = task.new_model()
    a, b = 0, 3
    na, nb = task.client_sizes[a], task.client_sizes[b]
    assert na != nb  # else weighted and unweighted means would coincide
    la = task.local_update(w, a, round_index=4).params
    lb = task.local_update(w, b, round_index=4).params
    aggregate = task.train_round(w, [b, a], round_index=4).params
    np.testing.assert_allclose(aggregate, (na * la + nb * lb) / (na + nb), rtol=0, atol=1e-12)
    assert not np.allclose(aggregate, (la + lb) / 2, rtol=0, atol=1e-6)
    one = task.train_round(w, [a], round_index=4).params
    np.testing.assert_allclose(one, la, rtol=1e-15, atol=0)


def test_a_round_depends_on_the_clients_and_round_not_on_their_order():
    task = FederatedDigits(10, seed=0)  # clients of about 135 images: several minibatches
    w = task.new_model()
    first = task.train_round(w, [7, 2, 5], round_index=3)
    assert np.array_equal(first.params, task.train_round(w, [2, 5, 7], round_index=3).params)
    assert not np.array_equal(first.params, task.train_round(w, [2, 5, 7], round_index=4).params)
    assert not np.array_equal(first.params, task.train_round(w, [2, 5], round_index=3).params)


def test_empty_round_and_inputs_are_left_alone():
    task = FederatedDigits(10, seed=0)
    w = task.new_model()
    before = w.params.copy()
    assert task.train_round(w, [], round_index=0) is w
    task.train_round(w, [0, 1], round_index=0)
    assert np.array_equal(w.params, before)
    assert not w.params.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        w.params[0, 0] = 1.0


def test_fair_fedavg_learns_the_digits():
    # Round-robin, 10 of 100 clients for 96 rounds: 0.93-0.97 over 20 seeds.
    task = FederatedDigits(100, seed=0)
    start = task.new_model()
    assert task.evaluate(start) < 0.3
    trained = run(task, round_robin(100, 10), 96)
    assert task.evaluate(trained) >= 0.90
    assert task.loss(trained) < task.loss(start) / 3
    assert 0.0 <= task.evaluate(trained) <= 1.0


@pytest.mark.slow
def test_always_the_same_few_clients_costs_accuracy():
    # 60 rounds of 10 out of 100 clients. Over 30 seeds, uniformly random selection
    # minus always-the-10-most-skewed-clients was >= 0.06 per seed (>= 0.15 averaged
    # over any 3 consecutive seeds), and minus the zone-greedy 10 was >= 0.027 per seed
    # (>= 0.029 averaged); random alone was >= 0.90.
    skewed_gaps, greedy_gaps = [], []
    for seed in (0, 1, 2):
        task = FederatedDigits(100, seed=seed)
        fair = task.evaluate(run(task, uniform_random(100, 10, seed), 60))
        most_skewed = np.argsort(-max_label_share(task), kind="stable")[:10].tolist()
        skewed = task.evaluate(run(task, lambda r, c=most_skewed: c, 60))
        greedy = task.evaluate(run(task, lambda r: ZONE_GREEDY, 60))
        assert fair >= 0.88
        skewed_gaps.append(fair - skewed)
        greedy_gaps.append(fair - greedy)
    assert min(skewed_gaps) >= 0.04, skewed_gaps
    assert np.mean(skewed_gaps) >= 0.10, skewed_gaps
    assert min(greedy_gaps) >= 0.015, greedy_gaps
    assert np.mean(greedy_gaps) >= 0.02, greedy_gaps


# --- inputs and data loading -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_clients": 0}, "n_clients must be at least 1"),
        ({"n_clients": -3}, "n_clients must be at least 1"),
        ({"n_clients": 2.5}, "n_clients must be an integer"),
        ({"n_clients": True}, "n_clients must be an integer"),
        ({"alpha": 0.0}, "alpha must be greater than 0"),
        ({"alpha": -1.0}, "alpha must be greater than 0"),
        ({"alpha": float("nan")}, "alpha"),
        ({"alpha": float("inf")}, "alpha"),
        ({"test_fraction": 0.0}, r"test_fraction must be in \(0, 1\)"),
        ({"test_fraction": 1.0}, r"test_fraction must be in \(0, 1\)"),
        ({"seed": -1}, "seed must be at least 0"),
        ({"local_epochs": 0}, "local_epochs"),
        ({"lr": 0.0}, "lr"),
        ({"batch_size": 0}, "batch_size"),
        ({"min_client_samples": -1}, "min_client_samples"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, message):
    kwargs = {"n_clients": 10, **kwargs}
    with pytest.raises(InvalidInputError, match=message):
        FederatedDigits(**kwargs)


def test_bad_round_inputs_are_rejected():
    task = FederatedDigits(10, seed=0)
    w = task.new_model()
    with pytest.raises(InvalidInputError, match=r"client index 10 is out of range.*0 to 9"):
        task.train_round(w, [1, 10], round_index=0)
    with pytest.raises(InvalidInputError, match="client index -1 is out of range"):
        task.train_round(w, [-1], round_index=0)
    with pytest.raises(InvalidInputError, match="must be an integer"):
        task.train_round(w, ["3"], round_index=0)
    with pytest.raises(InvalidInputError, match=r"clients \[2\] are selected more than once"):
        task.train_round(w, [2, 4, 2], round_index=0)
    with pytest.raises(InvalidInputError, match="round_index must be at least 0"):
        task.train_round(w, [1], round_index=-1)
    with pytest.raises(InvalidInputError, match="client index 12"):
        task.local_update(w, 12, round_index=0)
    with pytest.raises(InvalidInputError, match="expected ModelWeights"):
        task.evaluate(w.params)
    with pytest.raises(InvalidInputError, match="shape"):
        ModelWeights(np.zeros((64, 10)))
    # numpy integers, as a policy may return them, are fine.
    task.train_round(w, np.array([1, 2]), round_index=np.int64(0))


def test_the_bundled_file_is_read_without_importing_scikit_learn(monkeypatch):
    # None in sys.modules makes any import of sklearn.datasets fail (importing it
    # takes about 0.8 s, which is why the loader reads the file directly).
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    _load_digits.cache_clear()
    try:
        features, labels = _load_digits()
    finally:
        _load_digits.cache_clear()
    assert features.shape == (N_DIGITS, 64)
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert np.array_equal(np.unique(features * 16), np.arange(17))


def test_a_missing_or_malformed_file_falls_back_to_scikit_learns_loader(monkeypatch, tmp_path):
    bundled = _read_digits_table(_bundled_digits_file())
    calls = []

    def load_digits():
        calls.append(1)
        return types.SimpleNamespace(data=bundled[:, :-1], target=bundled[:, -1].astype(int))

    fake = types.ModuleType("sklearn.datasets")
    fake.load_digits = load_digits
    monkeypatch.setitem(sys.modules, "sklearn.datasets", fake)
    (tmp_path / "bad.csv").write_text("1,2\n3,4\n")
    for path in (tmp_path / "missing.csv.gz", tmp_path / "bad.csv", None):
        assert np.array_equal(_read_digits_table(path), bundled)
    assert len(calls) == 3
