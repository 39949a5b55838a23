"""What every service shares: ports, errors, the partitioner, the Avro code, the PII codec,
the policy bundle and decision cache, the event-fold helper. Imports only ``domain`` and
third-party libraries."""
