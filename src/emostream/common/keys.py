"""Redis key names shared by the roles that write and read them."""


def latest_swarm_key(stream_id: str) -> str:
    """The latest swarm JSON of a stream: the aggregation writes it, fanout greets new viewers."""
    return f"emostream:swarm:latest:{stream_id}"
