#!/usr/bin/env python3
"""Enrich orders for sluice's exec transform.

sluice writes one JSON record per line on stdin; the script answers each
with one line on stdout, flushed: a JSON object (the new record), a JSON
array of objects (several records), null (drop the record), or anything
else, such as a JSON string giving the reason, to send the record to the
dead-letter stream. Standard library only.
"""

import json
import sys

# Country code -> (name, VAT rate).
COUNTRIES = {
    "DE": ("Germany", 0.19),
    "FR": ("France", 0.20),
    "GB": ("United Kingdom", 0.20),
    "JP": ("Japan", 0.10),
    "US": ("United States", 0.0),
}


def enrich(order):
    """Returns the enriched order, or None to drop it."""
    if order.get("test"):
        return None
    name, rate = COUNTRIES[order["country"]]
    net = float(order["amount"])
    return {
        **order,
        "country_name": name,
        "vat": round(net * rate, 2),
        "gross": round(net * (1 + rate), 2),
    }


def main():
    # Iterating over sys.stdin yields each line as soon as it arrives,
    # and ends when sluice closes stdin at the end of the run.
    for line in sys.stdin:
        try:
            answer = enrich(json.loads(line))
        except (KeyError, ValueError, TypeError) as e:
            reason = f"rejected order: {type(e).__name__} {e}"
            print(reason, file=sys.stderr, flush=True)  # logged by sluice
            answer = reason  # a JSON string is not a record: dead letter
        print(json.dumps(answer, ensure_ascii=False, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main()
