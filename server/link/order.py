#!/usr/bin/env python3
"""Turns profiles of one release build into lld's symbol ordering file.

    order.py MAP BINARY CG_FILE... --real-cpu FILE [--faults PERF_SCRIPT PERF_MMAPS]

MAP is that build's link map (`-Wl,-Map`, `--no-demangle`), CG_FILE the
callgrind dumps of a run of BINARY (`--dump-instr=yes --compress-pos=no
--compress-strings=no`) in the order their code should be laid out. With
--faults, the exec page faults a run on the real CPU took (`perf script -F
trace` of `exceptions:page_fault_user`, and that run's `--show-mmap-events`
lines) add what valgrind's emulated CPU did not run: code chosen by CPU
features it does not have (SHA-NI, ADX). Those sections are kept in the
--real-cpu file from one run to the next.

Prints one symbol per input section, in the order first executed; a
section whose code ran is named by its first symbol, which is what lld
needs to move the whole section."""

import argparse
import bisect
import re
import subprocess
import sys


def text_sections(map_path):
    """(start, size, first symbol) of every input section in `.text`."""
    # lld's map: VMA LMA Size Align, then the name indented by nesting: an
    # output section, an input section (8 spaces more), a symbol (16).
    entry = re.compile(r"^\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+ (\s*)(\S.*)$")
    sections = []
    in_text = False
    current = None
    for line in open(map_path, errors="replace"):
        m = entry.match(line.rstrip("\n"))
        if not m:
            continue
        addr, size, depth, name = int(m.group(1), 16), int(m.group(2), 16), len(m.group(3)), m.group(4)
        if depth == 0:
            in_text = name == ".text"
            current = None
        elif not in_text:
            continue
        elif depth <= 8:
            current = [addr, size, None]
            sections.append(current)
        elif current is not None and current[2] is None:
            current[2] = name
    sections = [s for s in sections if s[2] is not None and s[1] > 0]
    sections.sort()
    return sections


def text_segment(binary):
    """(file offset, link address) of the executable segment."""
    out = subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        fields = line.split()
        if fields[:1] == ["LOAD"] and "E" in fields[6:-1]:
            return int(fields[1], 16), int(fields[2], 16)
    sys.exit(f"{binary}: no executable LOAD segment")


def callgrind_addresses(path, binary):
    """Executed instruction addresses in `binary`, in file order. Callgrind
    gives them as link addresses (the object's load bias taken off)."""
    addresses = []
    ours = False
    for line in open(path, errors="replace"):
        if line.startswith("ob="):
            ours = line[3:].strip() == binary
        elif ours and line.startswith("0x"):
            addresses.append(int(line.split()[0], 16))
    return addresses


def fault_addresses(perf_out, perf_maps, binary):
    """Exec page-fault addresses in `binary` from a `perf script` dump."""
    base = None  # perf prints a mapping as [start(length) @ file offset ...]
    for line in open(perf_maps, errors="replace"):
        m = re.search(r"\[(0x[0-9a-f]+)\((0x[0-9a-f]+)\) @ (0x[0-9a-f]+) .*\]: r-xp (\S+)", line)
        if m and m.group(4) == binary:
            base = (int(m.group(1), 16), int(m.group(2), 16), int(m.group(3), 16))
    if base is None:
        return [], None
    addresses = []
    for line in open(perf_out, errors="replace"):
        m = re.search(r"address=(0x[0-9a-f]+) ip=0x[0-9a-f]+ error_code=(0x[0-9a-f]+)", line)
        address = int(m.group(1), 16) if m else 0
        # An instruction fetch (error code bit 4) in the binary's code.
        if m and int(m.group(2), 16) & 0x10 and base[0] <= address < base[0] + base[1]:
            addresses.append(address)
    return addresses, base


def main():
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("map")
    cli.add_argument("binary")
    cli.add_argument("callgrind", nargs="+")
    cli.add_argument("--faults", nargs=2, metavar=("PERF_SCRIPT", "PERF_MMAPS"))
    cli.add_argument("--real-cpu", metavar="FILE", required=True)
    args = cli.parse_args()

    sections = text_sections(args.map)
    starts = [s[0] for s in sections]
    in_build = {s[2] for s in sections}
    seg_off, seg_va = text_segment(args.binary)  # for the page faults' addresses

    def section_of(link_addr):
        i = bisect.bisect_right(starts, link_addr) - 1
        if i >= 0 and link_addr < sections[i][0] + sections[i][1]:
            return sections[i][2]
        return None

    def names(link_addrs, seen):
        found = []
        for a in link_addrs:
            name = section_of(a)
            if name is not None and name not in seen:
                seen.add(name)
                found.append(name)
        return found

    seen = set()
    order = []
    for path in args.callgrind:
        order += names(callgrind_addresses(path, args.binary), seen)
    # Code only the real CPU runs faults once per 64 KiB block, so a run
    # finds only some of it: keep what earlier runs found while this build
    # still has it.
    try:
        real_cpu = [n.strip() for n in open(args.real_cpu) if n.strip() in in_build]
    except FileNotFoundError:
        real_cpu = []
    real_cpu = [n for n in real_cpu if n not in seen]
    seen.update(real_cpu)
    if args.faults:
        addrs, base = fault_addresses(args.faults[0], args.faults[1], args.binary)
        if base:
            start, _, file_off = base
            real_cpu += names((a - start + file_off - seg_off + seg_va for a in addrs), seen)
    with open(args.real_cpu, "w") as f:
        f.writelines(n + "\n" for n in real_cpu)
    print("\n".join(order + real_cpu))
    size = {s[2]: s[1] for s in sections}
    print(
        f"{len(order)} sections from valgrind, {len(real_cpu)} only the real CPU ran; "
        f"{sum(size[n] for n in order + real_cpu) // 1024} KiB of "
        f"{sum(s[1] for s in sections) // 1024} KiB of code",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
