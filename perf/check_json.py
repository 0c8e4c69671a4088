#!/usr/bin/python3
"""Runs amtbench with the given arguments (which must include --json) and checks that its output
is sane JSON: the command, one result at least for every --section asked for, each with a name, a
unit and a finite number (null is allowed for a quantile of an empty sample). No figure is
judged (timing depends on the machine), but correctness counts that hold on any machine are: a
section that streams must deliver replicas, and never to a gateway that left or never joined."""
import json
import math
import subprocess
import sys

# Result names (their part after "N endpoints: ") whose value must be > 0 or == 0 on any machine.
MUST_BE_POSITIVE = ("replicas out",)
MUST_BE_ZERO = (
    "duplicate replicas (steady members)",
    "replicas to a gateway after its removal was published",
    "replicas to gateways never joined",
)


def main() -> int:
    argv = sys.argv[1:]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    doc = json.loads(out)
    assert isinstance(doc.get("command"), str), "no command"
    results = doc.get("results")
    assert isinstance(results, list) and results, "no results"
    sections = {argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--section"}
    seen = {r.get("section") for r in results}
    assert sections <= seen, f"sections missing: {sections - seen}"
    for r in results:
        assert isinstance(r.get("name"), str) and r["name"], r
        assert isinstance(r.get("unit"), str) and r["unit"], r
        v = r.get("value")
        if v is None:
            assert " p50" in r["name"] or " p99" in r["name"], r
            continue
        assert isinstance(v, (int, float)) and math.isfinite(v), r
        if r["unit"] in ("count", "endpoints", "B", "MB"):
            assert v >= 0, r
        what = r["name"].split(": ", 1)[-1]
        if what in MUST_BE_POSITIVE:
            assert v > 0, f"nothing replicated: {r}"
        if what in MUST_BE_ZERO:
            assert v == 0, f"replicas where none may be: {r}"
    print(f"{len(results)} results, sections {sorted(seen)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
