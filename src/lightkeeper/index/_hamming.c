/* Placeholder: replaced by the Hamming index core. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "_hamming", NULL, -1, NULL};
PyMODINIT_FUNC PyInit__hamming(void) { return PyModule_Create(&mod); }
