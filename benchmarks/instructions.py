"""Instructions per operation, counted by valgrind's callgrind: repeatable on a noisy machine, where timings
move by 10-20% between runs. Compares the two Swift codecs (the Python interpreter's own instructions would
swamp upb's, so it is left out).

    python instructions.py ours=BIN swift-protobuf=BIN [--iterations N]

Each binary runs each case twice, with N and with 0 iterations; the difference over N is the cost of one
operation without start-up. valgrind 3.19 cannot read the toolchain's DWARF 5, so stripped copies are run.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

CASES = [(m, op) for m in ("small-user", "large-64k-bytes") for op in ("encode", "decode", "decode+encode")]


def instructions(binary, case, iterations):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary,
                        "--iterations", str(iterations), "--filter", case],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(out) as f:
            for line in f:
                if line.startswith("summary:") or line.startswith("totals:"):
                    return int(line.split()[1])
    raise RuntimeError(f"no instruction total for {binary} {case}")


def main():
    iterations = 2000
    binaries = {}
    args = sys.argv[1:]
    while args:
        a = args.pop(0)
        if a == "--iterations":
            iterations = int(args.pop(0))
        else:
            name, path = a.split("=", 1)
            binaries[name] = path
    with tempfile.TemporaryDirectory() as tmp:
        stripped = {}
        for name, path in binaries.items():
            copy = os.path.join(tmp, re.sub(r"\W", "_", name))
            shutil.copy(path, copy)
            subprocess.run(["strip", "--strip-debug", copy], check=True)
            stripped[name] = copy
        names = list(binaries)
        print(f"instructions per operation (callgrind, {iterations} iterations minus start-up)")
        print(f"{'message':<17} {'op':<14}" + "".join(f"{n:>16}" for n in names) +
              (f"  {names[0]}/{names[1]} (<1: fewer)" if len(names) == 2 else ""))
        for message, op in CASES:
            case = f"{message}/{op}"
            per_op = {}
            for name, binary in stripped.items():
                per_op[name] = (instructions(binary, case, iterations) - instructions(binary, case, 0)) / iterations
            row = f"{message:<17} {op:<14}" + "".join(f"{per_op[n]:>16,.0f}" for n in names)
            if len(names) == 2:
                row += f"  {per_op[names[0]] / per_op[names[1]]:.2f}x"
            print(row)


if __name__ == "__main__":
    main()
