"""The audit ledger's math and the standalone verifier.

Everything here MUST depend only on the standard library and ``cryptography``: an auditor runs
``hub-verify`` without the rest of the hub, so nothing in ``audit`` imports ``hub``, ``domain``,
``adapters`` or any other package of ours (``tests/unit/test_hub_verify.py`` checks this).
"""
