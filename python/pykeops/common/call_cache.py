"""Caches that keep the Python work of a repeated small reduction constant: bounded LRU maps and their counters."""

from collections import Counter, OrderedDict

# Hits and builds of each cache, by name ("<cache>_hits" / "<cache>_builds"): what tests and benchmarks look at.
STATS = Counter()
_PROCESS_CACHES = []  # the module-level caches, emptied by clear()


class LruCache:
    """A bounded map from structural keys to objects built once (Genreds, call layouts); the least recently used
    entry goes first. `name` labels its counters in STATS; a process-wide cache (process=True) is emptied by clear()."""

    def __init__(self, name, size, process=False):
        self.name, self.size, self.entries = name, size, OrderedDict()
        self._hits, self._builds = name + "_hits", name + "_builds"
        if process:
            _PROCESS_CACHES.append(self)

    def find(self, key):
        """The entry of key (now the most recently used), or None."""
        value = self.entries.get(key)
        if value is not None:
            try:
                self.entries.move_to_end(key)
            except KeyError:  # evicted by another thread meanwhile: still a valid entry
                pass
            STATS[self._hits] += 1
        return value

    def add(self, key, value):
        STATS[self._builds] += 1
        self.entries[key] = value
        while len(self.entries) > self.size:
            try:
                self.entries.popitem(last=False)
            except KeyError:  # emptied by another thread
                break
        return value

    def get(self, key, build):
        """The entry of key, made by build() on a miss (an exception from build caches nothing)."""
        value = self.find(key)
        return value if value is not None else self.add(key, build())

    def clear(self):
        self.entries.clear()


def clear():
    """Forget the process-wide caches (pykeops.clean_pykeops), so that their kernels can be released."""
    for cache in _PROCESS_CACHES:
        cache.clear()


def stats():
    """A copy of the counters: {"<cache>_hits": n, "<cache>_builds": n}."""
    return dict(STATS)
