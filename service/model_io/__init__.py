"""What a served model takes and gives: its signature and the V2 datatypes, below both the wire
format (protocol/) and the batcher (batching/), which each read it."""
