"""The audit ledger service: a Merkle leaf per log record, signed checkpoints, proofs, evidence.

Modules: ``tree`` (node layout, incremental builder), ``store`` (SQLite), ``leaves`` (record to
leaf), ``service`` (``Ledger``: sync, checkpoints, queries, proofs, audit actions), ``verify``
(full re-check), ``evidence`` (packs and their HTML report), ``controls`` (SOC 2 mapping).
The math and the pack verifier are in ``audit`` (stdlib + cryptography only).
"""
