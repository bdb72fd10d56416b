"""edgesync over ctypes: a small Python wrapper of the C API (include/edgesync.h).

Standard library only. The library is found through the path given to load(),
else the EDGESYNC_LIB environment variable, else "libedgesync.so" on the
loader's search path.

    import edgesync
    edgesync.load("build/lib/capi/libedgesync.so")
    with edgesync.Replica("data") as r:
        r.put("pump-7", "/rpm", 1450)
        print(r.get("pump-7"))                  # {'rpm': 1450}

Values go in as Python objects (encoded with json.dumps) and come out decoded
(json.loads). Every failure raises edgesync.Error with the C code, its name
and the library's detail message. Handles are closed by close() or a `with`
block; closing a replica while its sessions, transactions or nodes are alive
is safe (the C API keeps the replica alive for them), and a handle used after
it was closed raises Error(MISUSE) rather than crashing.

Threads: every object may be used from several threads (the C API serialises
where it must). Subscription callbacks run on the thread that applied the
change (a node's own thread for changes from its peers); they may read
replicas but not write them (Error WRONG_STATE).
"""

import ctypes
import json
import os

__all__ = ["Error", "load", "set_log", "Replica", "Txn", "Session", "Node", "sync"]

OK = 0
MISUSE = -1
INVALID_ARGUMENT = -2
NOT_FOUND = -3
UNAUTHENTICATED = -4
CORRUPT = -5
LIMIT = -6
UNAVAILABLE = -7
WRONG_STATE = -8
NEWER_FORMAT = -9
NOMEM = -10
INTERNAL = -11
PERMISSION_DENIED = -12

CODE_NAMES = {
    OK: "OK", MISUSE: "MISUSE", INVALID_ARGUMENT: "INVALID_ARGUMENT", NOT_FOUND: "NOT_FOUND",
    UNAUTHENTICATED: "UNAUTHENTICATED", CORRUPT: "CORRUPT", LIMIT: "LIMIT",
    UNAVAILABLE: "UNAVAILABLE", WRONG_STATE: "WRONG_STATE", NEWER_FORMAT: "NEWER_FORMAT",
    NOMEM: "NOMEM", INTERNAL: "INTERNAL", PERMISSION_DENIED: "PERMISSION_DENIED",
}

VERSION_NUMBER = 100  # EDGESYNC_VERSION_NUMBER this wrapper was written for

# Limits of include/edgesync.h (EDGESYNC_*_MAX).
DOC_ID_BYTES_MAX = 255
MAP_KEY_BYTES_MAX = 255
PATH_DEPTH_MAX = 64
MESSAGE_BYTES_MIN = 512
MESSAGE_BYTES_MAX = 16 << 20
MESSAGE_BYTES_DEFAULT = 64 << 10

_R = ctypes.c_void_p  # every handle is an opaque pointer
_LOG_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p)
_CHANGE_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                              ctypes.c_int)

_lib = None
_log_cb = None  # the installed log callback, kept alive


class Error(Exception):
    """A failed call: .code (negative int), .name ("NOT_FOUND"), .detail."""

    def __init__(self, code, detail, report=None):
        self.code = code
        self.name = CODE_NAMES.get(code, str(code))
        self.detail = detail
        self.report = report
        super().__init__("%s: %s" % (self.name, detail))


def _signatures(lib):
    u8p = ctypes.POINTER(ctypes.c_uint8)
    table = {
        "edgesync_version_number": (ctypes.c_int, []),
        "edgesync_errstr": (ctypes.c_char_p, [ctypes.c_int]),
        "edgesync_errmsg": (ctypes.c_char_p, []),
        "edgesync_free": (None, [ctypes.c_void_p]),
        "edgesync_set_log": (None, [_LOG_CB, ctypes.c_void_p, ctypes.c_int]),
        "edgesync_replica_open": (ctypes.c_int, [ctypes.c_char_p, ctypes.POINTER(_R)]),
        "edgesync_replica_close": (None, [_R]),
        "edgesync_replica_public_key": (ctypes.c_int, [_R, ctypes.c_char_p]),
        "edgesync_replica_trust": (ctypes.c_int, [_R, ctypes.c_char_p]),
        "edgesync_replica_docs": (ctypes.c_int, [_R, ctypes.POINTER(ctypes.c_void_p)]),
        "edgesync_doc_put": (ctypes.c_int, [_R, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]),
        "edgesync_doc_delete": (ctypes.c_int, [_R, ctypes.c_char_p, ctypes.c_char_p]),
        "edgesync_doc_counter_add": (ctypes.c_int,
                                     [_R, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int64]),
        "edgesync_doc_set_add": (ctypes.c_int,
                                 [_R, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]),
        "edgesync_doc_set_remove": (ctypes.c_int,
                                    [_R, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]),
        "edgesync_doc_get": (ctypes.c_int, [_R, ctypes.c_char_p, ctypes.c_char_p,
                                            ctypes.POINTER(ctypes.c_void_p)]),
        "edgesync_doc_conflicts": (ctypes.c_int, [_R, ctypes.c_char_p, ctypes.c_char_p,
                                                  ctypes.POINTER(ctypes.c_void_p)]),
        "edgesync_doc_digest": (ctypes.c_int, [_R, ctypes.c_char_p, ctypes.c_char_p]),
        "edgesync_doc_compact": (ctypes.c_int, [_R, ctypes.c_char_p]),
        "edgesync_txn_begin": (ctypes.c_int, [_R, ctypes.c_char_p, ctypes.POINTER(_R)]),
        "edgesync_txn_put": (ctypes.c_int, [_R, ctypes.c_char_p, ctypes.c_char_p]),
        "edgesync_txn_delete": (ctypes.c_int, [_R, ctypes.c_char_p]),
        "edgesync_txn_counter_add": (ctypes.c_int, [_R, ctypes.c_char_p, ctypes.c_int64]),
        "edgesync_txn_set_add": (ctypes.c_int, [_R, ctypes.c_char_p, ctypes.c_char_p]),
        "edgesync_txn_set_remove": (ctypes.c_int, [_R, ctypes.c_char_p, ctypes.c_char_p]),
        "edgesync_txn_commit": (ctypes.c_int, [_R]),
        "edgesync_txn_abort": (None, [_R]),
        "edgesync_subscribe": (ctypes.c_int, [_R, ctypes.c_char_p, _CHANGE_CB, ctypes.c_void_p,
                                              ctypes.POINTER(ctypes.c_uint64)]),
        "edgesync_unsubscribe": (ctypes.c_int, [_R, ctypes.c_uint64]),
        "edgesync_session_new": (ctypes.c_int, [_R, ctypes.c_char_p, ctypes.c_size_t,
                                                ctypes.POINTER(_R)]),
        "edgesync_session_next": (ctypes.c_int, [_R, ctypes.POINTER(u8p),
                                                 ctypes.POINTER(ctypes.c_size_t)]),
        "edgesync_session_receive": (ctypes.c_int, [_R, ctypes.c_char_p, ctypes.c_size_t]),
        "edgesync_session_is_synced": (ctypes.c_int, [_R]),
        "edgesync_session_free": (None, [_R]),
        "edgesync_bundle_export": (ctypes.c_int, [_R, ctypes.c_char_p, ctypes.c_char_p]),
        "edgesync_bundle_import": (ctypes.c_int, [_R, ctypes.c_char_p,
                                                  ctypes.POINTER(ctypes.c_void_p)]),
        "edgesync_node_start": (ctypes.c_int, [_R, ctypes.c_char_p, ctypes.POINTER(_R)]),
        "edgesync_node_add_peer": (ctypes.c_int, [_R, ctypes.c_char_p]),
        "edgesync_node_stats": (ctypes.c_int, [_R, ctypes.POINTER(ctypes.c_void_p)]),
        "edgesync_node_stop": (None, [_R]),
    }
    for name, (restype, argtypes) in table.items():
        f = getattr(lib, name)
        f.restype = restype
        f.argtypes = argtypes


def load(path=None):
    """Loads libedgesync (path, else $EDGESYNC_LIB, else the loader's search)."""
    global _lib
    if _lib is not None and path is None:
        return _lib
    lib = ctypes.CDLL(path or os.environ.get("EDGESYNC_LIB") or "libedgesync.so")
    _signatures(lib)
    if lib.edgesync_version_number() // 100 != VERSION_NUMBER // 100:
        raise ImportError("libedgesync %d, wrapper written for %d"
                          % (lib.edgesync_version_number(), VERSION_NUMBER))
    _lib = lib
    return lib


def _L():
    return _lib if _lib is not None else load()


def _b(s):
    return None if s is None else s.encode("utf-8")


def _check(rc, report=None):
    if rc != OK:
        raise Error(rc, _L().edgesync_errmsg().decode("utf-8", "replace"), report)
    return rc


def _take_string(p):
    """Decodes and frees a char* the library handed out."""
    if not p.value:
        return None
    try:
        return ctypes.string_at(p.value).decode("utf-8")
    finally:
        _L().edgesync_free(p)


def set_log(callback, min_level=1):
    """Installs callback(level, message) as the process-wide log sink (None: off).
    Levels: 0 debug, 1 info, 2 warn, 3 error."""
    global _log_cb
    if callback is None:
        _L().edgesync_set_log(_LOG_CB(), None, 0)
        _log_cb = None
        return
    cb = _LOG_CB(lambda user, level, msg: callback(level, msg.decode("utf-8", "replace")))
    _L().edgesync_set_log(cb, None, min_level)
    _log_cb = cb  # after the swap: the old one is no longer running


class Replica:
    """One device's durable copy of its documents (a directory). Thread-safe."""

    def __init__(self, directory):
        h = _R()
        _check(_L().edgesync_replica_open(_b(os.fspath(directory)), ctypes.byref(h)))
        self._h = h
        self._callbacks = {}

    def close(self):
        if self._h:
            _L().edgesync_replica_close(self._h)
            self._h = _R()
            self._callbacks.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def public_key(self):
        buf = ctypes.create_string_buffer(65)
        _check(_L().edgesync_replica_public_key(self._h, buf))
        return buf.value.decode()

    def trust(self, key_hex):
        _check(_L().edgesync_replica_trust(self._h, _b(key_hex)))

    def docs(self):
        out = ctypes.c_void_p()
        _check(_L().edgesync_replica_docs(self._h, ctypes.byref(out)))
        return json.loads(_take_string(out))

    # Documents: path "" (or None) is the whole document, else "/a/b".
    def put(self, doc, path, value):
        _check(_L().edgesync_doc_put(self._h, _b(doc), _b(path), _b(json.dumps(value))))

    def delete(self, doc, path=""):
        _check(_L().edgesync_doc_delete(self._h, _b(doc), _b(path)))

    def counter_add(self, doc, path, n):
        _check(_L().edgesync_doc_counter_add(self._h, _b(doc), _b(path), n))

    def set_add(self, doc, path, value):
        _check(_L().edgesync_doc_set_add(self._h, _b(doc), _b(path), _b(json.dumps(value))))

    def set_remove(self, doc, path, value):
        _check(_L().edgesync_doc_set_remove(self._h, _b(doc), _b(path), _b(json.dumps(value))))

    def get_json(self, doc, path=""):
        """The value at path as the library prints it (compact, sorted keys)."""
        out = ctypes.c_void_p()
        _check(_L().edgesync_doc_get(self._h, _b(doc), _b(path), ctypes.byref(out)))
        return _take_string(out)

    def get(self, doc, path=""):
        return json.loads(self.get_json(doc, path))

    def conflicts(self, doc, path=""):
        out = ctypes.c_void_p()
        _check(_L().edgesync_doc_conflicts(self._h, _b(doc), _b(path), ctypes.byref(out)))
        return json.loads(_take_string(out))

    def digest(self, doc):
        buf = ctypes.create_string_buffer(65)
        _check(_L().edgesync_doc_digest(self._h, _b(doc), buf))
        return buf.value.decode()

    def compact(self, doc):
        _check(_L().edgesync_doc_compact(self._h, _b(doc)))

    def txn(self, doc):
        """A transaction on doc; as a context manager it commits on success."""
        return Txn(self, doc)

    def subscribe(self, callback, doc_prefix=""):
        """callback(doc, change_dict, remote) after each change; returns an id.
        It runs on the thread that applied the change."""
        cb = _CHANGE_CB(lambda user, doc, change, remote: callback(
            doc.decode("utf-8"), json.loads(change.decode("utf-8")), bool(remote)))
        out = ctypes.c_uint64()
        _check(_L().edgesync_subscribe(self._h, _b(doc_prefix), cb, None, ctypes.byref(out)))
        self._callbacks[out.value] = cb
        return out.value

    def unsubscribe(self, sub_id):
        _check(_L().edgesync_unsubscribe(self._h, sub_id))
        self._callbacks.pop(sub_id, None)

    def session(self, doc_prefix="", max_message_bytes=0):
        return Session(self, doc_prefix, max_message_bytes)

    def bundle_export(self, path, doc_prefix=""):
        _check(_L().edgesync_bundle_export(self._h, _b(doc_prefix), _b(os.fspath(path))))

    def bundle_import(self, path):
        """Returns the report dict; raises Error (with .report) on any rejection."""
        out = ctypes.c_void_p()
        rc = _L().edgesync_bundle_import(self._h, _b(os.fspath(path)), ctypes.byref(out))
        text = _take_string(out)
        report = json.loads(text) if text else None
        _check(rc, report)
        return report

    def node(self, **config):
        """Starts a node; config keys as in docs/c-api.md (listen, peers, ...)."""
        return Node(self, config)


class Txn:
    """Mutations on one document, committed as one batch. One thread at a time."""

    def __init__(self, replica, doc):
        h = _R()
        _check(_L().edgesync_txn_begin(replica._h, _b(doc), ctypes.byref(h)))
        self._h = h

    def put(self, path, value):
        _check(_L().edgesync_txn_put(self._h, _b(path), _b(json.dumps(value))))

    def delete(self, path=""):
        _check(_L().edgesync_txn_delete(self._h, _b(path)))

    def counter_add(self, path, n):
        _check(_L().edgesync_txn_counter_add(self._h, _b(path), n))

    def set_add(self, path, value):
        _check(_L().edgesync_txn_set_add(self._h, _b(path), _b(json.dumps(value))))

    def set_remove(self, path, value):
        _check(_L().edgesync_txn_set_remove(self._h, _b(path), _b(json.dumps(value))))

    def commit(self):
        h, self._h = self._h, _R()
        _check(_L().edgesync_txn_commit(h))  # frees the handle either way

    def abort(self):
        h, self._h = self._h, _R()
        _L().edgesync_txn_abort(h)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if not self._h:
            return
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class Session:
    """The sync protocol with one peer: bytes out (next), bytes in (receive)."""

    def __init__(self, replica, doc_prefix="", max_message_bytes=0):
        h = _R()
        _check(_L().edgesync_session_new(replica._h, _b(doc_prefix), max_message_bytes,
                                         ctypes.byref(h)))
        self._h = h

    def next(self):
        """The next message for the peer (bytes), or None when there is none now."""
        msg = ctypes.POINTER(ctypes.c_uint8)()
        n = ctypes.c_size_t()
        _check(_L().edgesync_session_next(self._h, ctypes.byref(msg), ctypes.byref(n)))
        if not msg:
            return None
        try:
            return ctypes.string_at(msg, n.value)
        finally:
            _L().edgesync_free(msg)

    def receive(self, message):
        """Handles a message; False when a round ended with differing state
        hashes (UNAVAILABLE: keep going), raises Error on anything else."""
        rc = _L().edgesync_session_receive(self._h, message, len(message))
        if rc == UNAVAILABLE:
            return False
        _check(rc)
        return True

    @property
    def synced(self):
        rc = _L().edgesync_session_is_synced(self._h)
        if rc < 0:
            _check(rc)
        return rc == 1

    def close(self):
        if self._h:
            _L().edgesync_session_free(self._h)
            self._h = _R()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def sync(a, b, doc_prefix="", max_message_bytes=0):
    """Syncs two replicas of this process through a pair of sessions, carrying
    one message each way per step until both are quiet. Returns whether both
    sides verified equal state hashes."""
    with a.session(doc_prefix, max_message_bytes) as sa, \
            b.session(doc_prefix, max_message_bytes) as sb:
        busy = True
        while busy:
            busy = False
            for src, dst in ((sa, sb), (sb, sa)):
                m = src.next()
                if m is not None:
                    dst.receive(m)
                    busy = True
        return sa.synced and sb.synced


class Node:
    """The replica's peer-to-peer transport on its own thread. Thread-safe."""

    def __init__(self, replica, config):
        h = _R()
        _check(_L().edgesync_node_start(replica._h, _b(json.dumps(config)), ctypes.byref(h)))
        self._h = h

    def add_peer(self, addr):
        _check(_L().edgesync_node_add_peer(self._h, _b(addr)))

    def stats(self):
        out = ctypes.c_void_p()
        _check(_L().edgesync_node_stats(self._h, ctypes.byref(out)))
        return json.loads(_take_string(out))

    def stop(self):
        if self._h:
            _L().edgesync_node_stop(self._h)
            self._h = _R()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
