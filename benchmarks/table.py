"""Prints scripts/bench-codec's table from the benchmarks' outputs.

    python table.py LABEL=FILE [LABEL=FILE ...]

Each FILE holds codec-bench lines (`name op ns_per_op msgs_per_s mb_per_s bytes`). The first LABEL is ours;
for every other one a column `ours/LABEL` gives the ratio of msgs/s (>1: ours is faster). Cases are listed in
the first file's order. Exits 1 if an implementation lacks a case or encodes a message to a different size.
"""

import sys


def read(path):
    cases = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) != 6:
                continue  # not a result line
            name, op, ns, msgs, mb, nbytes = parts
            cases[(name, op)] = (float(ns), float(msgs), float(mb), int(nbytes))
    return cases


def main():
    impls = [arg.split("=", 1) for arg in sys.argv[1:]]
    results = {label: read(path) for label, path in impls}
    labels = [label for label, _ in impls]
    ours, others = labels[0], labels[1:]
    order = list(results[ours])

    problems = []
    for label in others:
        for case in order:
            if case not in results[label]:
                problems.append(f"{label} has no result for {' '.join(case)}")
            elif results[label][case][3] != results[ours][case][3]:
                problems.append(f"{label} encodes {case[0]} to {results[label][case][3]} bytes, "
                                f"{ours} to {results[ours][case][3]}")

    # Columns: message, its encoded size, op; then ns/op, msgs/s, MB/s per implementation; then the ratios.
    lead = f"{'message':<17}{'bytes':>6}  {'op':<15}"
    group = f"{'ns/op':>11}{'msgs/s':>13}{'MB/s':>10}"
    ratio_names = [f"{ours}/{label}" for label in others]
    head1 = " " * len(lead) + "".join(f"  {' ' + label + ' ':-^{len(group) - 2}}" for label in labels)
    head1 += "".join(f"{'':>{len(r) + 2}}" for r in ratio_names)
    head2 = lead + group * len(labels) + "".join(f"{r:>{len(r) + 2}}" for r in ratio_names)
    print(head1.rstrip())
    print(head2)
    print("-" * len(head2))
    previous = None
    for name, op in order:
        size = results[ours][(name, op)][3]
        shown = (name, size) if name != previous else ("", "")
        previous = name
        row = f"{shown[0]:<17}{shown[1]:>6}  {op:<15}"
        for impl in labels:
            ns, msgs, mb, _ = results[impl].get((name, op), (float("nan"),) * 3 + (0,))
            row += f"{ns:>11,.1f}{msgs:>13,.0f}{mb:>10,.1f}"
        for impl, r in zip(others, ratio_names):
            other = results[impl].get((name, op), (0, 0))[1]
            ratio = results[ours][(name, op)][1] / other if other else float("nan")
            row += f"{ratio:>{len(r) + 1}.2f}x"
        print(row)
    for p in problems:
        print(f"table: {p}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
