#!/usr/bin/python3
"""Check that every amt_* metric a Grafana dashboard or a Prometheus rules file queries exists
in a real scrape of amtrelayd, so a renamed metric cannot leave an empty panel or a silent alert.

  check_dashboard.py --scrape scrape.txt [--dashboard amtrelay-dashboard.json]
                     [--rules amtrelay-rules.yml] [--optional METRIC]
                     [--promql-syntax]

Names are the tokens amt_[a-z0-9_]+ in every "expr"/"query"/"definition" string of the
dashboard (panels, templating, annotations, recursively) and in every rule's expr. A histogram
family is found through its _bucket/_sum/_count series. Series recorded by the rules file
(record: names) are skipped. Metrics of an optional mode (MODE_METRICS) and --optional names may be
absent. Exit status: 0 all found, 1 something missing, 2 usage or input error.
"""
import argparse
import json
import os
import re
import shutil
import subprocess

# Exported only when the relay runs in that mode: absent from a scrape without it.
MODE_METRICS = {
    "amt_xdp_packets_total": "AF_XDP mode",
    "amt_ipfix_records_dropped_total": "ipfix.collector set",
}
import sys
import tempfile

TOKEN = re.compile(r"(?<![A-Za-z0-9_:])amt_[a-z0-9_]+")
EXPR_KEYS = {"expr", "query", "definition"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def dashboard_exprs(node, where="dashboard"):
    """Yields (location, expression) for every query string in a dashboard, recursively."""
    if isinstance(node, dict):
        title = node.get("title") or node.get("name") or ""
        here = f"{where}/{title}" if title else where
        for key, value in node.items():
            if key in EXPR_KEYS and isinstance(value, str):
                yield here, value
            else:
                yield from dashboard_exprs(value, here)
    elif isinstance(node, list):
        for item in node:
            yield from dashboard_exprs(item, where)


def rules_exprs(path):
    """Yields (location, expression) for every rule, and returns the recorded names."""
    try:
        import yaml
    except ImportError:
        sys.exit("check_dashboard.py: --rules needs PyYAML (apt-get install python3-yaml)")
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    exprs, recorded = [], set()
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            name = rule.get("record") or rule.get("alert")
            if "record" in rule:
                recorded.add(rule["record"])
            exprs.append((f"{path}: {group.get('name')}/{name}", str(rule.get("expr", ""))))
    return exprs, recorded


def scraped_names(path):
    """Metric names that have samples in a Prometheus text-format scrape. HELP/TYPE lines do
    not count: a family without samples gives a panel nothing to draw."""
    names = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def exists(name, scraped):
    if name in scraped:
        return True
    # A histogram's quantile query names name_bucket; a family name alone is also fine.
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] + "_bucket" in scraped:
            return True
        if name + suffix in scraped:
            return True
    return False


def check_promql_syntax(exprs):
    """Parses every expression with promtool (Grafana variables replaced by plausible values)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        print("promql syntax: promtool not found, skipped")
        return True
    subst = [("$__rate_interval", "5m"), ("$__interval", "1m"), ("$__range", "1h"),
             ("${instance}", ".+"), ("$instance", ".+")]
    lines = ["groups:", "  - name: syntax", "    rules:"]
    for i, (_, expr) in enumerate(exprs):
        for a, b in subst:
            expr = expr.replace(a, b)
        # Grafana's variable queries: label_values(METRIC, label) queries METRIC.
        expr = re.sub(r"^\s*label_values\((.*),\s*\w+\s*\)\s*$", r"\1", expr)
        expr = re.sub(r"^\s*label_values\(\s*\w+\s*\)\s*$", "up", expr)
        lines += [f"      - record: syntax_check_{i}", f"        expr: {json.dumps(expr)}"]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        f.write("\n".join(lines) + "\n")
        tmp = f.name
    try:
        r = subprocess.run([promtool, "check", "rules", tmp], capture_output=True, text=True)
    finally:
        os.unlink(tmp)
    if r.returncode != 0:
        print("promql syntax: promtool rejects an expression:\n" + r.stdout + r.stderr)
        for i in sorted({int(n) for n in re.findall(r"syntax_check_(\d+)", r.stdout + r.stderr)}):
            print(f"  syntax_check_{i} is {exprs[i][0]}: {exprs[i][1]}")
        return False
    print(f"promql syntax: {len(exprs)} expressions parse")
    return True


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scrape", help="a scrape of amtrelayd's /metrics (Prometheus text format)")
    ap.add_argument("--dashboard", default=os.path.join(here, "amtrelay-dashboard.json"),
                    help="Grafana dashboard JSON (default: the one beside this script)")
    ap.add_argument("--no-dashboard", action="store_true", help="check only --rules")
    ap.add_argument("--rules", action="append", default=[], help="Prometheus rules file (repeatable)")
    ap.add_argument("--optional", action="append", default=[], metavar="METRIC",
                    help="a metric that may be absent from the scrape (repeatable)")
    ap.add_argument("--promql-syntax", action="store_true",
                    help="also parse every expression with promtool")
    args = ap.parse_args()
    args.optional += list(MODE_METRICS)
    if not args.scrape and not args.promql_syntax:
        ap.error("give --scrape FILE and/or --promql-syntax")

    exprs = []
    recorded = set()
    try:
        if not args.no_dashboard:
            with open(args.dashboard, encoding="utf-8") as f:
                exprs += list(dashboard_exprs(json.load(f), os.path.basename(args.dashboard)))
        for path in args.rules:
            e, r = rules_exprs(path)
            exprs += e
            recorded |= r
    except (OSError, ValueError) as e:
        print(f"check_dashboard.py: {e}", file=sys.stderr)
        return 2
    if not exprs:
        print("check_dashboard.py: no expressions found", file=sys.stderr)
        return 2

    ok = True
    if args.promql_syntax:
        ok = check_promql_syntax(exprs) and ok
    if args.scrape:
        try:
            scraped = scraped_names(args.scrape)
        except OSError as e:
            print(f"check_dashboard.py: {e}", file=sys.stderr)
            return 2
        if not any(n.startswith("amt_") for n in scraped):
            print(f"check_dashboard.py: {args.scrape} has no amt_* metric: not a scrape of amtrelayd?",
                  file=sys.stderr)
            return 2
        wanted = {}
        for where, expr in exprs:
            for name in TOKEN.findall(expr):
                if name not in recorded:
                    wanted.setdefault(name, []).append(where)
        missing = {n: w for n, w in wanted.items() if not exists(n, scraped) and n not in args.optional}
        optional_absent = sorted(n for n in wanted if not exists(n, scraped) and n in args.optional)
        for name in sorted(missing):
            print(f"MISSING {name}: queried by {', '.join(sorted(set(missing[name])))}")
        if optional_absent:
            print(f"optional, absent from this scrape: {', '.join(optional_absent)}")
        print(f"{len(wanted) - len(missing)} of {len(wanted)} queried metrics found in {args.scrape}"
              f" ({len(recorded)} recorded series skipped)")
        ok = ok and not missing
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
