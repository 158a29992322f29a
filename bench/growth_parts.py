#!/usr/bin/env python3
"""Where a restic-format repository's growth goes, read with stock restic.

    bench/growth_parts.py list REPO > before.tsv      # before the backup whose growth to read
    bench/growth_parts.py parts REPO PASSWORD_FILE before.tsv

`parts` sorts the files added since `list` into pack files, index files and snapshots, and
the new packs' bytes, from the repository's own index (`restic cat index`), into data blobs,
tree blobs and what each pack adds around its blobs (its encrypted header). Each blob's stored
length includes its encryption (a 16-byte nonce and a 16-byte MAC), shown apart. Prints a
Markdown table in MiB.
"""

import json
import os
import subprocess
import sys

MIB = 1 << 20


def files(repo):
    """Every file of the repository, relative path -> size."""
    out = {}
    for root, _, names in os.walk(repo):
        for name in names:
            path = os.path.join(root, name)
            out[os.path.relpath(path, repo)] = os.path.getsize(path)
    return out


def restic(repo, password_file, *args):
    return subprocess.run(
        ["restic", "-q", "-r", repo, "--password-file", password_file, *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def parts(repo, password_file, before_tsv):
    with open(before_tsv) as f:
        before = {line.split("\t")[0] for line in f if line.strip()}
    added = {p: s for p, s in files(repo).items() if p not in before}
    by_dir = {}
    for path, size in added.items():
        top = path.split(os.sep)[0]
        by_dir[top] = by_dir.get(top, 0) + size
    new_packs = {os.path.basename(p): s for p, s in added.items() if p.startswith("data" + os.sep)}
    blobs = {"data": [0, 0, 0], "tree": [0, 0, 0]}  # count, stored bytes, uncompressed bytes
    in_packs = {}
    for path in added:
        if not path.startswith("index" + os.sep):
            continue
        index = json.loads(restic(repo, password_file, "cat", "index", os.path.basename(path)))
        for pack in index.get("packs", []):
            if pack["id"] not in new_packs:
                continue
            for b in pack["blobs"]:
                acc = blobs[b["type"]]
                acc[0] += 1
                acc[1] += b["length"]
                acc[2] += b.get("uncompressed_length") or b["length"] - 32
                in_packs[pack["id"]] = in_packs.get(pack["id"], 0) + b["length"]
    total = sum(added.values())
    rows = []
    for kind in ("data", "tree"):
        count, stored, plain = blobs[kind]
        rows.append((f"{kind} blobs: {count:,}, {plain / MIB:.1f} MiB before compression",
                     stored - 32 * count))
    rows.append(("encryption of those blobs (32 bytes each)",
                 32 * (blobs["data"][0] + blobs["tree"][0])))
    rows.append((f"pack headers and padding ({len(new_packs)} packs)",
                 sum(new_packs.values()) - sum(in_packs.values())))
    for top in sorted(by_dir):
        if top != "data":
            rows.append((f"files in {top}/", by_dir[top]))
    print("| part | MiB | share |")
    print("|---|---:|---:|")
    for what, size in rows:
        print(f"| {what} | {size / MIB:.2f} | {size / total:.1%} |")
    print(f"| **growth** | **{total / MIB:.2f}** | |")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "list":
        for path, size in sorted(files(sys.argv[2]).items()):
            print(f"{path}\t{size}")
    elif len(sys.argv) == 5 and sys.argv[1] == "parts":
        parts(*sys.argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
