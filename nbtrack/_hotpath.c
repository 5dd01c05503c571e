/* nbtrack._hotpath: the usual call of nbtrack.log, in C.
 *
 * Inside a training loop every step evicts the caches, so what a Python-level log call costs
 * there is mostly the memory it touches: its bytecode, the globals and builtins it looks up, the
 * sets it checks, the objects it allocates (measured in bench_loop: several us per call in the
 * loop against ~0.5 us in a warm micro-benchmark). The same goes for the sender thread reading
 * thousands of small scattered objects back. This version touches little on both sides:
 *
 * - the names of a call site arrive as one constant tuple, so "these names were validated for
 *   this run" is a pointer comparison, and no kwargs dict is built;
 * - consecutive calls of one call site without a step go into a block: one growing bytearray
 *   of float64 rows [unix time, value 1, value 2, ...], which the sender reads in one piece.
 *
 * It takes only calls it can prove ordinary: keyword arguments whose names tuple was seen and
 * fully validated in this run, float/int values, CPU tensors already checked once (read with
 * .item(), as the Python version does), and a step that is None or an int from 0 to 2**63 - 1.
 * Every other call, including every call that would raise, goes to the Python version
 * (nbtrack.run._log_py) unchanged, so behaviour and error messages have a single source.
 *
 * What the run's buffer (a list, in call order) holds, read by nbtrack._sender:
 *     (step or None, unix time, names tuple, values tuple)   one call (Python version, or C
 *                                                            with a step argument)
 *     (names tuple, bytearray of rows)                        a block (C, implicit steps)
 * A block is only ever extended while it is the buffer's last entry; the sender removes the
 * entries it takes before reading them, so nothing is added to a block after it was read.
 *
 * The active run's buffer and sets are handed over by nbtrack.run.activate/deactivate; with no
 * run handed over every call goes to the Python version (which raises NoActiveRunError). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include <time.h>

/* Distinct call sites remembered per run (a loop has one or two: training and evaluation). */
#define N_SHAPES 8
/* Rows per block before a new one starts (256 KB with 3 metrics). */
#define BLOCK_ROWS 8192
/* Metrics per call a block takes; a call with more is one record. */
#define MAX_WIDTH 64

typedef struct {
    PyObject *kwnames;  /* the call site's names tuple, as the interpreter passes it */
    PyObject *names;    /* the metric names: kwnames without "step" */
    Py_ssize_t step_at; /* position of "step" in kwnames, or -1 */
    PyObject *block;    /* the block this call site extends, or NULL (a strong reference, so
                           that its address cannot be taken by another object) */
} Shape;

static PyObject *py_log;      /* nbtrack.run._log_py */
static PyObject *calls;       /* the active run's buffer (a list), or NULL */
static PyObject *known_keys;  /* the active run's validated metric names */
static PyObject *tensor_keys; /* names whose tensors were checked to hold one number */
static PyObject *drain_now;   /* spools the run's buffer from this thread (too far ahead) */
static PyObject *tensor_type; /* torch.Tensor, once a tensor was logged */
static Py_ssize_t max_buffered;
static Py_ssize_t block_rows; /* rows in the buffer's blocks: added here, taken by the sender */
static Shape shapes[N_SHAPES];
static int n_shapes;
static PyObject *str_step, *str_item, *str_is_cpu;

static void
forget_shapes(void)
{
    for (int i = 0; i < n_shapes; i++) {
        Py_CLEAR(shapes[i].kwnames);
        Py_CLEAR(shapes[i].names);
        Py_CLEAR(shapes[i].block);
    }
    n_shapes = 0;
}

static double
unix_time(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

/* After the Python version accepted a call: remember its names tuple if every name is now a
 * validated metric name (or "step"). Returns -1 only on a Python error. */
static int
remember(PyObject *kwnames)
{
    if (n_shapes == N_SHAPES || calls == NULL) {
        return 0;
    }
    for (int i = 0; i < n_shapes; i++) {
        if (shapes[i].kwnames == kwnames) {
            return 0;
        }
    }
    Py_ssize_t n = PyTuple_GET_SIZE(kwnames), step_at = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        if (PyUnicode_Compare(name, str_step) == 0) {
            step_at = i;
            continue;
        }
        int known = PySet_Contains(known_keys, name);
        if (known <= 0) {
            return known;
        }
    }
    if (n == 0 || (step_at >= 0 && n == 1)) {
        return 0;
    }
    PyObject *names;
    if (step_at < 0) {
        names = Py_NewRef(kwnames);
    }
    else {
        names = PyTuple_New(n - 1);
        if (names == NULL) {
            return -1;
        }
        for (Py_ssize_t i = 0, j = 0; i < n; i++) {
            if (i != step_at) {
                PyTuple_SET_ITEM(names, j++, Py_NewRef(PyTuple_GET_ITEM(kwnames, i)));
            }
        }
    }
    shapes[n_shapes].kwnames = Py_NewRef(kwnames);
    shapes[n_shapes].names = names;
    shapes[n_shapes].step_at = step_at;
    shapes[n_shapes].block = NULL;
    n_shapes++;
    return 0;
}

static PyObject *
slow(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *result = PyObject_Vectorcall(py_log, args, nargs, kwnames);
    if (result != NULL && nargs == 0 && kwnames != NULL && remember(kwnames) < 0) {
        Py_DECREF(result);
        return NULL;
    }
    return result;
}

/* The number to store for a value, a new reference; NULL without an error set means "not an
 * ordinary value: let the Python version decide". */
static PyObject *
ordinary(PyObject *value, PyObject *name)
{
    PyTypeObject *kind = Py_TYPE(value);
    if (kind == &PyFloat_Type || kind == &PyLong_Type) {
        return Py_NewRef(value);
    }
    if (tensor_type == NULL || (PyObject *)kind != tensor_type) {
        return NULL;
    }
    int checked = PySet_Contains(tensor_keys, name);
    if (checked <= 0) {
        PyErr_Clear(); /* on an error the Python version meets it again and reports it */
        return NULL;
    }
    PyObject *is_cpu = PyObject_GetAttr(value, str_is_cpu);
    if (is_cpu == NULL) {
        PyErr_Clear();
        return NULL;
    }
    int on_cpu = is_cpu == Py_True;
    Py_DECREF(is_cpu);
    if (!on_cpu) {
        return NULL; /* a device tensor is kept, not read: the Python version does that */
    }
    PyObject *number = PyObject_CallMethodNoArgs(value, str_item);
    if (number == NULL) {
        PyErr_Clear();
    }
    return number;
}

/* Append one row [time, values...] to the call site's block, starting a block where needed. 0
 * on success, 1 to let the Python version take the call (the run ended meanwhile), -1 on an
 * error. Runs without releasing the GIL (unless it spools a backlog first), so the sender sees
 * a block before or after a row, never half of one. */
static int
add_row(Shape *shape, PyObject *names, const double *row, Py_ssize_t width)
{
    Py_ssize_t row_bytes = width * (Py_ssize_t)sizeof(double);
    Py_ssize_t size = PyList_GET_SIZE(calls);
    PyObject *block = shape->block;
    PyObject *rows = block == NULL ? NULL : PyTuple_GET_ITEM(block, 1);
    /* Rows wait in blocks up to max_buffered (counted here, and given back by the sender as it
     * takes them); one block holds no more than that: memory stays within twice the limit. */
    Py_ssize_t cap = max_buffered < BLOCK_ROWS ? max_buffered : BLOCK_ROWS;
    if (block == NULL || size == 0 || PyList_GET_ITEM(calls, size - 1) != block ||
        PyByteArray_GET_SIZE(rows) >= (cap > 0 ? cap : 1) * row_bytes) {
        if (block_rows >= max_buffered) {
            /* A loop that does nothing but log got this far ahead of the sender: spool the
             * backlog from this thread, bounding memory. That runs Python code, which may end
             * the run: look again before going on. */
            PyObject *done = PyObject_CallNoArgs(drain_now);
            if (done == NULL) {
                return -1;
            }
            Py_DECREF(done);
            if (calls == NULL || shape->names != names) {
                return 1;
            }
        }
        rows = PyByteArray_FromStringAndSize(NULL, 0);
        if (rows == NULL) {
            return -1;
        }
        block = PyTuple_Pack(2, shape->names, rows);
        Py_DECREF(rows);
        if (block == NULL) {
            return -1;
        }
        if (PyList_Append(calls, block) < 0) {
            Py_DECREF(block);
            return -1;
        }
        Py_XSETREF(shape->block, block);
    }
    Py_ssize_t used = PyByteArray_GET_SIZE(rows);
    if (PyByteArray_Resize(rows, used + row_bytes) < 0) {
        return -1;
    }
    memcpy(PyByteArray_AS_STRING(rows) + used, row, (size_t)row_bytes);
    block_rows++;
    return 0;
}

/* The float to store for a value, in *out: 1 if it is an ordinary value, 0 if not (no error
 * set: the Python version decides). */
static int
as_double(PyObject *value, PyObject *name, double *out)
{
    PyTypeObject *kind = Py_TYPE(value);
    if (kind == &PyFloat_Type) {
        *out = PyFloat_AS_DOUBLE(value);
        return 1;
    }
    PyObject *number = ordinary(value, name);
    if (number == NULL) {
        return 0;
    }
    *out = PyFloat_AsDouble(number);
    Py_DECREF(number);
    if (*out == -1.0 && PyErr_Occurred()) {
        PyErr_Clear(); /* an int beyond float range: the Python version stores it as NaN */
        return 0;
    }
    return 1;
}

/* A call with a step argument: one record, as the Python version stores it. 0 on success, 1 to
 * let the Python version take the call, -1 on an error. */
static int
add_record(Shape *shape, PyObject *const *args, PyObject *kwnames, PyObject *step)
{
    PyObject *names = Py_NewRef(shape->names);
    PyObject *values = PyTuple_New(PyTuple_GET_SIZE(names));
    int outcome = -1;
    if (values == NULL) {
        goto done;
    }
    outcome = 1;
    for (Py_ssize_t i = 0, j = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
        if (i == shape->step_at) {
            continue;
        }
        PyObject *stored = ordinary(args[i], PyTuple_GET_ITEM(kwnames, i));
        if (stored == NULL) {
            goto done;
        }
        PyTuple_SET_ITEM(values, j++, stored);
    }
    /* .item() may have released the GIL, and another thread ended the run meanwhile. */
    if (calls == NULL || shape->names != names || PyList_GET_SIZE(calls) >= max_buffered) {
        goto done;
    }
    outcome = -1;
    PyObject *now = PyFloat_FromDouble(unix_time());
    if (now == NULL) {
        goto done;
    }
    PyObject *record = PyTuple_Pack(4, step, now, names, values);
    Py_DECREF(now);
    if (record == NULL) {
        goto done;
    }
    outcome = PyList_Append(calls, record);
    Py_DECREF(record);
done:
    Py_XDECREF(values);
    Py_DECREF(names);
    return outcome;
}

/* A call with implicit steps: one row of the call site's block. Same outcomes as add_record. */
static int
add_call_row(Shape *shape, PyObject *const *args, PyObject *kwnames)
{
    double row[MAX_WIDTH + 1];
    PyObject *names = Py_NewRef(shape->names);
    int outcome = 1;
    for (Py_ssize_t i = 0, j = 1; i < PyTuple_GET_SIZE(kwnames); i++) {
        if (i != shape->step_at && !as_double(args[i], PyTuple_GET_ITEM(kwnames, i), &row[j++])) {
            goto done;
        }
    }
    /* .item() may have released the GIL, and another thread ended the run meanwhile. */
    if (calls != NULL && shape->names == names) {
        row[0] = unix_time();
        outcome = add_row(shape, names, row, PyTuple_GET_SIZE(names) + 1);
    }
done:
    Py_DECREF(names);
    return outcome;
}

static PyObject *
hot_log(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (calls == NULL || nargs != 0 || kwnames == NULL) {
        return slow(args, nargs, kwnames);
    }
    Shape *shape = NULL;
    for (int i = 0; i < n_shapes; i++) {
        if (shapes[i].kwnames == kwnames) {
            shape = &shapes[i];
            break;
        }
    }
    if (shape == NULL) {
        return slow(args, nargs, kwnames);
    }
    PyObject *step = shape->step_at < 0 ? Py_None : args[shape->step_at];
    if (step != Py_None) {
        int overflow = 0;
        long long at = PyLong_CheckExact(step) ? PyLong_AsLongLongAndOverflow(step, &overflow) : -1;
        if (overflow || at < 0) {
            PyErr_Clear();
            return slow(args, nargs, kwnames);
        }
    }
    int outcome = step != Py_None || PyTuple_GET_SIZE(shape->names) > MAX_WIDTH
                      ? add_record(shape, args, kwnames, step)
                      : add_call_row(shape, args, kwnames);
    if (outcome > 0) {
        return slow(args, nargs, kwnames);
    }
    if (outcome < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* nbtrack.log itself: built by make_log so that it carries the Python version's docstring. */
static PyMethodDef log_def = {
    "log", (PyCFunction)(void (*)(void))hot_log, METH_FASTCALL | METH_KEYWORDS, NULL};

static PyObject *
make_log(PyObject *module, PyObject *python_version)
{
    static char *doc = NULL;
    PyObject *text = PyObject_GetAttrString(python_version, "__doc__");
    if (text == NULL) {
        return NULL;
    }
    if (doc == NULL && PyUnicode_Check(text)) {
        /* The signature line first, in the form inspect.signature reads from builtins. */
        static const char signature[] = "log(step=None, **metrics)\n--\n\n";
        const char *utf8 = PyUnicode_AsUTF8(text);
        doc = utf8 == NULL ? NULL : PyMem_RawMalloc(sizeof signature + strlen(utf8));
        if (doc != NULL) {
            strcpy(doc, signature);
            strcat(doc, utf8);
            log_def.ml_doc = doc;
        }
    }
    Py_DECREF(text);
    PyErr_Clear();
    PyObject *module_name = PyModule_GetNameObject(module);
    if (module_name == NULL) {
        return NULL;
    }
    PyObject *function = PyCFunction_NewEx(&log_def, NULL, module_name);
    Py_DECREF(module_name);
    if (function != NULL) {
        /* Again after a reload of nbtrack.run: every log function calls the newest version. */
        Py_XSETREF(py_log, Py_NewRef(python_version));
    }
    return function;
}

static PyObject *
activate(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *buffer, *known, *tensors, *drain;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "O!O!O!nO", &PyList_Type, &buffer, &PySet_Type, &known,
                          &PySet_Type, &tensors, &limit, &drain)) {
        return NULL;
    }
    forget_shapes();
    block_rows = 0;
    Py_XSETREF(calls, Py_NewRef(buffer));
    Py_XSETREF(drain_now, Py_NewRef(drain));
    Py_XSETREF(known_keys, Py_NewRef(known));
    Py_XSETREF(tensor_keys, Py_NewRef(tensors));
    max_buffered = limit;
    Py_RETURN_NONE;
}

static PyObject *
deactivate(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(args))
{
    forget_shapes();
    Py_CLEAR(calls);
    Py_CLEAR(known_keys);
    Py_CLEAR(tensor_keys);
    Py_CLEAR(drain_now);
    Py_RETURN_NONE;
}

static PyObject *
taken(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *buffer;
    Py_ssize_t rows;
    if (!PyArg_ParseTuple(args, "On", &buffer, &rows)) {
        return NULL;
    }
    if (buffer == calls) {
        block_rows = rows < block_rows ? block_rows - rows : 0;
    }
    Py_RETURN_NONE;
}

static PyObject *
set_tensor_type(PyObject *Py_UNUSED(module), PyObject *kind)
{
    Py_XSETREF(tensor_type, Py_NewRef(kind));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"make_log", (PyCFunction)make_log, METH_O,
     "make_log(python_version) -> nbtrack.log: the C version, falling back to python_version."},
    {"activate", activate, METH_VARARGS,
     "activate(calls, known_keys, tensor_keys, max_buffered, drain_now): log into this "
     "run's buffer."},
    {"deactivate", deactivate, METH_NOARGS, "deactivate(): no run is active."},
    {"taken", taken, METH_VARARGS,
     "taken(calls, rows): the sender removed blocks holding this many rows from calls."},
    {"set_tensor_type", set_tensor_type, METH_O,
     "set_tensor_type(torch.Tensor): the type whose checked CPU values are read with .item()."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "nbtrack._hotpath", "nbtrack.log's usual call in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__hotpath(void)
{
    str_step = PyUnicode_InternFromString("step");
    str_item = PyUnicode_InternFromString("item");
    str_is_cpu = PyUnicode_InternFromString("is_cpu");
    if (str_step == NULL || str_item == NULL || str_is_cpu == NULL) {
        return NULL;
    }
    return PyModule_Create(&module_def);
}
