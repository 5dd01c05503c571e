/* nbtrack._hotpath: the usual call of nbtrack.log, in C.
 *
 * Inside a training loop every step evicts the caches, so what a Python-level log call costs
 * there is mostly the memory it touches: its bytecode, the globals and builtins it looks up,
 * the sets it checks (measured in bench_loop: ~5 us per call in the loop against ~0.5 us in a
 * warm micro-benchmark). This version touches little: the names of a call site arrive as one
 * constant tuple, so "these names were validated for this run" is a pointer comparison, and no
 * kwargs dict is built.
 *
 * It takes only calls it can prove ordinary: keyword arguments whose names tuple was seen and
 * fully validated in this run, float/int values, CPU tensors already checked once (read with
 * .item(), as the Python version does), and a step that is None or an int from 0 to 2**63 - 1.
 * Every other call, including every call that would raise, goes to the Python version
 * (nbtrack.run._log_py) unchanged, so behaviour and error messages have a single source.
 *
 * Both versions append the same record to the run's buffer:
 *     (step or None, unix time in s, names tuple, values tuple)
 *
 * The active run's buffer and sets are handed over by nbtrack.run.activate/deactivate; with no
 * run handed over every call goes to the Python version (which raises NoActiveRunError). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <time.h>

/* Distinct call sites remembered per run (a loop has one or two: training and evaluation). */
#define N_SHAPES 8

typedef struct {
    PyObject *kwnames; /* the call site's names tuple, as the interpreter passes it */
    PyObject *names;   /* the metric names: kwnames without "step" */
    Py_ssize_t step_at; /* position of "step" in kwnames, or -1 */
} Shape;

static PyObject *py_log;      /* nbtrack.run._log_py */
static PyObject *calls;       /* the active run's buffer (a list), or NULL */
static PyObject *known_keys;  /* the active run's validated metric names */
static PyObject *tensor_keys; /* names whose tensors were checked to hold one number */
static PyObject *tensor_type; /* torch.Tensor, once a tensor was logged */
static Py_ssize_t max_buffered;
static Shape shapes[N_SHAPES];
static int n_shapes;
static PyObject *str_step, *str_item, *str_is_cpu;

static void
forget_shapes(void)
{
    for (int i = 0; i < n_shapes; i++) {
        Py_CLEAR(shapes[i].kwnames);
        Py_CLEAR(shapes[i].names);
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
        int is_step = PyUnicode_Compare(name, str_step) == 0;
        if (is_step) {
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

/* The value to store for args[i], a new reference; NULL without an error set means "not an
 * ordinary value: let the Python version decide". */
static PyObject *
ordinary(PyObject *value, PyObject *name)
{
    PyTypeObject *kind = Py_TYPE(value);
    if (kind == &PyFloat_Type || kind == &PyLong_Type) {
        return Py_NewRef(value);
    }
    if ((PyObject *)kind != tensor_type || tensor_type == NULL) {
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

static PyObject *
hot_log(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (calls == NULL || nargs != 0 || kwnames == NULL ||
        PyList_GET_SIZE(calls) >= max_buffered) {
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
    /* .item() may release the GIL, and another thread could end the run meanwhile: hold on
     * to what this call uses. */
    PyObject *buffer = Py_NewRef(calls);
    PyObject *names = Py_NewRef(shape->names);
    Py_ssize_t step_at = shape->step_at;
    Py_ssize_t n = PyTuple_GET_SIZE(kwnames);
    PyObject *step = Py_None;
    PyObject *values = PyTuple_New(PyTuple_GET_SIZE(names));
    PyObject *record = NULL, *now = NULL;
    if (values == NULL) {
        goto error;
    }
    for (Py_ssize_t i = 0, j = 0; i < n; i++) {
        PyObject *value = args[i];
        if (i == step_at) {
            if (value == Py_None) {
                continue;
            }
            int overflow = 0;
            long long at = PyLong_CheckExact(value)
                               ? PyLong_AsLongLongAndOverflow(value, &overflow)
                               : -1;
            if (overflow || at < 0) {
                PyErr_Clear();
                goto fall_back;
            }
            step = value;
            continue;
        }
        PyObject *stored = ordinary(value, PyTuple_GET_ITEM(kwnames, i));
        if (stored == NULL) {
            goto fall_back;
        }
        PyTuple_SET_ITEM(values, j++, stored);
    }
    now = PyFloat_FromDouble(unix_time());
    if (now == NULL) {
        goto error;
    }
    record = PyTuple_Pack(4, step, now, names, values);
    if (record == NULL || PyList_Append(buffer, record) < 0) {
        goto error;
    }
    Py_DECREF(record);
    Py_DECREF(now);
    Py_DECREF(values);
    Py_DECREF(names);
    Py_DECREF(buffer);
    Py_RETURN_NONE;

fall_back:
    Py_DECREF(values);
    Py_DECREF(names);
    Py_DECREF(buffer);
    return slow(args, nargs, kwnames);

error:
    Py_XDECREF(record);
    Py_XDECREF(now);
    Py_XDECREF(values);
    Py_DECREF(names);
    Py_DECREF(buffer);
    return NULL;
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
    PyObject *buffer, *known, *tensors;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "O!O!O!n", &PyList_Type, &buffer, &PySet_Type, &known,
                          &PySet_Type, &tensors, &limit)) {
        return NULL;
    }
    forget_shapes();
    Py_XSETREF(calls, Py_NewRef(buffer));
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
     "activate(calls, known_keys, tensor_keys, max_buffered): log into this run's buffer."},
    {"deactivate", deactivate, METH_NOARGS, "deactivate(): no run is active."},
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
