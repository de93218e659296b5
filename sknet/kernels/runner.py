"""Blocks in parallel: one small parallel kernel, shared by every kernel family, calls a
serial block function through the address of its compiled code.

numba links every function a kernel calls into the kernel's own machine code, and
optimises and generates code for it again there; a ``prange`` loop adds three such
layers (the loop body, its gufunc wrapper, the kernel), so a parallel kernel's whole
block code was optimised and generated about five times, and each ``parallel=True``
kernel cost ~1.5-3 s of compile. :func:`run_blocks` calls the block function through the
address of its compiled code instead (numba's native calling convention, as numba's own
calls), with the block's arguments packed in a buffer (``_pack``): the block code is
compiled once, serially, and the parallel kernel ``_run_blocks`` is one loop of calls,
the same for every block function, family (recurrent, conv, dense) and dtype (its
arguments are two integers and the buffer): a process compiles it once. A single block
runs inside ``_pack`` itself, on the calling thread, once the block's address is known
(no parallel region, no second compiled function). Addresses are
run-time values (the on-disk cache stays valid across processes), looked up by the key
of the packed argument types, which ``_pack`` returns: a block function is only ever
called with the argument types it was compiled for.

A block function is written as::

    @internal
    def _my_block(c, packed, args_type):
        a, b, ... = unpack(packed, args_type)
        ...  # the work of block c (serial; blocks must not write the same memory)

and run as ``run_blocks(_my_block, (a, b, ...), n_blocks)``. The arguments must be values
numba can type (arrays, numbers, bools, tuples and named tuples of them); they are stored
without references, so they must stay alive during the call (``run_blocks`` holds them).
Which block runs on which thread is numba's choice; results do not depend on it as long
as each block's work is a function of ``c`` only.

The same address mechanism serves any :func:`internal` function a kernel calls:
``fn = entry(func, argtypes)`` compiles ``func`` once for those numba types and returns
its address with the types' key, and ``call_entry(fn, args)`` inside a kernel calls it
(checking the key at each call). The callee is then compiled once per process instead
of being linked into, and optimised again in, every kernel that calls it (the
convolutions' matrix products, ``kernels.conv``).
"""

import zlib

import numba
import numpy as np
from llvmlite import ir
from numba import prange, typeof, types
from numba.core import cgutils
from numba.core.callconv import excinfo_ptr_t
from numba.core.errors import TypingError
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic

from .._config import _FLAGS, jit_parallel

__all__ = ["call_entry", "entry", "inline", "internal", "jit_views", "run_blocks", "unpack"]

_PACK_BYTES = 4096  # room for a block's packed arguments


def internal(func=None, *, refcounts=True, fastmath=None):
    """A kernel part called only from compiled code, never from Python: compiled with
    the kernels' flags but without numba's Python and C entry wrappers (their code
    took a good share of the compile time of functions with many tuple arguments).

    ``@internal(refcounts=False)`` compiles without numba's reference counting (NRT):
    no ``NRT_incref``/``NRT_decref`` call around every array view the function makes
    (a block's unpacked arrays carry no reference anyway, see ``_pack_into``); such a
    function must not allocate arrays (``np.empty`` ...) nor return one. ``fastmath``
    goes to numba as it is (e.g. ``{"contract"}``).
    """
    if func is None:
        return lambda func: internal(func, refcounts=refcounts, fastmath=fastmath)
    options = {} if refcounts else {"_nrt": False}
    if fastmath is not None:
        options["fastmath"] = fastmath
    return numba.njit(no_cpython_wrapper=True, no_cfunc_wrapper=True, **options, **_FLAGS)(func)


def inline(func):
    """A kernel part inlined into its callers when they compile (numba's
    ``inline='always'``, on numba's IR before typing): never compiled on its own, no
    function of its own to optimise and link (unlike a jitted callee, compiled with its
    wrappers and then optimised again inside every caller). For element-wise passes
    shared by a Python-facing kernel and a block function."""
    return numba.njit(inline="always", **_FLAGS)(func)


def _types_key(argtype):
    """A key of a numba type, the same in every process."""
    return zlib.crc32(str(argtype).encode())


@intrinsic
def _pack_into(typingctx, buf, args):
    """Store the value of the tuple ``args`` at the start of ``buf`` (uint8) and return
    the ``_types_key`` of its type, or -1 (storing nothing) when ``buf`` is too small.
    No references are taken: ``args`` must outlive the buffer's use."""
    if not isinstance(args, types.BaseTuple):
        raise TypingError("_pack_into: args must be a tuple")
    key = _types_key(args)

    def unowned(context, builder, ty, value):
        # the value without references: array meminfos (and parents) null, so that
        # unpacking and dropping it touch no reference count (the arrays stay owned by
        # the caller, which holds ``args``)
        if isinstance(ty, types.Array):
            ary = context.make_array(ty)(context, builder, value)
            ary.meminfo = cgutils.get_null_value(ary.meminfo.type)
            ary.parent = cgutils.get_null_value(ary.parent.type)
            return ary._getvalue()
        if isinstance(ty, types.BaseTuple):
            for i, member in enumerate(ty.types):
                item = unowned(context, builder, member, builder.extract_value(value, i))
                value = builder.insert_value(value, item, i)
        return value

    def codegen(context, builder, sig, llargs):
        ty = context.get_value_type(args)
        arr = context.make_array(buf)(context, builder, llargs[0])
        size = context.get_constant(types.intp, context.get_abi_sizeof(ty))
        result = cgutils.alloca_once_value(builder, context.get_constant(types.int64, -1))
        with builder.if_then(builder.icmp_signed(">=", arr.nitems, size)):
            value = unowned(context, builder, args, llargs[1])
            builder.store(value, builder.bitcast(arr.data, ty.as_pointer()))
            builder.store(context.get_constant(types.int64, key), result)
        return builder.load(result)

    return types.int64(buf, args), codegen


def jit_views(func):
    """``jit`` (a kernel with its Python entry) without numba's reference counting, for a
    kernel that makes no array (views and scalars only) nor returns one: no
    ``NRT_incref``/``NRT_decref`` around every view it makes, less code to compile
    (measured ~0.03 s less per kernel: ``log_loss_softmax``, ``_adam_l2_part``); the
    caller holds the arrays. Nor numba's C entry wrapper (``cfunc``, for first-class
    function calls, which sknet does not make): ~0.025 s less per kernel."""
    return numba.njit(_nrt=False, no_cfunc_wrapper=True, **_FLAGS)(func)


@jit_views
def _pack(buf, args, address, key):
    """``_pack_into(buf, args)``: the block's arguments in a buffer, and their key; with
    ``address`` not 0 and ``key`` the arguments' key, also ``block(0, <buf>)`` for the
    block function at ``address``, on the calling thread (one block needs no parallel
    region: no thread wake-up, no barrier; and no second compiled function and call)."""
    got = _pack_into(buf, args)
    if address != 0 and got == key:
        _call_block(address, np.int64(0), _address(buf))
    return got


@intrinsic
def unpack(typingctx, packed, args_type):
    """The tuple of type ``args_type`` stored at address ``packed`` by ``_pack``."""
    tup = args_type.instance_type

    def codegen(context, builder, sig, llargs):
        ptr = builder.inttoptr(llargs[0], context.get_value_type(tup).as_pointer())
        return impl_ret_borrowed(context, builder, tup, builder.load(ptr))

    return tup(types.int64, args_type), codegen


# a block function's arguments: block index, address of its packed arguments, their type
_BLOCK_ARGS = (types.int64, types.int64, types.TypeRef(types.none))


@intrinsic
def _call_block(typingctx, address, c, packed):
    """Call the compiled block function at ``address`` with ``(c, packed, <type>)``
    (numba's native calling convention; the type argument is a null pointer at run
    time); its errors propagate."""
    if (address, c, packed) != (types.int64,) * 3:
        raise TypingError("_call_block: address, c and packed must be int64")

    def codegen(context, builder, sig, llargs):
        values = [llargs[1], llargs[2], cgutils.voidptr_t(None)]
        return _native_call(context, builder, llargs[0], _BLOCK_ARGS, values)

    return types.none(address, c, packed), codegen


def _native_call(context, builder, address, argtypes, values, restype=types.none):
    """Code calling the function returning ``restype`` at ``address`` (an int64 value)
    with ``values`` of ``argtypes``, numba's native calling convention; its errors
    propagate to the caller (the code :func:`_call_block` and :func:`call_entry` emit).
    Returns the function's value (a dummy value for ``types.none``)."""
    conv = context.call_conv
    fnty = conv.get_function_type(restype, argtypes)
    fn = builder.inttoptr(address, fnty.as_pointer())
    retty = conv.get_return_type(restype).pointee
    ret = cgutils.alloca_once(builder, retty)
    builder.store(cgutils.get_null_value(retty), ret)
    excinfo = cgutils.alloca_once(builder, excinfo_ptr_t, name="excinfo")
    args = list(conv._get_arg_packer(argtypes).as_arguments(builder, values))
    code = builder.call(fn, [ret, excinfo] + args)
    status = conv._get_return_status(builder, code, builder.load(excinfo))
    with cgutils.if_unlikely(builder, status.is_error):
        conv.return_status_propagate(builder, status)
    if restype == types.none:
        return context.get_dummy_value()
    return context.get_returned_value(builder, restype, builder.load(ret))


def entry(func, argtypes):
    """``(address, key)`` of the :func:`internal` function ``func`` compiled (or loaded
    from the cache) for the numba types ``argtypes``, for :func:`call_entry`; for a
    function that returns a number, ``(address, key, zero)``, ``zero`` of the return
    type (the type tells :func:`call_entry` what the call returns). ``func`` may also be
    a jitted kernel (Python entry) called from compiled code too: one compiled copy
    runs for both (a reduction's rounding then does not depend on the caller).

    A kernel that calls a function through its entry, rather than by name, does not get
    that function's code linked into its own and optimised again there (numba links a
    callee's code into every caller): a large callee (a matrix product) is then
    compiled once per process, however many kernels call it.
    """
    argtypes = tuple(argtypes)
    key = _types_key(types.Tuple(argtypes))
    found = _ENTRIES.get((func, key))
    if found is None:
        func.compile(argtypes)
        cres = func.overloads[argtypes]
        address = cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)
        restype = cres.signature.return_type
        if restype == types.none:
            found = (address, key)
        elif isinstance(restype, types.Number):
            found = (address, key, np.dtype(str(restype)).type(0))
        else:  # pragma: no cover (not needed yet)
            raise TypeError(f"entry: {func.__name__} returns {restype}, not a number")
        _ENTRIES[func, key] = found
    return found


@intrinsic
def call_entry(typingctx, fn, args):
    """``func(*args)`` for ``fn = entry(func, <the types of args>)``, called through its
    address (numba's native calling convention); returns what ``func`` returns (nothing,
    or a number: the type of ``fn``'s third item); its errors propagate. RuntimeError if
    ``fn`` was made for other argument types (its key is checked at each call: a
    mismatch would otherwise pass arguments wrongly)."""
    head = (types.int64, types.int64)  # (address, key), then a zero of the return type
    fields = tuple(fn) if isinstance(fn, types.BaseTuple) else ()
    if fields == head:
        restype = types.none
    elif len(fields) == 3 and fields[:2] == head and isinstance(fields[2], types.Number):
        restype = fields[2]
    else:
        restype = None
    if restype is None or not isinstance(args, types.BaseTuple):
        raise TypingError("call_entry: fn must be an entry(...), args a tuple")
    argtypes = tuple(args.types)
    key = _types_key(types.Tuple(argtypes))

    def codegen(context, builder, sig, llargs):
        conv = context.call_conv
        got = builder.extract_value(llargs[0], 1)
        wrong = builder.icmp_signed("!=", got, context.get_constant(types.int64, key))
        with cgutils.if_unlikely(builder, wrong):
            msg = "call_entry: the entry was compiled for other argument types"
            conv.return_user_exc(builder, RuntimeError, (msg,))
        address = builder.extract_value(llargs[0], 0)
        values = [builder.extract_value(llargs[1], i) for i in range(len(argtypes))]
        return _native_call(context, builder, address, argtypes, values, restype)

    return restype(fn, args), codegen


@intrinsic
def _address(typingctx, buf):
    """The address of the data of the array ``buf``."""

    def codegen(context, builder, sig, llargs):
        data = context.make_array(buf)(context, builder, llargs[0]).data
        return builder.ptrtoint(data, ir.IntType(64))

    return types.int64(buf), codegen


@jit_parallel
def _run_blocks(address, n_blocks, buf):
    """``block(c, <arguments packed in buf>)`` for every block ``c`` in parallel,
    ``block`` the compiled function at ``address``."""
    packed = _address(buf)
    for c in prange(n_blocks):
        _call_block(address, np.int64(c), packed)


_ENTRIES = {}  # (block, types key) -> address
_LAST = {}  # block -> (address, types key) of its last run with one block


def _resolve(block, args, key):
    """The address of ``block`` compiled (or loaded) for arguments ``args``."""
    args_type = typeof(args)
    if _types_key(args_type) != key:  # pragma: no cover (a bug)
        raise RuntimeError("run_blocks: argument types differ from the packed ones")
    sig = (types.int64, types.int64, types.TypeRef(args_type))
    block.compile(sig)
    cres = block.overloads[sig]
    return cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)


def run_blocks(block, args, n, check=None):
    """``block(c, args)`` for every block ``c`` in ``range(n)``, in parallel (numba's
    threads); ``block`` an :func:`internal` function of ``(c, packed, args_type)`` that
    starts with ``unpack(packed, args_type)``, ``args`` a tuple.

    ``check(args)``, if given, runs before ``block`` is first compiled or loaded for a
    new combination of argument types (dtypes, dimensions, layouts): the place for the
    caller's type checks (clear errors instead of numba's), paid once per combination
    rather than per call.
    """
    buf = np.empty(_PACK_BYTES, np.uint8)
    # one block: packed and run in one call when the argument types are those of the
    # block's last run (``_pack`` checks the key), else packed, then run once resolved
    address, key = _LAST.get(block, (0, 0)) if n == 1 else (0, 0)
    try:
        got = _pack(buf, args, address, key)
    except Exception:  # numba cannot type an argument (or the block raised): the
        if check is not None:  # caller's error if it has one
            check(args)
        raise
    if address != 0 and got == key:
        return
    if got < 0:  # pragma: no cover (a bug)
        raise RuntimeError("run_blocks: packed arguments larger than the buffer")
    address = _ENTRIES.get((block, got))
    if address is None:
        if check is not None:
            check(args)
        address = _ENTRIES[block, got] = _resolve(block, args, got)
    if n == 1:
        _LAST[block] = (address, got)
        _pack(buf, args, address, got)
    else:
        _run_blocks(address, n, buf)
