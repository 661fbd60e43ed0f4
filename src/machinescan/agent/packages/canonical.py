"""Canonical package paths: symlinked parent directories resolved inside the scanned root (merged /usr)."""

import os

# Like the kernel's limit: beyond this many symlinks a path is a loop and is left unresolved.
_MAX_SYMLINKS = 40


def canonical_path(root, path_bytes):
    """path_bytes as it really lies under root: parent directory symlinks followed, never escaping root."""
    return PathCanonicaliser(root).canonical(path_bytes)


class PathCanonicaliser:
    """canonical_path for many paths of one root, remembering every directory it resolved."""

    def __init__(self, root):
        self.root = os.fsencode(root).rstrip(b"/")
        self._directories = {b"/": b"/"}

    def canonical(self, path):
        """The absolute canonical form of path; the last component itself is never followed."""
        components = [part for part in path.split(b"/") if part and part != b"."]
        return self._walk(b"/", components, follow_last=False, depth=0)

    def _walk(self, start, components, follow_last, depth):
        current = start
        last = len(components) - 1
        for index, component in enumerate(components):
            if component == b"..":
                current = _parent_of(current)
            elif index == last and not follow_last:
                current = _joined(current, component)
            else:
                current = self._directory(_joined(current, component), depth)
        return current

    def _directory(self, path, depth):
        """The canonical form of a directory path whose parent is already canonical."""
        known = self._directories.get(path)
        if known is not None:
            return known
        try:
            target = os.readlink(self.root + path)
        except OSError:  # not a symlink, or absent: it stays as it is
            resolved = path
        else:
            resolved = self._followed(path, target, depth)
        self._directories[path] = resolved
        return resolved

    def _followed(self, link, target, depth):
        if depth >= _MAX_SYMLINKS:
            return link
        start = b"/" if target.startswith(b"/") else _parent_of(link)
        components = [part for part in target.split(b"/") if part and part != b"."]
        return self._walk(start, components, follow_last=True, depth=depth + 1)


def _joined(directory, name):
    return directory + name if directory == b"/" else directory + b"/" + name


def _parent_of(path):
    # ".." at the root stays at the root: a symlink cannot lead out of the scanned tree.
    parent = path.rpartition(b"/")[0]
    return parent or b"/"
