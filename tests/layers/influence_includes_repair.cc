// Layer probe: influence/ (the mathematics) must not see repair/ (the two steps built on it);
// building this must fail with "repair/identify.h: No such file or directory".
#include "influence/quantities.h"
#include "repair/identify.h"

int lethe_layer_probe_influence_repair() { return 0; }
