"""snapferry's local AWS emulator: moto in server mode (the version pinned in
emulator/requirements.txt, checked at start by ``pin``) plus a layer that
makes moto behave like AWS where the snapferry pipeline depends on it
(cross-account snapshot sharing/copying, AWS's refusals and quotas, snapshot
timing, native RDS/EBS EventBridge events, fault injection, a request log).

Run it with ``python -m snapferry_emulator``; see ``emulator/README.md``.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
