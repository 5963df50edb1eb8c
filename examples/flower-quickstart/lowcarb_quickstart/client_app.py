"""ClientApp: local SGD on this node's share of the digits."""

from __future__ import annotations

from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from lowcarb.adapters.flower import answer_zone_query

from lowcarb_quickstart.task import from_record, task, to_record, zone_of

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Train the received model on this node's data for the configured local epochs."""
    partition = int(context.node_config["partition-id"])
    data = task(int(context.node_config["num-partitions"]))
    weights = from_record(msg.content["arrays"])
    server_round = int(msg.content["config"]["server-round"])
    updated = data.local_update(weights, partition, round_index=server_round)
    metrics = MetricRecord({"num-examples": int(data.client_sizes[partition])})
    return Message(RecordDict({"arrays": to_record(updated), "metrics": metrics}), reply_to=msg)


def node_zone(context: Context) -> str:
    """A deployed SuperNode's --node-config zone, else the simulated node's zone."""
    if "zone" in context.node_config:
        return str(context.node_config["zone"])
    zones = str(context.run_config.get("zones", "")) or None
    partition = int(context.node_config["partition-id"])
    return zone_of(partition) if zones is None else zone_of(partition, zones)


# lowcarb: tell the server this node's grid zone (one line).
answer_zone_query(app, node_zone)
