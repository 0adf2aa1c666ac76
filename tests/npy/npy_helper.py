"""NumPy side of the npy unit tests (run by test_npy with /usr/bin/python3).

Subcommands:
  headers SPEC OUT   for each SPEC line "descr fortran(0|1) dim...", write to
                     OUT the header NumPy's own writer produces for it
                     (write_array_header_1_0), one line each: the whole
                     header in hex, a space, and its dict text with the
                     padding stripped.
  load MANIFEST      for each line "path descr fortran(0|1) offset dim...",
                     load the file with np.load(mmap_mode='r') and check
                     dtype, shape, order, the bytes and the data offset:
                     OFFSET, which must be 4096 for an array with elements
                     and the length of NumPy's own header for an empty one;
                     exit 1 on any mismatch.
  write DIR          write .npy files with NumPy for the parser tests: every
                     supported dtype x shapes x orders x versions 1.0/2.0/3.0
                     (DIR/manifest.txt describes each as NumPy reads it back),
                     and files NumPy writes that the library must refuse
                     (DIR/reject_*.npy).
"""
import io
import os
import sys

import numpy as np
import numpy.lib.format as fmt

DTYPES = ['bool', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16',
          'uint32', 'uint64', 'float16', 'float32', 'float64', 'complex64',
          'complex128']
SHAPES = [(), (0,), (7,), (3, 4), (2, 3, 5), (0, 3), (4, 0, 2), (1, 1, 1, 6)]
VERSIONS = [(1, 0), (2, 0), (3, 0)]
NPY_HEADER_SIZE = 4096


def numpy_header(descr, fortran, shape):
    """The v1.0 header (preamble, dict, padding) NumPy's writer produces."""
    d = {'descr': descr, 'fortran_order': fortran, 'shape': shape}
    buf = io.BytesIO()
    fmt.write_array_header_1_0(buf, d)
    return buf.getvalue()


def numpy_dict_text(header):
    """The header dict exactly as NumPy's writer formats it."""
    text = header[10:].decode('latin1')
    assert text.endswith('\n')
    return text.rstrip(' \n')


def cmd_headers(spec, out):
    with open(spec) as f, open(out, 'w') as o:
        for line in f:
            parts = line.split()
            shape = tuple(int(x) for x in parts[2:])
            h = numpy_header(parts[0], parts[1] == '1', shape)
            o.write('%s %s\n' % (h.hex(), numpy_dict_text(h)))


def check_loaded(path, descr, fortran, shape, offset):
    """Returns a list of problems with np.load of @path, whose data is at
    @offset."""
    bad = []
    if 0 in shape:
        want = len(numpy_header(descr, fortran, shape))
    else:
        want = NPY_HEADER_SIZE
    if offset != want:
        bad.append('header length %d != %d' % (offset, want))
    try:
        m = np.load(path, mmap_mode='r')
    except Exception as e:  # noqa: BLE001 - any failure is the finding
        return bad + ['np.load(mmap_mode=\'r\') failed: %r' % e]
    if not isinstance(m, np.memmap):
        bad.append('np.load gave %s, not a memmap' % type(m).__name__)
    elif m.offset != offset:
        bad.append('memmap offset %d != %d' % (m.offset, offset))
    if m.dtype.str != np.dtype(descr).str:
        bad.append('dtype %s != %s' % (m.dtype.str, descr))
    if m.shape != shape:
        bad.append('shape %r != %r' % (m.shape, shape))
    if len(shape) >= 2 and m.size > 1:
        if fortran and not m.flags.f_contiguous:
            bad.append('not Fortran-contiguous')
        if not fortran and not m.flags.c_contiguous:
            bad.append('not C-contiguous')
    with open(path, 'rb') as f:
        raw = f.read()[offset:]
    if m.tobytes(order='F' if fortran else 'C') != raw:
        bad.append('data bytes differ')
    return bad


def cmd_load(manifest):
    failures = 0
    count = 0
    with open(manifest) as f:
        for line in f:
            parts = line.split()
            shape = tuple(int(x) for x in parts[4:])
            bad = check_loaded(parts[0], parts[1], parts[2] == '1', shape,
                               int(parts[3]))
            count += 1
            if bad:
                failures += 1
                print('FAIL %s: %s' % (parts[0], '; '.join(bad)))
    print('np.load checked %d files, %d failed' % (count, failures))
    return 1 if failures else 0


def sample(dtype, shape, order):
    """Deterministic, non-trivial contents (not all zero)."""
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    base = np.arange(1, n + 1, dtype=np.int64) * 37 % 251
    if dtype == 'bool':
        flat = base % 3 == 0
    elif dtype.startswith('complex'):
        flat = base.astype(dtype) + 1j * (base % 7).astype(dtype)
    else:
        flat = base.astype(dtype)
    return np.asarray(flat.reshape(shape), order=order)


def header_facts(path):
    """(version, fortran, shape, descr, data_offset) as NumPy reads them."""
    with open(path, 'rb') as f:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = fmt.read_array_header_2_0(f)
        return version, fortran, shape, dtype, f.tell()


def write_one(path, arr, version):
    with open(path, 'wb') as f:
        fmt.write_array(f, arr, version=version, allow_pickle=True)


def write_rejects(d):
    rejects = {
        'object': np.array([1, 'a', None], dtype=object),
        'structured': np.zeros(3, dtype=[('a', '<f4'), ('b', '<i8')]),
        'bigendian_f4': np.arange(4, dtype='>f4'),
        'bigendian_i8': np.arange(4, dtype='>i8'),
        'unicode': np.array(['ab', 'c']),
        'bytes': np.array([b'ab', b'c']),
        'datetime': np.zeros(2, dtype='<M8[ns]'),
        'timedelta': np.zeros(2, dtype='<m8[s]'),
        'void': np.zeros(2, dtype='|V8'),
        'longdouble': np.zeros(2, dtype=np.longdouble),
        'clongdouble': np.zeros(2, dtype=np.clongdouble),
    }
    for name, arr in rejects.items():
        write_one(os.path.join(d, 'reject_%s.npy' % name), arr, (1, 0))
    # A v3.0 (utf-8) structured header: field names outside latin-1.
    utf8 = np.zeros(2, dtype=[('\u00e9t\u00e9', '<f4')])
    write_one(os.path.join(d, 'reject_structured_v3.npy'), utf8, (3, 0))


def cmd_write(d):
    count = 0
    with open(os.path.join(d, 'manifest.txt'), 'w') as man:
        for dtype in DTYPES:
            for shape in SHAPES:
                for order in ('C', 'F'):
                    arr = sample(dtype, shape, order)
                    for version in VERSIONS:
                        name = '%s_%s_%s_v%d.npy' % (
                            dtype, 'x'.join(map(str, shape)) or 'scalar',
                            order, version[0])
                        path = os.path.join(d, name)
                        write_one(path, arr, version)
                        ver, fortran, rshape, rdtype, off = header_facts(path)
                        assert rdtype == np.dtype(dtype)
                        man.write('%s %s %d %d %d %d %d%s\n' % (
                            name, rdtype.name, ver[0], int(fortran), off,
                            arr.nbytes, len(rshape),
                            ''.join(' %d' % x for x in rshape)))
                        count += 1
    write_rejects(d)
    print('wrote %d npy files' % count)
    return 0


def main(argv):
    if len(argv) == 4 and argv[1] == 'headers':
        cmd_headers(argv[2], argv[3])
        return 0
    if len(argv) == 3 and argv[1] == 'load':
        return cmd_load(argv[2])
    if len(argv) == 3 and argv[1] == 'write':
        return cmd_write(argv[2])
    sys.stderr.write(__doc__)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv))
