// Layer probe: nn/ must not see repair/ (a layer above it); building this must fail with
// "repair/identify.h: No such file or directory".
#include "nn/module.h"
#include "repair/identify.h"

int lethe_layer_probe_upward() { return 0; }
