"""numpy-lowcarb: the ClientApp (a NumPy "model" nudged by each node)."""

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from lowcarb.adapters.flower import ENERGY_METRIC, answer_zone_query

app = ClientApp()
# lowcarb: tell the server this node's zone (node_config, or lowcarb.zones in simulation).
answer_zone_query(app)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Move the model towards this node's partition id; fail where the config says."""
    partition = int(context.node_config["partition-id"])
    config = msg.content["config"]
    failing = str(config.get("fail-partitions", "")).split(",")
    if str(partition) in failing:
        raise RuntimeError(f"partition {partition}: out of memory")
    model = [m + 0.1 * (partition + 1) for m in msg.content["arrays"].to_numpy_ndarrays()]
    metrics: dict[str, float | int] = {"spread": float(np.std(model[0])), "num-examples": 1}
    if "energy-kwh" in config:
        metrics[ENERGY_METRIC] = float(config["energy-kwh"])  # as measured on the node
    content = RecordDict({"arrays": ArrayRecord(model), "metrics": MetricRecord(metrics)})
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Report how far the model is from this node's partition id."""
    partition = int(context.node_config["partition-id"])
    model = msg.content["arrays"].to_numpy_ndarrays()
    metrics = {"distance": float(np.abs(model[0] - partition).mean()), "num-examples": 1}
    return Message(content=RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)
