"""holder.py - a process that holds model files for the live tests.

    holder.py MODE PATH...

MODE "map": opens, maps and touches each PATH, closes the descriptor (the
mapping alone holds the handle); "open": keeps each PATH open.  Prints
"ready" once everything is held, then waits for a line on stdin, drops
everything, prints "released" and waits for another line before exiting
(so the test can check the release while the process still lives)."""

import mmap
import os
import sys


def main():
    mode, paths = sys.argv[1], sys.argv[2:]
    held = []
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        if mode == "map":
            mm = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
            os.close(fd)
            _ = mm[len(mm) - 1]
            held.append(mm)
        else:
            held.append(fd)
    print("ready", flush=True)
    sys.stdin.readline()
    for x in held:
        if mode == "map":
            x.close()
        else:
            os.close(x)
    print("released", flush=True)
    sys.stdin.readline()


if __name__ == "__main__":
    main()
