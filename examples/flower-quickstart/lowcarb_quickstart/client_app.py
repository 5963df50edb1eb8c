"""ClientApp: local SGD on this node's share of the digits."""

from __future__ import annotations

from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from lowcarb.adapters.flower import answer_zone_query, zone_from_config

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
    """The zone Flower's configuration gives the node, else the App's own spread.

    ``run_simulation`` passes no run config, so there the partitions go round the
    App's zone list.
    """
    return zone_from_config(context) or zone_of(int(context.node_config["partition-id"]))


# lowcarb: tell the server this node's grid zone (one line).
answer_zone_query(app, node_zone)
