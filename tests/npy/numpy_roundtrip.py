"""The numpy round trip of the whole toolchain.

NumPy writes .npy files of every dtype it shares with modelfs (C and
Fortran order, 0-d, empty, multi-chunk arrays, NPY 1.0/2.0/3.0 inputs);
`modelctl pack` stores them (raw and --lz4, NAME=FILE and DIR forms, several
chunk sizes, with --metadata); `modelctl verify` checks every chunk;
`modelctl export` writes them back; NumPy then compares every array bit for
bit (dtype, shape, Fortran order, bytes) and metadata.json byte for byte.
Every exported array memory-maps with np.load(mmap_mode='r'): its data is
at 4096, or, for an array with no elements, right after a header that is
byte for byte the one NumPy itself writes for it.

Run with /usr/bin/python3 (it has numpy).  Needs $MODELFS_BUILD_DIR (set by
meson test) to find tools/modelctl.
"""
import io
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import numpy.lib.format as fmt

NPY_HEADER_SIZE = 4096
CHUNK_4K = 4096
CHUNK_64K = 65536
DEFAULT_CHUNK = 256 * 1024

# dtypes NumPy and modelfs share, as NumPy names them.
DTYPES = ['bool', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16',
          'uint32', 'uint64', 'float16', 'float32', 'float64', 'complex64',
          'complex128']

METADATA = {
    'name': 'round trip \u00e9\u4e2d\U0001f600',
    'nested': {'list': [1, 2.5, None, True], 'empty': {}},
    'big': 2 ** 62,
}


class Failure(Exception):
    pass


def modelctl_path():
    build = os.environ.get('MODELFS_BUILD_DIR')
    if not build:
        raise Failure('MODELFS_BUILD_DIR is not set (run through meson test)')
    path = os.path.join(build, 'tools', 'modelctl')
    if not os.access(path, os.X_OK):
        raise Failure('%s is missing: build the modelctl target' % path)
    return path


def run(args, expect_ok=True):
    proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    if expect_ok and proc.returncode != 0:
        raise Failure('%s exited %d:\n%s%s' % (' '.join(args), proc.returncode,
                                               proc.stdout, proc.stderr))
    return proc


def special_values(dtype):
    """Bit patterns that a lossy or value-based copy would change."""
    if dtype.kind == 'f':
        vals = np.array([0.0, -0.0, np.inf, -np.inf, np.nan], dtype=dtype)
        # A NaN with a payload: equal values would not catch a rewrite.
        bits = vals.view('<u%d' % dtype.itemsize).copy()
        bits[-1] |= bits.dtype.type(1)
        return bits.view(dtype)
    if dtype.kind == 'c':
        half = np.dtype('f%d' % (dtype.itemsize // 2))
        return special_values(half).astype(dtype) * (1 - 2j)
    return None


def random_array(rng, dtype, shape, order='C'):
    """Random contents covering the whole bit range of @dtype."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    if dtype.kind == 'b':
        flat = rng.integers(0, 2, n).astype(bool)
    else:
        flat = rng.integers(0, 256, n * dtype.itemsize,
                            dtype=np.uint8).view(dtype)
        if dtype.kind in 'fc':
            flat = flat.copy()
            sv = special_values(dtype)
            k = min(len(sv), n)
            flat[:k] = sv[:k]
    return np.asarray(flat.reshape(shape), order=order)


def build_arrays(rng):
    """{name: (array, npy version to write, declared dtype or None)}."""
    arrays = {}
    for dt in DTYPES:
        arrays['%s_c' % dt] = (random_array(rng, dt, (5, 7)), (1, 0), None)
        arrays['%s_f' % dt] = (random_array(rng, dt, (6, 3, 4), 'F'),
                               (1, 0), None)
        arrays['%s_0d' % dt] = (random_array(rng, dt, ()), (1, 0), None)
        arrays['%s_empty' % dt] = (random_array(rng, dt, (0, 3)), (1, 0),
                                   None)
        arrays['%s_1d' % dt] = (random_array(rng, dt, (11,)), (1, 0), None)
    # Empty with several axes, only the middle one zero.
    arrays['empty_4d'] = (random_array(rng, 'float64', (3, 0, 5, 7)),
                          (1, 0), None)
    # Several chunks at every chunk size used, with a short last chunk.
    arrays['multi_chunk'] = (random_array(rng, 'float32', (300007,)),
                             (1, 0), None)
    arrays['multi_chunk_f'] = (random_array(rng, 'complex128',
                                            (1001, 37), 'F'), (1, 0), None)
    # Compressible: LZ4 must really compress and still give the bits back.
    ramp = np.arange(2_000_000, dtype='<i8') // 1000
    arrays['compressible'] = (ramp.reshape(2000, 1000), (1, 0), None)
    arrays['zeros_f'] = (np.zeros((513, 257), dtype='<f8', order='F'),
                         (1, 0), None)
    # NPY 2.0 and 3.0 inputs.
    arrays['v2_input'] = (random_array(rng, 'int32', (40, 50), 'F'),
                          (2, 0), None)
    arrays['v3_input'] = (random_array(rng, 'uint64', (9, 9)), (3, 0), None)
    # bfloat16 bits saved by NumPy as uint16, declared on the command line.
    arrays['bf16'] = (random_array(rng, 'uint16', (128, 33)), (1, 0),
                      'bfloat16')
    return arrays


def write_npy(path, arr, version):
    with open(path, 'wb') as f:
        fmt.write_array(f, arr, version=version)


def header_facts(path):
    """(fortran_order, shape, dtype, data offset) as NumPy reads them."""
    with open(path, 'rb') as f:
        version = fmt.read_magic(f)
        if version != (1, 0):
            raise Failure('%s: exported NPY version %r, want 1.0'
                          % (path, version))
        shape, fortran, dtype = fmt.read_array_header_1_0(f)
        return fortran, shape, dtype, f.tell()


def numpy_header(arr):
    """The NPY 1.0 header NumPy itself writes for @arr."""
    buf = io.BytesIO()
    fmt.write_array_header_1_0(buf, fmt.header_data_from_array_1_0(arr))
    return buf.getvalue()


def load_mmap(path, offset, problems):
    """np.load(mmap_mode='r'), which must work for empty arrays too."""
    try:
        got = np.load(path, mmap_mode='r')
    except Exception as e:  # noqa: BLE001 - any failure is the finding
        raise Failure('%s: np.load(mmap_mode=\'r\') failed: %r' % (path, e))
    if not isinstance(got, np.memmap):
        problems.append('np.load gave %s, not a memmap' % type(got).__name__)
    elif got.offset != offset:
        problems.append('memmap offset %d != %d' % (got.offset, offset))
    return got


def check_array(name, path, orig):
    fortran, shape, dtype, offset = header_facts(path)
    problems = []
    with open(path, 'rb') as f:
        data = f.read()
    if orig.size:
        want_offset = NPY_HEADER_SIZE
    else:
        want_header = numpy_header(orig)
        want_offset = len(want_header)
        if data[:offset] != want_header:
            problems.append('header %r is not NumPy\'s %r'
                            % (data[:offset], want_header))
    if offset != want_offset:
        problems.append('data offset %d != %d' % (offset, want_offset))
    if dtype.str != orig.dtype.str:
        problems.append('dtype %s != %s' % (dtype.str, orig.dtype.str))
    if shape != orig.shape:
        problems.append('shape %r != %r' % (shape, orig.shape))
    want_f = orig.ndim >= 2 and orig.flags.f_contiguous and \
        not orig.flags.c_contiguous
    if fortran != want_f:
        problems.append('fortran_order %r != %r' % (fortran, want_f))
    got = load_mmap(path, offset, problems)
    if got.dtype.str != orig.dtype.str or got.shape != orig.shape:
        problems.append('np.load gave %s %r, want %s %r'
                        % (got.dtype.str, got.shape, orig.dtype.str,
                           orig.shape))
    order = 'F' if fortran else 'C'
    if got.tobytes(order=order) != orig.tobytes(order=order):
        problems.append('array bytes differ')
    raw = data[offset:]
    if raw != orig.tobytes(order=order):
        problems.append('file data bytes differ from the array memory')
    if problems:
        raise Failure('%s: %s' % (name, '; '.join(problems)))


def check_export(outdir, arrays, metadata_bytes):
    names = sorted(os.listdir(outdir))
    want = sorted(['%s.npy' % n for n in arrays] + ['metadata.json'])
    if names != want:
        raise Failure('export wrote %r, want %r'
                      % (sorted(set(names) ^ set(want)), []))
    for name, (arr, _, _) in arrays.items():
        check_array(name, os.path.join(outdir, name + '.npy'), arr)
    with open(os.path.join(outdir, 'metadata.json'), 'rb') as f:
        got = f.read()
    if got != metadata_bytes:
        raise Failure('metadata.json differs: %r != %r'
                      % (got[:200], metadata_bytes[:200]))
    if metadata_bytes and json.loads(got) != json.loads(metadata_bytes):
        raise Failure('metadata.json parses differently')


def pack_export(ctl, work, label, arrays, srcdir, options, dir_form,
                metadata_path):
    out = os.path.join(work, label + '.mfs')
    args = [ctl, 'pack', out] + options
    if metadata_path:
        args += ['--metadata', metadata_path]
    if dir_form:
        args.append(srcdir)
    else:
        for name, (_, _, declared) in sorted(arrays.items()):
            spec = name + (':' + declared if declared else '')
            args.append('%s=%s' % (spec, os.path.join(srcdir, name + '.npy')))
    run(args)
    run([ctl, 'verify', out])
    outdir = os.path.join(work, label + '.out')
    run([ctl, 'export', out, outdir])
    return out, outdir


def check_refusals(ctl, work):
    """Inputs pack must refuse with the parser's message, leaving no file."""
    cases = {
        'big-endian dtype \'>f4\' is not supported':
            np.arange(5, dtype='>f4'),
        'object arrays (pickled data) are not supported':
            np.array([1, None], dtype=object),
        'structured dtypes are not supported':
            np.zeros(2, dtype=[('a', '<i4')]),
    }
    for i, (message, arr) in enumerate(cases.items()):
        src = os.path.join(work, 'refuse%d.npy' % i)
        with open(src, 'wb') as f:
            fmt.write_array(f, arr, allow_pickle=True)
        out = os.path.join(work, 'refuse%d.mfs' % i)
        proc = run([ctl, 'pack', out, 'x=%s' % src], expect_ok=False)
        if proc.returncode != 1 or message not in proc.stderr:
            raise Failure('pack of %s: exit %d, stderr %r; want 1 and %r'
                          % (arr.dtype, proc.returncode, proc.stderr, message))
        if os.path.exists(out):
            raise Failure('a refused pack left %s behind' % out)


def main():
    ctl = modelctl_path()
    rng = np.random.default_rng(20240601)
    arrays = build_arrays(rng)
    with tempfile.TemporaryDirectory(prefix='numpy_roundtrip.') as work:
        srcdir = os.path.join(work, 'src')
        os.mkdir(srcdir)
        for name, (arr, version, _) in arrays.items():
            write_npy(os.path.join(srcdir, name + '.npy'), arr, version)
        meta_path = os.path.join(work, 'metadata.json')
        meta_bytes = json.dumps(METADATA, ensure_ascii=False,
                                indent=1).encode('utf-8')
        with open(meta_path, 'wb') as f:
            f.write(meta_bytes)

        # The directory form cannot declare bfloat16: its array comes back
        # as the uint16 it was saved as, which is what check_array expects.
        runs = [
            ('raw', [], False, meta_path),
            ('lz4', ['--lz4'], False, meta_path),
            ('lz4_4k_dir', ['--lz4', '--chunk-size', str(CHUNK_4K)], True,
             None),
            ('raw_64k_dir', ['--chunk-size', '64K'], True, meta_path),
        ]
        sizes = {}
        for label, options, dir_form, meta in runs:
            out, outdir = pack_export(ctl, work, label, arrays, srcdir,
                                      options, dir_form, meta)
            check_export(outdir, arrays,
                         meta_bytes if meta else b'{}')
            sizes[label] = os.path.getsize(out)
            print('%-12s %10d bytes, %d arrays: identical'
                  % (label, sizes[label], len(arrays)))
        if not sizes['lz4'] < sizes['raw']:
            raise Failure('--lz4 container (%d bytes) is not smaller than '
                          'the raw one (%d bytes)'
                          % (sizes['lz4'], sizes['raw']))
        check_refusals(ctl, work)
    print('numpy round trip: all arrays identical in %d runs' % len(runs))
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except Failure as e:
        print('FAIL: %s' % e, file=sys.stderr)
        sys.exit(1)
