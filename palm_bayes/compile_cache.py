"""nutpie's compiled model, kept on disk so that a new process does not compile it again.

``nutpie.compile_pymc_model`` compiles a PyMC model in two steps: PyTensor turns the log-density and its gradient
into numba functions (PyTensor keeps those in its own on-disk cache), and nutpie wraps them in two C callbacks
that read the model's data from a pointer table (``user_data``). Numba cannot cache nutpie's callbacks (they are
closures over the data's layout), and compiling them cost 8-9 s per model in every process (docs/benchmarks.md,
2026-12-02). :func:`compile_model` writes the same two callbacks as generated source whose only free names are
module globals, and lets numba cache them in :func:`cache_dir` under a key that names everything the machine code
depends on (the PyTensor function's own cache key, the data layout, and the numba, nutpie and PyTensor versions).
The PyTensor functions themselves (graphs rewritten and linked, 2-3 s per model and process) are kept beside them
as a pickle named by a fingerprint of the model's graph (:func:`graph_key`).

The callbacks do what nutpie's do (the same inner functions, the same data, the same return codes), so a cached
model samples the very same numbers as a fresh one; ``tests/test_engine.py`` checks that. A cache entry that
does not match its manifest of SHA-256 sums (a half-written or corrupt file) is deleted and rebuilt; a cache
folder that cannot be written is left alone and the callbacks are compiled in memory, as before. Any other failure
(another nutpie version whose internals differ) falls back to ``nutpie.compile_pymc_model`` itself.

Where: ``$PALM_BAYES_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/palm-bayes`` (``~/.cache/palm-bayes``), in a
``numba`` folder. Never inside an output folder; deleting it only costs one compile.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import pickle
import re
import tempfile
import warnings
from importlib.metadata import version
from pathlib import Path
from weakref import WeakKeyDictionary

import numpy as np

from . import _compat

log = logging.getLogger("palm_bayes")

#: bumped when the generated source changes in a way its text does not show
FORMAT = 2
#: generated callback → its cache key (read by the numba cache locator below)
_KEYS: WeakKeyDictionary = WeakKeyDictionary()
_LOCATOR_INSTALLED = False


def cache_dir() -> Path:
    """The folder of palm-bayes's compiled-model cache (``$PALM_BAYES_CACHE_DIR``, else the user's cache folder)."""
    if os.environ.get("PALM_BAYES_CACHE_DIR"):
        return Path(os.environ["PALM_BAYES_CACHE_DIR"]) / "numba"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "palm-bayes" / "numba"


def writable(path: Path) -> bool:
    """Whether files can be created in ``path`` (made if missing)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
        return True
    except OSError:
        return False


def _install_locator() -> None:
    """Teach numba to cache the generated callbacks in :func:`cache_dir`, named by their key."""
    global _LOCATOR_INSTALLED
    if _LOCATOR_INSTALLED:
        return
    from numba.core.caching import CacheImpl, _CacheLocator

    class PalmCacheLocator(_CacheLocator):
        def __init__(self, key: str):
            self._key = key
            self._path = str(cache_dir())

        def ensure_cache_path(self):
            os.makedirs(self._path, exist_ok=True)

        def get_cache_path(self):
            return self._path

        def get_source_stamp(self):
            return FORMAT

        def get_disambiguator(self):
            return self._key

        @classmethod
        def from_function(cls, py_func, py_file):
            key = _KEYS.get(py_func)
            return None if key is None else cls(key)

    CacheImpl._locator_classes.insert(0, PalmCacheLocator)
    _LOCATOR_INSTALLED = True


# ---------------------------------------------------------------------------------------------------------------
# the generated callbacks


def _layout(user_data: np.ndarray, names: list[str]) -> dict[str, tuple[int, int, list[int]]]:
    """Word offsets (8-byte units) in nutpie's ``user_data`` record of each shared variable's data pointer, size
    and shape entries."""
    shared = user_data.dtype.fields["shared"]
    base = shared[1]
    fields = shared[0].fields
    out = {}
    for name in names:
        data = base + fields["data"][1] + fields["data"][0].fields[name][1]
        size = base + fields["size"][1] + fields["size"][0].fields[name][1]
        shape_dtype, shape_off = fields["shape"][0].fields[name][:2]
        ndim = shape_dtype.shape[0] if shape_dtype.shape else 0
        shape0 = base + fields["shape"][1] + shape_off
        out[name] = (data // 8, size // 8, [shape0 // 8 + i for i in range(ndim)])
    return out


def _unpack_lines(n_dim: int, n_words: int, names: list[str], layout: dict, dtypes: dict[str, np.dtype]) -> list[str]:
    """Source lines that read the position ``x`` and rebuild each shared array ``s0, s1, ...`` from the pointer
    table ``ud`` (outside any ``try:`` block: inside one, numba's SSA pass took 17 s per callback)."""
    lines = [f"    ud = numba.carray(user_data_, ({n_words},), _DT_uint64)",
             f"    x = numba.carray(x_, ({n_dim},))"]
    for i, name in enumerate(names):
        data, size, shape = layout[name]
        dtype = f"_DT_{np.dtype(dtypes[name]).name}"
        flat = f"numba.carray(_void_ptr(ud[{data}]), (ud[{size}],), {dtype})"
        dims = "".join(f"ud[{k}], " for k in shape)
        lines.append(f"    s{i} = _readonly({flat}.reshape(({dims})))")
    return lines


def logp_source(n_dim: int, n_words: int, names: list[str], layout: dict, dtypes: dict) -> str:
    """The log-density callback: nutpie's ``logp_numba`` (same signature and return codes)."""
    args = "".join(f", s{i}" for i in range(len(names)))
    return "\n".join([
        "def palm_logp(dim, x_, out_, logp_, user_data_):",
        f"    if dim != {n_dim}:",
        "        return -1",
        *_unpack_lines(n_dim, n_words, names, layout, dtypes),
        f"    out = numba.carray(out_, ({n_dim},))",
        "    logp = numba.carray(logp_, ())",
        "    try:",
        f"        logp_val, grad = inner(x{args})",
        "        logp[()] = logp_val",
        "        out[...] = grad",
        "        if not np.all(np.isfinite(out)):",
        "            return 3",
        "        if not np.isfinite(logp_val):",
        "            return 4",
        "    except Exception:",
        "        return 1",
        "    return 0",
        "",
    ])


def expand_source(n_dim: int, n_expanded: int, n_words: int, names: list[str], layout: dict,
                  dtypes: dict) -> str:
    """The callback that turns a position into the stored draws: nutpie's ``expand_numba``."""
    args = "".join(f", s{i}" for i in range(len(names)))
    return "\n".join([
        "def palm_expand(dim, expanded, x_, out_, user_data_):",
        f"    if dim != {n_dim} or expanded != {n_expanded}:",
        "        return -1",
        *_unpack_lines(n_dim, n_words, names, layout, dtypes),
        f"    out = numba.carray(out_, ({n_expanded},))",
        "    try:",
        f"        (values,) = inner(x{args})",
        "        out[...] = values",
        "    except Exception:",
        "        return -2",
        "    return 0",
        "",
    ])


@functools.cache
def _intrinsics() -> dict:
    """``_void_ptr`` (an integer address as a void pointer) and ``_readonly`` (the same array, typed read-only:
    nutpie hands its inner functions read-only arrays, and PyTensor's cache holds them compiled for those)."""
    from numba.core import cgutils, types
    from numba.core.imputils import impl_ret_borrowed
    from numba.extending import intrinsic

    @intrinsic
    def _void_ptr(typingctx, address):
        def codegen(context, builder, sig, args):
            return builder.inttoptr(args[0], cgutils.voidptr_t)

        return types.voidptr(address), codegen

    @intrinsic
    def _readonly(typingctx, array):
        def codegen(context, builder, sig, args):
            return impl_ret_borrowed(context, builder, sig.return_type, args[0])

        return array.copy(readonly=True)(array), codegen

    return {"_void_ptr": _void_ptr, "_readonly": _readonly}


def inner_key(fn) -> str | None:
    """PyTensor's on-disk cache key of a numba-compiled PyTensor function (None: PyTensor does not cache it)."""
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

    jit_fn = fn.vm.jit_fn
    return CACHED_SRC_FUNCTIONS.get(getattr(jit_fn, "py_func", None))


def _files(key: str) -> list[Path]:
    folder = cache_dir()
    return sorted(p for p in folder.glob(f"*{key}*") if not p.name.endswith(".json") and ".tmp." not in p.name)


def _manifest(key: str) -> Path:
    return cache_dir() / f"{key}.json"


def _sums(paths: list[Path]) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def check_entry(key: str) -> str:
    """State of a cache entry: ``"absent"``, ``"valid"`` (its files match its manifest) or ``"corrupt"``."""
    files, manifest = _files(key), _manifest(key)
    if not files and not manifest.exists():
        return "absent"
    try:
        expected = json.loads(manifest.read_text())
        return "valid" if files and expected == _sums(files) else "corrupt"
    except (OSError, ValueError):
        return "corrupt"


def _discard(key: str) -> None:
    for path in [*_files(key), _manifest(key)]:
        path.unlink(missing_ok=True)


def _write_manifest(key: str) -> None:
    manifest = _manifest(key)
    tmp = manifest.with_name(f"{manifest.name}.tmp.{os.getpid()}")
    tmp.write_text(json.dumps(_sums(_files(key))))
    os.replace(tmp, manifest)


def _callback(src: str, name: str, signature, inner, key: str | None, env: dict):
    """Compile one generated callback as a numba cfunc (cached under ``key`` when given)."""
    import numba

    # numba rebuilds a cached function's environment by importing its module: name this one
    namespace = dict(env, inner=inner, __name__=__name__)
    exec(compile(src, "palm_bayes_generated", "exec"), namespace)
    py_func = namespace[name]
    if key is None:
        return numba.cfunc(signature)(py_func)
    _KEYS[py_func] = key
    return numba.cfunc(signature, cache=True)(py_func)


def seen_before(identity: str) -> bool:
    """Whether the model ``identity`` names was compiled into this cache by these library versions before (so a
    compile now is only a load, and needs no status line)."""
    return _marker(identity).exists()


def _marker(identity: str) -> Path:
    stamp = [FORMAT, identity, *(version(p) for p in ("numba", "nutpie", "pytensor", "pymc"))]
    return cache_dir() / f"seen-{hashlib.sha256(json.dumps(stamp).encode()).hexdigest()[:24]}"


def compile_model(model, label: str = "model", identity: str | None = None, *, use_cache: bool = True):
    """``nutpie.compile_pymc_model(model)`` (numba backend), with its two callbacks cached on disk.

    ``label`` names the model (its geometry, say) for the first-compile status line; ``identity`` (default
    ``label``) tells models apart, to know whether this one was compiled on this machine before.

    Returns ``(compiled, how)``: nutpie's ``CompiledPyMCModel`` and how its callbacks were obtained: ``"loaded"``
    (from the cache), ``"compiled"`` (and saved), ``"uncached"`` (compiled in memory: no writable cache folder,
    or PyTensor does not cache the inner functions) or ``"nutpie"`` (nutpie's own compile, when its internals are
    not what this module expects).
    """
    import nutpie

    identity = identity or label
    if not (use_cache and seen_before(identity)):
        where = f"; later runs load it from {cache_dir()}" if use_cache else ""
        log.info("compiling the model (%s) once for this machine, about 10-30 s%s ...", label, where)
    try:
        compiled, how = _compile(model, use_cache)
    except (ImportError, AttributeError, KeyError, TypeError, ValueError) as err:  # another nutpie's internals
        log.debug("cached compile unavailable (%s); using nutpie.compile_pymc_model", err)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return nutpie.compile_pymc_model(model), "nutpie"
    except Exception as err:
        if not use_cache:
            raise
        log.warning("palm-bayes: the compiled-model cache in %s could not be read (%s); compiling in memory",
                    cache_dir(), err)
        return compile_model(model, label, identity, use_cache=False)
    if how in ("compiled", "loaded"):
        try:
            _marker(identity).touch()
        except OSError:
            pass
    return compiled, how


def graph_key(model) -> str:
    """A fingerprint of ``model``'s graph: its log-density and stored quantities as PyTensor prints them (object
    addresses left out), its free variables, and the versions that turn the graph into code."""
    import pytensor

    text = pytensor.printing.debugprint([model.logp(), *model.deterministics], file="str", print_type=True)
    stamp = [FORMAT, re.sub(r" at 0x[0-9a-fA-F]+", "", text), [v.name for v in model.free_RVs], model.check_bounds,
             pytensor.config.floatX, np.__version__, *(version(p) for p in ("numba", "nutpie", "pytensor", "pymc"))]
    return "graph-" + hashlib.sha256(json.dumps(stamp).encode()).hexdigest()[:32]


def _functions(model, initial_point_fn, use_cache: bool) -> tuple:
    """nutpie's ``_make_functions(model, ...)``: the log-density with its gradient and the draws' function,
    compiled by PyTensor (numba mode), and the layout of the position vector.

    PyTensor rewrites both graphs before linking them (2-3 s per model in every process, even when the numba code
    is in its cache); the linked functions are kept on disk as a pickle under :func:`graph_key`, so a later
    process reads them in well under a second. The same functions, so the same numbers (tests/test_engine.py).
    An entry that does not match its checksums, or does not load, is rebuilt.
    """
    from nutpie import compile_pymc as cp

    def make():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cp._make_functions(model, mode="NUMBA", compute_grad=True, join_expanded=True,
                                      pymc_initial_point_fn=initial_point_fn)

    if not (use_cache and writable(cache_dir())):
        return make()
    key = graph_key(model)
    path = cache_dir() / f"{key}.pkl"
    state = check_entry(key)
    if state == "valid":
        try:
            n_dim, n_expanded, logp_pt, expand_pt, shape_info, rest, names, shapes = pickle.loads(path.read_bytes())
            initial = cp._rv_dict_to_flat_array_wrapper(initial_point_fn, names=names, shapes=shapes)
            return (n_dim, n_expanded, logp_pt, expand_pt, initial, shape_info, *rest)
        except Exception as err:  # written by another library version than the stamp knows of
            log.debug("compiled functions %s did not load (%s); rebuilding them", key, err)
            _discard(key)
    elif state == "corrupt":
        log.warning("palm-bayes: the compiled-model cache entry %s in %s did not match its checksums; rebuilding it",
                    key, cache_dir())
        _discard(key)
    made = make()
    n_dim, n_expanded, logp_pt, expand_pt, _, shape_info, *rest = made
    names = [model.rvs_to_values[v].name for v in model.free_RVs]
    shapes = cp._compute_shapes(model)
    blob = pickle.dumps((n_dim, n_expanded, logp_pt, expand_pt, shape_info, rest, names, [shapes[n] for n in names]))
    tmp = path.with_name(f"{path.name}.tmp.{os.getpid()}")
    try:
        tmp.write_bytes(blob)
        os.replace(tmp, path)
        _write_manifest(key)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        log.debug("compiled functions %s not kept (%s)", key, err)
    return made


def _compile(model, use_cache: bool):
    import numba
    import pytensor
    from nutpie import compile_pymc as cp
    from pymc.initial_point import make_initial_point_fn

    initial_point_fn = cp._wrap_with_lock(make_initial_point_fn(
        model=model, default_strategy="support_point", jitter_rvs=set(model.free_RVs), return_transformed=True))
    made = _functions(model, initial_point_fn, use_cache)
    # nutpie 0.16.11 adds the names of reparameterised variables
    n_dim, n_expanded, logp_pt, expand_pt, initial_fn, shape_info, *reparameterized = made
    shared_data, keys, user_data, extra_fields = _compat.nutpie_shared_table(logp_pt, expand_pt)
    if reparameterized:
        extra_fields["reparameterized_names"] = reparameterized[0]
    if user_data.dtype.itemsize % 8:
        raise ValueError("unexpected user_data layout")
    n_words = user_data.dtype.itemsize // 8
    logp_names = [keys[v] for v in logp_pt.get_shared()]
    expand_names = [keys[v] for v in expand_pt.get_shared()]
    layout = _layout(user_data, list(keys.values()))
    dtypes = {name: value.dtype for name, value in shared_data.items()}
    sources = {"palm_logp": logp_source(n_dim, n_words, logp_names, layout, dtypes),
               "palm_expand": expand_source(n_dim, n_expanded, n_words, expand_names, layout, dtypes)}
    inners = {"palm_logp": logp_pt.vm.jit_fn, "palm_expand": expand_pt.vm.jit_fn}
    inner_keys = {"palm_logp": inner_key(logp_pt), "palm_expand": inner_key(expand_pt)}

    folder = cache_dir()
    cacheable = use_cache and all(inner_keys.values()) and writable(folder)
    cache_keys = {}
    if cacheable:
        _install_locator()
        stamp = [FORMAT, numba.__version__, version("nutpie"), pytensor.__version__, np.__version__]
        for name, src in sources.items():
            cache_keys[name] = hashlib.sha256(json.dumps([stamp, src, inner_keys[name]]).encode()).hexdigest()[:32]
            if check_entry(cache_keys[name]) == "corrupt":
                log.warning("palm-bayes: the compiled-model cache entry %s in %s did not match its checksums; "
                            "rebuilding it", cache_keys[name], folder)
                _discard(cache_keys[name])

    signatures = {
        "palm_logp": numba.types.int64(numba.types.uint64, numba.types.CPointer(numba.types.double),
                                       numba.types.CPointer(numba.types.double),
                                       numba.types.CPointer(numba.types.double), numba.types.voidptr),
        "palm_expand": numba.types.int64(numba.types.uint64, numba.types.uint64,
                                         numba.types.CPointer(numba.types.double),
                                         numba.types.CPointer(numba.types.double), numba.types.voidptr),
    }
    env = {"numba": numba, "np": np, **_intrinsics(), "_DT_uint64": np.dtype("uint64"),
           **{f"_DT_{np.dtype(d).name}": np.dtype(d) for d in dtypes.values()}}
    callbacks = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, src in sources.items():
            callbacks[name] = _callback(src, name, signatures[name], inners[name], cache_keys.get(name), env)
    how = "uncached"
    if cacheable:
        # a cache hit loaded the files check_entry found valid; a miss compiled and saved new ones
        for name, key in cache_keys.items():
            if callbacks[name]._cache_hits == 0:
                _write_manifest(key)
        how = "loaded" if all(callbacks[name]._cache_hits for name in cache_keys) else "compiled"

    dims, coords = cp._prepare_dims_and_coords(model, shape_info, *reparameterized)
    compiled = cp.CompiledPyMCModel(
        _n_dim=n_dim, dims=dims, _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info, strict=True)},
        compiled_logp_func=callbacks["palm_logp"], compiled_expand_func=callbacks["palm_expand"],
        initial_point_func=initial_fn, shared_data=shared_data, user_data=user_data, n_expanded=n_expanded,
        shape_info=shape_info, logp_func=logp_pt, expand_func=expand_pt, **extra_fields)
    return compiled, how
