"""Pure Avro: schema parsing, Confluent-wire serde, compatibility rules, the column-wise
encoder. The registry and ingest both use it."""
