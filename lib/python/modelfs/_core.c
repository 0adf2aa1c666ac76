/*
 * _core.c - the C extension under the Python package modelfs: a thin
 * binding of libmodelfs (sharing mode, stores, clients, shared models,
 * container writing).  No format code lives here or in the Python
 * modules; every byte of a container is written and read by the library.
 *
 * Arrays leave this module as read-only memoryviews whose exporter is an
 * ArrayBuffer holding a reference to its Model: a mapping is unmapped only
 * when the Model is released and no view of any of its arrays is left, so
 * no Python object ever points into unmapped memory.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <string.h>

#include <modelfs.h>

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

/* Raises OSError(errno, libmodelfs's message) for negative errno @rc and
 * returns NULL; the errno picks the subclass (FileNotFoundError, ...). */
static PyObject *core_fail(int rc)
{
	const char *msg = mfs_last_error();
	PyObject *args;

	if (rc == -ENOMEM)
		return PyErr_NoMemory();
	args = Py_BuildValue("(is)", -rc,
			     msg && *msg ? msg : strerror(-rc));
	if (args) {
		PyErr_SetObject(PyExc_OSError, args);
		Py_DECREF(args);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Sharing mode                                                        */
/* ------------------------------------------------------------------ */

static PyObject *core_sharing_begin(PyObject *self, PyObject *noargs)
{
	(void)self;
	(void)noargs;
	mfs_sharing_begin();
	Py_RETURN_NONE;
}

static PyObject *core_sharing_end(PyObject *self, PyObject *noargs)
{
	int rc;

	(void)self;
	(void)noargs;
	rc = mfs_sharing_end();
	if (rc < 0) {
		PyErr_SetString(PyExc_RuntimeError,
				"sharing_end: this thread is not in share "
				"context");
		return NULL;
	}
	Py_RETURN_NONE;
}

static PyObject *core_in_share_context(PyObject *self, PyObject *noargs)
{
	(void)self;
	(void)noargs;
	return PyBool_FromLong(mfs_in_share_context());
}

/* ------------------------------------------------------------------ */
/* Array lists: the Python side of a builder                           */
/* ------------------------------------------------------------------ */

/*
 * A list of arrays to write is a sequence of tuples
 * (name, buffer, dtype, shape, order, codec, chunk_size): buffer any
 * C-contiguous object with the buffer protocol holding the raw bytes in
 * @order; dtype a libmodelfs dtype name ("float32", ...); order "C" or
 * "F"; codec "none" or "lz4"; chunk_size 0 for the default.
 */
struct core_arrays {
	mfs_builder *builder;
	Py_buffer *views; /* held until the builder is freed */
	Py_ssize_t count;
};

static void core_arrays_free(struct core_arrays *a)
{
	mfs_builder_free(a->builder);
	for (Py_ssize_t i = 0; i < a->count; i++)
		PyBuffer_Release(&a->views[i]);
	PyMem_Free(a->views);
	memset(a, 0, sizeof(*a));
}

/* The codec named @name, or -1 with ValueError set. */
static int core_codec(const char *name, mfs_codec *out)
{
	for (int c = 0; mfs_codec_name((mfs_codec)c); c++) {
		if (strcmp(name, mfs_codec_name((mfs_codec)c)) == 0) {
			*out = (mfs_codec)c;
			return 0;
		}
	}
	PyErr_Format(PyExc_ValueError, "unknown codec '%s' (expected "
		     "'none' or 'lz4')", name);
	return -1;
}

/* Fills @spec's shape from the sequence @shape; -1 with an error set. */
static int core_shape(PyObject *shape, mfs_array_spec *spec)
{
	PyObject *seq = PySequence_Fast(shape, "shape must be a sequence");
	Py_ssize_t n;

	if (!seq)
		return -1;
	n = PySequence_Fast_GET_SIZE(seq);
	if (n > (Py_ssize_t)MFS_MAX_NDIM) {
		Py_DECREF(seq);
		PyErr_Format(PyExc_ValueError, "array '%s' has %zd dimensions, "
			     "more than %u", spec->name, n, MFS_MAX_NDIM);
		return -1;
	}
	spec->ndim = (uint32_t)n;
	for (Py_ssize_t i = 0; i < n; i++) {
		unsigned long long d = PyLong_AsUnsignedLongLong(
			PySequence_Fast_GET_ITEM(seq, i));

		if (d == (unsigned long long)-1 && PyErr_Occurred()) {
			Py_DECREF(seq);
			return -1;
		}
		spec->shape[i] = d;
	}
	Py_DECREF(seq);
	return 0;
}

/* Parses one array tuple into @spec and borrows its bytes into @view. */
static int core_array_spec(PyObject *item, mfs_array_spec *spec,
			   Py_buffer *view)
{
	const char *dtype, *order, *codec;
	PyObject *buf, *shape;
	unsigned int chunk;

	memset(spec, 0, sizeof(*spec));
	if (!PyArg_ParseTuple(item, "sOsOssI;an array is (name, buffer, "
			      "dtype, shape, order, codec, chunk_size)",
			      &spec->name, &buf, &dtype, &shape, &order,
			      &codec, &chunk))
		return -1;
	if (mfs_dtype_from_name(dtype, &spec->dtype) < 0) {
		PyErr_Format(PyExc_ValueError, "array '%s': unknown dtype "
			     "'%s'", spec->name, dtype);
		return -1;
	}
	if (strcmp(order, "C") != 0 && strcmp(order, "F") != 0) {
		PyErr_Format(PyExc_ValueError, "array '%s': order must be 'C' "
			     "or 'F', not '%s'", spec->name, order);
		return -1;
	}
	spec->order = order[0] == 'F' ? MFS_ORDER_F : MFS_ORDER_C;
	spec->chunk_size = chunk;
	if (core_codec(codec, &spec->codec) < 0 || core_shape(shape, spec) < 0)
		return -1;
	return PyObject_GetBuffer(buf, view, PyBUF_C_CONTIGUOUS);
}

/* Checks that @view holds exactly the bytes @spec describes. */
static int core_check_size(const mfs_array_spec *spec, const Py_buffer *view)
{
	size_t want = mfs_dtype_size(spec->dtype);

	for (uint32_t d = 0; d < spec->ndim; d++) {
		if (spec->shape[d] && want > SIZE_MAX / spec->shape[d]) {
			PyErr_Format(PyExc_ValueError, "array '%s': shape "
				     "overflows", spec->name);
			return -1;
		}
		want *= spec->shape[d];
	}
	if ((size_t)view->len != want) {
		PyErr_Format(PyExc_ValueError, "array '%s': the buffer holds "
			     "%zd bytes, its dtype and shape need %zu",
			     spec->name, view->len, want);
		return -1;
	}
	return 0;
}

/* Builds @out from the array list @arrays and the metadata JSON text. */
static int core_arrays_build(PyObject *arrays, const char *meta,
			     Py_ssize_t meta_len, struct core_arrays *out)
{
	PyObject *seq = PySequence_Fast(arrays, "arrays must be a sequence");
	mfs_array_spec spec;
	Py_ssize_t n;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!seq)
		return -1;
	n = PySequence_Fast_GET_SIZE(seq);
	out->views = PyMem_Calloc(n ? (size_t)n : 1, sizeof(Py_buffer));
	rc = out->views ? mfs_builder_new(&out->builder) : -ENOMEM;
	if (rc == 0 && meta)
		rc = mfs_builder_set_metadata(out->builder, meta,
					      (size_t)meta_len);
	if (rc < 0)
		goto fail_lib;
	for (Py_ssize_t i = 0; i < n; i++) {
		if (core_array_spec(PySequence_Fast_GET_ITEM(seq, i), &spec,
				    &out->views[i]) < 0)
			goto fail;
		out->count = i + 1;
		if (core_check_size(&spec, &out->views[i]) < 0)
			goto fail;
		rc = mfs_builder_add(out->builder, &spec,
				     out->views[i].len ? out->views[i].buf
						       : NULL,
				     0);
		if (rc < 0)
			goto fail_lib;
	}
	Py_DECREF(seq);
	return 0;
fail_lib:
	core_fail(rc);
fail:
	Py_DECREF(seq);
	core_arrays_free(out);
	return -1;
}

/* write(path, arrays, metadata): writes a container (atomically). */
static PyObject *core_write(PyObject *self, PyObject *args)
{
	struct core_arrays a;
	PyObject *path, *arrays;
	const char *meta;
	Py_ssize_t meta_len;
	int rc;

	(void)self;
	if (!PyArg_ParseTuple(args, "O&Os#", PyUnicode_FSConverter, &path,
			      &arrays, &meta, &meta_len))
		return NULL;
	if (core_arrays_build(arrays, meta, meta_len, &a) < 0) {
		Py_DECREF(path);
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS
	rc = mfs_builder_write(a.builder, PyBytes_AS_STRING(path));
	Py_END_ALLOW_THREADS
	core_arrays_free(&a);
	Py_DECREF(path);
	if (rc < 0)
		return core_fail(rc);
	Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ */
/* Models and their array buffers                                      */
/* ------------------------------------------------------------------ */

typedef struct {
	PyObject_HEAD
	mfs_model *model; /* NULL once released */
	Py_ssize_t *exports; /* live buffer exports per array */
	Py_ssize_t count;
	Py_ssize_t live;     /* sum of exports */
	int pending;         /* released by the owner; unmap at live == 0 */
} CoreModel;

typedef struct {
	PyObject_HEAD
	CoreModel *model; /* strong reference */
	Py_ssize_t index;
} CoreArrayBuffer;

static PyTypeObject CoreModel_Type;
static PyTypeObject CoreArrayBuffer_Type;

/* The byte of an empty array's buffer (a buffer needs a non-NULL base). */
static const char core_empty[1];

static void core_model_unmap(CoreModel *m)
{
	if (m->model) {
		mfs_model_release(m->model);
		m->model = NULL;
	}
}

static int core_buffer_get(PyObject *obj, Py_buffer *view, int flags)
{
	CoreArrayBuffer *b = (CoreArrayBuffer *)obj;
	CoreModel *m = b->model;
	mfs_array_view av;
	int rc;

	if (!m->model) {
		PyErr_SetString(PyExc_ValueError, "the model was released");
		view->obj = NULL;
		return -1;
	}
	rc = mfs_model_array_at(m->model, (size_t)b->index, &av);
	if (rc < 0) {
		core_fail(rc);
		view->obj = NULL;
		return -1;
	}
	if (PyBuffer_FillInfo(view, obj, av.data ? (void *)av.data
						 : (void *)core_empty,
			      (Py_ssize_t)av.nbytes, 1, flags) < 0)
		return -1;
	m->exports[b->index]++;
	m->live++;
	return 0;
}

static void core_buffer_release(PyObject *obj, Py_buffer *view)
{
	CoreArrayBuffer *b = (CoreArrayBuffer *)obj;
	CoreModel *m = b->model;

	(void)view;
	m->exports[b->index]--;
	m->live--;
	if (m->live == 0 && m->pending)
		core_model_unmap(m);
}

static void core_buffer_dealloc(CoreArrayBuffer *b)
{
	Py_XDECREF(b->model);
	Py_TYPE(b)->tp_free((PyObject *)b);
}

static PyBufferProcs core_buffer_procs = {
	.bf_getbuffer = core_buffer_get,
	.bf_releasebuffer = core_buffer_release,
};

static PyTypeObject CoreArrayBuffer_Type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "modelfs._core.ArrayBuffer",
	.tp_doc = "The read-only bytes of one array of a shared model.",
	.tp_basicsize = sizeof(CoreArrayBuffer),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_dealloc = (destructor)core_buffer_dealloc,
	.tp_as_buffer = &core_buffer_procs,
};

/* Wraps @model (taking it) in a new Model object. */
static PyObject *core_model_new(mfs_model *model)
{
	CoreModel *m = PyObject_New(CoreModel, &CoreModel_Type);
	size_t n = mfs_model_array_count(model);

	if (m) {
		m->model = model;
		m->count = (Py_ssize_t)n;
		m->live = 0;
		m->pending = 0;
		m->exports = PyMem_Calloc(n ? n : 1, sizeof(Py_ssize_t));
		if (!m->exports) {
			Py_DECREF(m);
			return PyErr_NoMemory();
		}
	} else {
		mfs_model_release(model);
	}
	return (PyObject *)m;
}

static void core_model_dealloc(CoreModel *m)
{
	/* No buffer can be live: each holds a reference to the model. */
	core_model_unmap(m);
	PyMem_Free(m->exports);
	Py_TYPE(m)->tp_free((PyObject *)m);
}

/* Fails with ValueError if @m was released. */
static int core_model_check(CoreModel *m)
{
	if (m->model && !m->pending)
		return 0;
	PyErr_SetString(PyExc_ValueError, "the model was released");
	return -1;
}

/* Checks @index against @m's arrays. */
static int core_model_index(CoreModel *m, Py_ssize_t index)
{
	if (core_model_check(m) < 0)
		return -1;
	if (index < 0 || index >= m->count) {
		PyErr_Format(PyExc_IndexError, "array index %zd out of range "
			     "(the model has %zd arrays)", index, m->count);
		return -1;
	}
	return 0;
}

/* info(i) -> (name, dtype, shape, order, nbytes) */
static PyObject *core_model_info(CoreModel *m, PyObject *arg)
{
	Py_ssize_t i = PyLong_AsSsize_t(arg);
	mfs_array_view av;
	PyObject *shape;
	int rc;

	if ((i == -1 && PyErr_Occurred()) || core_model_index(m, i) < 0)
		return NULL;
	rc = mfs_model_array_at(m->model, (size_t)i, &av);
	if (rc < 0)
		return core_fail(rc);
	shape = PyTuple_New(av.ndim);
	if (!shape)
		return NULL;
	for (uint32_t d = 0; d < av.ndim; d++) {
		PyObject *v = PyLong_FromUnsignedLongLong(av.shape[d]);

		if (!v) {
			Py_DECREF(shape);
			return NULL;
		}
		PyTuple_SET_ITEM(shape, d, v);
	}
	return Py_BuildValue("(ssNsn)", av.name, mfs_dtype_name(av.dtype),
			     shape, av.order == MFS_ORDER_F ? "F" : "C",
			     (Py_ssize_t)av.nbytes);
}

/* buffer(i) -> memoryview of array i's bytes (read-only, format 'B'). */
static PyObject *core_model_buffer(CoreModel *m, PyObject *arg)
{
	Py_ssize_t i = PyLong_AsSsize_t(arg);
	CoreArrayBuffer *b;
	PyObject *mv;

	if ((i == -1 && PyErr_Occurred()) || core_model_index(m, i) < 0)
		return NULL;
	b = PyObject_New(CoreArrayBuffer, &CoreArrayBuffer_Type);
	if (!b)
		return NULL;
	Py_INCREF(m);
	b->model = m;
	b->index = i;
	mv = PyMemoryView_FromObject((PyObject *)b);
	Py_DECREF(b);
	return mv;
}

/* referenced() -> number of arrays with a live view */
static PyObject *core_model_referenced(CoreModel *m, PyObject *noargs)
{
	Py_ssize_t n = 0;

	(void)noargs;
	for (Py_ssize_t i = 0; i < m->count; i++)
		n += m->exports[i] > 0;
	return PyLong_FromSsize_t(n);
}

/* release() -> True if unmapped now, False if deferred to the last view. */
static PyObject *core_model_release(CoreModel *m, PyObject *noargs)
{
	(void)noargs;
	if (core_model_check(m) < 0)
		return NULL;
	if (m->live > 0) {
		m->pending = 1;
		Py_RETURN_FALSE;
	}
	core_model_unmap(m);
	Py_RETURN_TRUE;
}

static PyObject *core_model_get_key(CoreModel *m, void *closure)
{
	(void)closure;
	if (core_model_check(m) < 0)
		return NULL;
	return PyUnicode_FromString(mfs_model_key(m->model));
}

static PyObject *core_model_get_metadata(CoreModel *m, void *closure)
{
	const char *text;
	size_t len;

	(void)closure;
	if (core_model_check(m) < 0)
		return NULL;
	text = mfs_model_metadata(m->model, &len);
	return PyUnicode_FromStringAndSize(text, (Py_ssize_t)len);
}

static PyObject *core_model_get_count(CoreModel *m, void *closure)
{
	(void)closure;
	return PyLong_FromSsize_t(m->count);
}

static PyObject *core_model_get_released(CoreModel *m, void *closure)
{
	(void)closure;
	return PyBool_FromLong(!m->model || m->pending);
}

static PyObject *core_model_get_mapped(CoreModel *m, void *closure)
{
	(void)closure;
	return PyBool_FromLong(m->model != NULL);
}

static PyMethodDef core_model_methods[] = {
	{"info", (PyCFunction)core_model_info, METH_O,
	 "info(i) -> (name, dtype, shape, order, nbytes) of array i"},
	{"buffer", (PyCFunction)core_model_buffer, METH_O,
	 "buffer(i) -> read-only memoryview of array i's bytes"},
	{"referenced", (PyCFunction)core_model_referenced, METH_NOARGS,
	 "referenced() -> how many arrays still have a live view"},
	{"release", (PyCFunction)core_model_release, METH_NOARGS,
	 "release() -> True if unmapped now, False if the mapping stays "
	 "until the last view of an array goes"},
	{NULL, NULL, 0, NULL},
};

static PyGetSetDef core_model_getset[] = {
	{"key", (getter)core_model_get_key, NULL, "the model's key", NULL},
	{"metadata", (getter)core_model_get_metadata, NULL,
	 "the metadata document (JSON text)", NULL},
	{"count", (getter)core_model_get_count, NULL, "number of arrays",
	 NULL},
	{"released", (getter)core_model_get_released, NULL,
	 "True once release() was called", NULL},
	{"mapped", (getter)core_model_get_mapped, NULL,
	 "True while the arrays' memory is mapped", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject CoreModel_Type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "modelfs._core.Model",
	.tp_doc = "A shared model got from libmodelfs (mfs_model).",
	.tp_basicsize = sizeof(CoreModel),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_dealloc = (destructor)core_model_dealloc,
	.tp_methods = core_model_methods,
	.tp_getset = core_model_getset,
};

/* open_model(path) -> Model: a container file or a mount's model dir. */
static PyObject *core_open_model(PyObject *self, PyObject *arg)
{
	mfs_model *model;
	PyObject *path;
	int rc;

	(void)self;
	if (!PyUnicode_FSConverter(arg, &path))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = mfs_model_open(PyBytes_AS_STRING(path), &model);
	Py_END_ALLOW_THREADS
	Py_DECREF(path);
	if (rc < 0)
		return core_fail(rc);
	return core_model_new(model);
}

/* ------------------------------------------------------------------ */
/* Clients                                                             */
/* ------------------------------------------------------------------ */

typedef struct {
	PyObject_HEAD
	mfs_client *client; /* NULL once closed */
} CoreClient;

static void core_client_dealloc(CoreClient *c)
{
	if (c->client)
		mfs_client_close(c->client);
	Py_TYPE(c)->tp_free((PyObject *)c);
}

static int core_client_init(CoreClient *c, PyObject *args, PyObject *kw)
{
	static char *names[] = {"spec", NULL};
	mfs_client *client;
	const char *spec;
	int rc;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "s", names, &spec))
		return -1;
	Py_BEGIN_ALLOW_THREADS
	rc = mfs_client_open(&client, spec);
	Py_END_ALLOW_THREADS
	if (rc < 0) {
		core_fail(rc);
		return -1;
	}
	if (c->client)
		mfs_client_close(c->client);
	c->client = client;
	return 0;
}

static PyObject *core_client_get(CoreClient *c, PyObject *args)
{
	mfs_model *model;
	const char *key;
	int rc;

	if (!PyArg_ParseTuple(args, "s", &key))
		return NULL;
	if (!c->client) {
		PyErr_SetString(PyExc_ValueError, "the client is closed");
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS
	rc = mfs_get_model(c->client, key, &model);
	Py_END_ALLOW_THREADS
	if (rc < 0)
		return core_fail(rc);
	return core_model_new(model);
}

static PyObject *core_client_close(CoreClient *c, PyObject *noargs)
{
	(void)noargs;
	if (c->client) {
		mfs_client_close(c->client);
		c->client = NULL;
	}
	Py_RETURN_NONE;
}

static PyMethodDef core_client_methods[] = {
	{"get", (PyCFunction)core_client_get, METH_VARARGS,
	 "get(key) -> Model"},
	{"close", (PyCFunction)core_client_close, METH_NOARGS,
	 "close() (models got stay valid)"},
	{NULL, NULL, 0, NULL},
};

static PyTypeObject CoreClient_Type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "modelfs._core.Client",
	.tp_doc = "Client(spec): a libmodelfs client (mfs_client).",
	.tp_basicsize = sizeof(CoreClient),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)core_client_init,
	.tp_dealloc = (destructor)core_client_dealloc,
	.tp_methods = core_client_methods,
};

/* ------------------------------------------------------------------ */
/* Stores                                                              */
/* ------------------------------------------------------------------ */

typedef struct {
	PyObject_HEAD
	mfs_store *store; /* NULL once released */
} CoreStore;

/* Fails with ValueError if @s was released. */
static int core_store_check(CoreStore *s)
{
	if (s->store)
		return 0;
	PyErr_SetString(PyExc_ValueError, "the store was shut down");
	return -1;
}

static void core_store_dealloc(CoreStore *s)
{
	/* A store left open by a dying object still removes its ephemeral
	 * models: that is what the owner asked for by not persisting them. */
	if (s->store)
		mfs_store_release(s->store);
	Py_TYPE(s)->tp_free((PyObject *)s);
}

/* put(arrays, metadata, key=None, persistent=False) -> key */
static PyObject *core_store_put(CoreStore *s, PyObject *args, PyObject *kw)
{
	static char *names[] = {"arrays", "metadata", "key", "persistent",
				NULL};
	char key_out[MFS_KEY_BUFSIZE];
	const char *meta, *key = NULL;
	struct core_arrays a;
	Py_ssize_t meta_len;
	PyObject *arrays;
	int persistent = 0, rc;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "Os#|zp", names, &arrays,
					 &meta, &meta_len, &key, &persistent))
		return NULL;
	if (core_store_check(s) < 0 ||
	    core_arrays_build(arrays, meta, meta_len, &a) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = mfs_store_put(s->store, a.builder, key,
			   persistent ? MFS_PUT_PERSISTENT : 0, key_out);
	Py_END_ALLOW_THREADS
	core_arrays_free(&a);
	if (rc < 0)
		return core_fail(rc);
	return PyUnicode_FromString(key_out);
}

/* put_file(path, key=None, persistent=False, reserialize=False) -> key */
static PyObject *core_store_put_file(CoreStore *s, PyObject *args,
				     PyObject *kw)
{
	static char *names[] = {"path", "key", "persistent", "reserialize",
				NULL};
	char key_out[MFS_KEY_BUFSIZE];
	int persistent = 0, reser = 0, rc;
	const char *key = NULL;
	PyObject *path;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|zpp", names,
					 PyUnicode_FSConverter, &path, &key,
					 &persistent, &reser))
		return NULL;
	if (core_store_check(s) < 0) {
		Py_DECREF(path);
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS
	rc = mfs_store_put_file(s->store, PyBytes_AS_STRING(path), key,
				(persistent ? MFS_PUT_PERSISTENT : 0) |
					(reser ? MFS_PUT_RESERIALIZE : 0),
				key_out);
	Py_END_ALLOW_THREADS
	Py_DECREF(path);
	if (rc < 0)
		return core_fail(rc);
	return PyUnicode_FromString(key_out);
}

static PyObject *core_store_remove(CoreStore *s, PyObject *args)
{
	const char *key;
	int rc;

	if (!PyArg_ParseTuple(args, "s", &key) || core_store_check(s) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = mfs_store_remove(s->store, key);
	Py_END_ALLOW_THREADS
	if (rc < 0)
		return core_fail(rc);
	Py_RETURN_NONE;
}

/* release(): the store's last release removes its ephemeral models. */
static PyObject *core_store_release(CoreStore *s, PyObject *noargs)
{
	mfs_store *store = s->store;
	int rc;

	(void)noargs;
	if (core_store_check(s) < 0)
		return NULL;
	s->store = NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = mfs_store_release(store);
	Py_END_ALLOW_THREADS
	if (rc < 0)
		return core_fail(rc);
	Py_RETURN_NONE;
}

static PyObject *core_store_get_spec(CoreStore *s, void *closure)
{
	(void)closure;
	if (core_store_check(s) < 0)
		return NULL;
	return PyUnicode_FromString(mfs_store_client_spec(s->store));
}

static PyMethodDef core_store_methods[] = {
	{"put", (PyCFunction)(void (*)(void))core_store_put,
	 METH_VARARGS | METH_KEYWORDS,
	 "put(arrays, metadata, key=None, persistent=False) -> key"},
	{"put_file", (PyCFunction)(void (*)(void))core_store_put_file,
	 METH_VARARGS | METH_KEYWORDS,
	 "put_file(path, key=None, persistent=False, reserialize=False) "
	 "-> key"},
	{"remove", (PyCFunction)core_store_remove, METH_VARARGS,
	 "remove(key)"},
	{"release", (PyCFunction)core_store_release, METH_NOARGS,
	 "release(): shut down; ephemeral models are removed"},
	{NULL, NULL, 0, NULL},
};

static PyGetSetDef core_store_getset[] = {
	{"spec", (getter)core_store_get_spec, NULL,
	 "the client spec of the store", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject CoreStore_Type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "modelfs._core.Store",
	.tp_doc = "A libmodelfs store (mfs_store).",
	.tp_basicsize = sizeof(CoreStore),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_dealloc = (destructor)core_store_dealloc,
	.tp_methods = core_store_methods,
	.tp_getset = core_store_getset,
};

/* Wraps a store the library just opened (@rc its outcome). */
static PyObject *core_store_wrap(int rc, mfs_store *store)
{
	CoreStore *s;

	if (rc < 0)
		return core_fail(rc);
	s = PyObject_New(CoreStore, &CoreStore_Type);
	if (!s) {
		mfs_store_release(store);
		return NULL;
	}
	s->store = store;
	return (PyObject *)s;
}

typedef int (*core_store_opener)(mfs_store **out, const char *path);

/* A Store opened on path @arg by @open (without the GIL). */
static PyObject *core_open_store(PyObject *arg, core_store_opener open)
{
	mfs_store *store = NULL;
	PyObject *path;
	int rc;

	if (!PyUnicode_FSConverter(arg, &path))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = open(&store, PyBytes_AS_STRING(path));
	Py_END_ALLOW_THREADS
	Py_DECREF(path);
	return core_store_wrap(rc, store);
}

/* open_mount(path) -> Store */
static PyObject *core_open_mount(PyObject *self, PyObject *arg)
{
	(void)self;
	return core_open_store(arg, mfs_store_open_mount);
}

/* open_dir(path) -> Store */
static PyObject *core_open_dir(PyObject *self, PyObject *arg)
{
	(void)self;
	return core_open_store(arg, mfs_store_open_dir);
}

/* mount_state(path) -> "none" | "live" | "dead" */
static PyObject *core_mount_state(PyObject *self, PyObject *arg)
{
	enum mfs_mount_state st;
	PyObject *path;

	(void)self;
	if (!PyUnicode_FSConverter(arg, &path))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	st = mfs_mount_probe(PyBytes_AS_STRING(path));
	Py_END_ALLOW_THREADS
	Py_DECREF(path);
	return PyUnicode_FromString(st == MFS_MOUNT_LIVE   ? "live"
				    : st == MFS_MOUNT_DEAD ? "dead"
							   : "none");
}

/* mount_store_dir(path) -> the store directory the daemon serves */
static PyObject *core_mount_store_dir(PyObject *self, PyObject *arg)
{
	char dir[PATH_MAX];
	PyObject *path;
	int rc;

	(void)self;
	if (!PyUnicode_FSConverter(arg, &path))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = mfs_mount_store_dir(PyBytes_AS_STRING(path), dir);
	Py_END_ALLOW_THREADS
	Py_DECREF(path);
	if (rc < 0)
		return core_fail(rc);
	return PyUnicode_DecodeFSDefault(dir);
}

/* ------------------------------------------------------------------ */
/* Module                                                              */
/* ------------------------------------------------------------------ */

static PyMethodDef core_functions[] = {
	{"sharing_begin", core_sharing_begin, METH_NOARGS,
	 "Enters share context on this thread (mfs_sharing_begin)."},
	{"sharing_end", core_sharing_end, METH_NOARGS,
	 "Leaves one level of share context (mfs_sharing_end)."},
	{"in_share_context", core_in_share_context, METH_NOARGS,
	 "True if this thread is in share context."},
	{"write", core_write, METH_VARARGS,
	 "write(path, arrays, metadata): writes a container atomically."},
	{"open_model", core_open_model, METH_O,
	 "open_model(path) -> Model (a container file or a model directory "
	 "of a mount)."},
	{"open_mount", core_open_mount, METH_O,
	 "open_mount(path) -> Store on a modelfs mount."},
	{"open_dir", core_open_dir, METH_O,
	 "open_dir(path) -> Store on a directory."},
	{"mount_state", core_mount_state, METH_O,
	 "mount_state(path) -> 'none', 'live' or 'dead'."},
	{"mount_store_dir", core_mount_store_dir, METH_O,
	 "mount_store_dir(path) -> the store directory a daemon serves."},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef core_module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "modelfs._core",
	.m_doc = "The binding of libmodelfs under the modelfs package.",
	.m_size = -1,
	.m_methods = core_functions,
};

/* Adds @type to @mod under its short name. */
static int core_add_type(PyObject *mod, PyTypeObject *type,
			 const char *name)
{
	if (PyType_Ready(type) < 0)
		return -1;
	Py_INCREF(type);
	if (PyModule_AddObject(mod, name, (PyObject *)type) < 0) {
		Py_DECREF(type);
		return -1;
	}
	return 0;
}

PyMODINIT_FUNC PyInit__core(void)
{
	PyObject *mod = PyModule_Create(&core_module);

	if (!mod)
		return NULL;
	if (core_add_type(mod, &CoreModel_Type, "Model") < 0 ||
	    core_add_type(mod, &CoreArrayBuffer_Type, "ArrayBuffer") < 0 ||
	    core_add_type(mod, &CoreClient_Type, "Client") < 0 ||
	    core_add_type(mod, &CoreStore_Type, "Store") < 0 ||
	    PyModule_AddStringConstant(mod, "library_version",
				       mfs_version()) < 0 ||
	    PyModule_AddStringConstant(mod, "default_mount",
				       MFS_DEFAULT_MOUNT) < 0 ||
	    PyModule_AddStringConstant(mod, "container_suffix",
				       MFS_CONTAINER_SUFFIX) < 0 ||
	    PyModule_AddStringConstant(mod, "xattr_store_dir",
				       MFS_XATTR_STORE_DIR) < 0) {
		Py_DECREF(mod);
		return NULL;
	}
	return mod;
}
