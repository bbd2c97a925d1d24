# Copyright (c) pkiops.ocsp contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Crash-safe file writes shared by the CA modules.

A reader (``openssl ca``, ``openssl ocsp -index``, the responder, a concurrent fork) must
only ever see the old or the new content of a file, never a torn one, even if the writer is
killed with SIGKILL or the machine loses power.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import grp
import os
import pwd
import stat
import tempfile

TEMP_SUFFIX = ".tmp"


def temp_prefix(path):
    """Prefix of the temporary files atomic_write creates next to ``path``."""
    return "." + os.path.basename(path) + "."


def fsync_dir(directory):
    """Persist a rename/creation in ``directory`` (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory or ".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems refuse fsync on directories
        if exc.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def atomic_write(path, data, mode=0o644):
    """Replace ``path`` with ``data`` (bytes) atomically and durably.

    The temporary file lives in the target's directory (rename is only atomic within one
    filesystem), gets ``mode`` before any byte is written (a key is never world-readable,
    not even briefly) and is fsynced before the rename; the directory is fsynced after it.
    ``mode=None`` keeps the mode of an existing file (0644 for a new one). The owner and
    group of an existing file are kept where permitted (root managing a CA directory that
    belongs to a service account must not leave root-owned files behind).
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        existing = os.stat(path)
    except FileNotFoundError:
        existing = None
    if mode is None:
        mode = existing.st_mode & 0o7777 if existing is not None else 0o644
    fd, tmp_path = tempfile.mkstemp(prefix=temp_prefix(path), suffix=TEMP_SUFFIX, dir=directory)
    try:
        if existing is not None:
            try:
                os.fchown(fd, existing.st_uid, existing.st_gid)
            except PermissionError:
                pass  # not root: the file becomes ours, as with any rewrite
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
        os.close(fd)
        fd = None
        os.replace(tmp_path, path)
    except BaseException:
        if fd is not None:
            os.close(fd)
        try:
            os.unlink(tmp_path)
        except OSError:
            pass
        raise
    fsync_dir(directory)


def remove_stale_temp_files(path, prefix=None):
    """Delete temporaries of ``path`` left by a writer that was killed.

    ``path`` may be a directory with ``prefix="."``: then every temporary in it goes.
    Only call this while holding the lock that serializes every writer of ``path``:
    then no live process can own such a file.
    """
    if prefix is None:
        directory, prefix = os.path.dirname(os.path.abspath(path)), temp_prefix(path)
    else:
        directory = path
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if name.startswith(prefix) and name.endswith(TEMP_SUFFIX):
            try:
                os.unlink(os.path.join(directory, name))
                removed.append(name)
            except OSError:
                pass
    return removed


def unwritable_directory(path):
    """The directory that keeps ``path`` from being created or replaced, else None.

    That is the nearest existing ancestor of ``path`` (the one a write or mkdir would go
    into) when this user cannot create files in it (permissions or a read-only mount).
    """
    directory = os.path.dirname(os.path.abspath(path))
    while not os.path.isdir(directory):
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent
    return None if os.access(directory, os.W_OK | os.X_OK) else directory


def _numeric(value):
    try:
        int(value)
    except ValueError:
        return False
    return True


def file_attributes_problem(module, params):
    """Why set_fs_attributes_if_different would fail on ``params``' owner, group or mode.

    Ansible applies them after the files are written; checking first keeps a typo from
    failing a run that already issued a certificate. Returns a message or None. In check
    mode owner and group are not looked up: an earlier task of the play (skipped in check
    mode) may create them, and Ansible itself does not look them up for a file to come.
    """
    lookups = () if module.check_mode else (('owner', pwd.getpwnam, 'user'), ('group', grp.getgrnam, 'group'))
    for option, lookup, kind in lookups:
        name = params.get(option)
        if name is None or _numeric(name):  # an id, as Ansible takes it
            continue
        try:
            lookup(name)
        except KeyError:
            return '%s %s: no such %s on this host' % (option, name, kind)
    mode = params.get('mode')
    if mode is not None and not isinstance(mode, int):
        try:
            int(mode, 8)
        except (TypeError, ValueError):
            try:  # the parser Ansible applies later; the base mode does not matter here
                value = module._symbolic_mode_to_octal(os.stat_result((stat.S_IFREG | 0o644,) + (0,) * 9), mode)
            except Exception as exc:  # pylint: disable=broad-except
                return 'mode %r must be in octal or symbolic form (%s)' % (mode, exc)
            if value != stat.S_IMODE(value):
                return 'mode %r: only permission bits are allowed' % (mode,)
    return None
