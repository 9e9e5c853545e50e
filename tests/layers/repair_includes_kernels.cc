// Layer probe: repair/ reaches the hardware only through nn/, so the kernels' entry points are
// not on its path; building this must fail with "kernels/backend.h: No such file or directory".
#include "kernels/types.h"
#include "repair/identify.h"
#include "kernels/backend.h"

int lethe_layer_probe_repair_kernels() { return 0; }
