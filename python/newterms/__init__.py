"""newterms: a new_terms detection rule, sandboxed in WebAssembly, run by the Rust host at native speed.

    import newterms
    rule = newterms.Rule(profile="elastic")            # the keys of `newterms scan --config`
    alerts = rule.process_ndjson(open("events.ndjson", "rb").read())   # list of alert JSON strings
    for line, why in rule.errors():                    # lines the rule refused in that call
        ...
    state = rule.snapshot()                            # the bytes of `newterms scan --state`

The alerts are those `newterms scan` prints for the same events, byte for byte.
"""

from ._native import (  # noqa: F401  (the package's API)
    ConfigError,
    NewtermsError,
    RestoreError,
    Rule,
    RuleFault,
    events,
    inspect,
    located_events,
    merge,
)

__all__ = ["Rule", "events", "located_events", "merge", "inspect", "NewtermsError", "ConfigError", "RestoreError", "RuleFault"]
