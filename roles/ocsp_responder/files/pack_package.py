"""Packs a Python package directory into a reproducible tar: same files, same bytes.

Run on the controller by the role: python pack_package.py SRC_DIR OUT_TAR. Entries are
sorted, owned by 0:0, dated 0, mode 0644 (directories 0755); bytecode is left out."""
import os
import sys
import tarfile

src, out = sys.argv[1], sys.argv[2]
base = os.path.basename(os.path.normpath(src))


def add(archive, path, arcname):
    info = archive.gettarinfo(path, arcname)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0
    info.mode = 0o755 if info.isdir() else 0o644
    if info.isfile():
        with open(path, "rb") as handle:
            archive.addfile(info, handle)
    else:
        archive.addfile(info)


with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as archive:
    add(archive, src, base)
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        rel = os.path.relpath(root, src)
        for name in sorted(dirs):
            add(archive, os.path.join(root, name), os.path.normpath(os.path.join(base, rel, name)))
        for name in sorted(files):
            if name.endswith((".pyc", ".pyo")):
                continue
            add(archive, os.path.join(root, name), os.path.normpath(os.path.join(base, rel, name)))
