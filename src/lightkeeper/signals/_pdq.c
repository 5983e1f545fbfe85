/* Placeholder: replaced by the PDQ core. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "_pdq", NULL, -1, NULL};
PyMODINIT_FUNC PyInit__pdq(void) { return PyModule_Create(&mod); }
