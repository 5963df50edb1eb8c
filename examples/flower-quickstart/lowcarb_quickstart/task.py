"""The learning task: softmax regression on scikit-learn's digits, split across nodes.

lowcarb's FederatedDigits holds the data (bundled with scikit-learn, no download), the
Dirichlet label-skewed partition and the local SGD; this module converts between its
weights and Flower's ArrayRecord.
"""

from __future__ import annotations

from functools import lru_cache

from flwr.app import Array, ArrayRecord

from lowcarb.simulation import FederatedDigits, ModelWeights

ZONES = (
    "DE,GB,US-CAL-CISO,US-TEX-ERCO,US-NY-NYIS,US-MIDA-PJM,CA-ON,BR-CS,CL-SEN,ZA,KR,SG,AU-NSW,AU-VIC"
)


@lru_cache(maxsize=4)
def task(num_partitions: int, seed: int = 0) -> FederatedDigits:
    """The partitioned data set, built once per process."""
    return FederatedDigits(num_partitions, seed=seed)


def to_record(weights: ModelWeights) -> ArrayRecord:
    """Model weights as a Flower ArrayRecord."""
    return ArrayRecord({"params": Array(weights.params.copy())})


def from_record(record: ArrayRecord) -> ModelWeights:
    """A Flower ArrayRecord as model weights."""
    return ModelWeights(record["params"].numpy())


def zone_of(partition_id: int, zones: str = ZONES) -> str:
    """Zone of a simulated node: partition ids go round the zone list."""
    names = [z.strip() for z in zones.split(",") if z.strip()]
    return names[partition_id % len(names)]
