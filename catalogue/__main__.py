"""``python -m catalogue list | show | run``: the catalogue from the command line."""

from __future__ import annotations

import argparse
import json
import sys

from catalogue import all_cases, get
from catalogue.runner import run
from catalogue.taxonomy import TAGS


def _list(tag: str | None, as_json: bool) -> int:
    if tag is not None and tag not in TAGS:
        print(f"unknown tag {tag!r}; tags: {', '.join(TAGS)}", file=sys.stderr)
        return 2
    chosen = [c for c in all_cases() if tag is None or tag in c.tags]
    if as_json:
        rows = [
            {
                "id": c.id,
                "title": c.title,
                "kind": c.kind,
                "tags": list(c.tags),
                "expected": c.module.EXPECTED.__name__,
            }
            for c in chosen
        ]
        print(json.dumps(rows, indent=2))
    else:
        for c in chosen:
            print(f"{c.id:42s} {c.kind:9s} {', '.join(c.tags)}")
    return 0


def _show(case_id: str) -> int:
    case = get(case_id)
    m = case.module
    print(m.__doc__.strip() if m.__doc__ else case.id)
    print(f"\nkind: {case.kind}   tags: {', '.join(case.tags)}")
    print(f"expected: {m.EXPECTED.__name__} matching /{m.MATCH}/")
    if case.has_torch:
        print(f"in PyTorch: {m.TORCH_EXPECTED.__name__} matching /{m.TORCH_MATCH}/")
    for article, claim, reality in getattr(m, "SEED_CLAIMS", ()):
        print(f"\nseed article {article} claimed: {claim}\nrunning it shows: {reality}")
    return 0


def _run(ids: list[str]) -> int:
    chosen = [get(i) for i in ids] if ids else list(all_cases())
    failures = 0
    print(f"{'case':42s} {'broken did':70s} fixed")
    for case in chosen:
        outcome = run(case)
        ok = outcome.broken_ok and outcome.fixed_ok and outcome.torch_ok is not False
        failures += not ok
        broken = outcome.broken if len(outcome.broken) <= 68 else outcome.broken[:65] + "..."
        mark = "" if outcome.broken_ok else "  <- NOT AS CLAIMED"
        print(f"{case.id:42s} {broken:70s} {outcome.fixed}{mark}")
    print(f"\n{len(chosen) - failures} as claimed, {failures} not")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the subcommand."""
    parser = argparse.ArgumentParser(prog="python -m catalogue", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="list cases")
    p_list.add_argument("--tag", help="only cases with this taxonomy tag")
    p_list.add_argument("--json", action="store_true", help="print JSON")
    p_show = sub.add_parser("show", help="print one case")
    p_show.add_argument("id")
    p_run = sub.add_parser("run", help="run cases and print what really happened")
    p_run.add_argument("ids", nargs="*")
    args = parser.parse_args(argv)
    if args.command == "list":
        return _list(args.tag, args.json)
    if args.command == "show":
        return _show(args.id)
    return _run(args.ids)


if __name__ == "__main__":
    sys.exit(main())
